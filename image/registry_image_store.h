// RegistryImageStore: an ImageStore (format/image_store.h) over one repository of a registry,
// so ConvertImage converts registry to registry and between registries and OCI layouts.
//
// Reading streams layers with range requests (digest checked at the end). Writing spools each
// new blob to a private temporary directory, then uploads it unless the repository has it
// already (HEAD); blobs of another repository of the same registry are mounted (cross-
// repository mount) instead of uploaded. Manifests are pushed by digest as they are written
// and the tag last (Tag), so a failed conversion never tags a half-pushed image.
#ifndef LAZYSNAP_IMAGE_REGISTRY_IMAGE_STORE_H_
#define LAZYSNAP_IMAGE_REGISTRY_IMAGE_STORE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "format/image_store.h"
#include "registry/client.h"
#include "registry/reference.h"

namespace lazysnap {

// What a destination store sent, for reports and tests.
struct UploadStats {
  uint64_t blobs_uploaded = 0;
  uint64_t bytes_uploaded = 0;
  uint64_t blobs_mounted = 0;   // cross-repository mounts
  uint64_t blobs_existing = 0;  // already in the repository (HEAD)
  uint64_t manifests_pushed = 0;
};

class RegistryImageStore : public ImageStore {
 public:
  // `client` is not owned and must outlive the store. `ref` names the repository (its tag
  // or digest is what Resolve("") resolves). Spool files go under `temp_dir` ("" = $TMPDIR
  // or /tmp) and are removed as soon as they are pushed, and with the store.
  static absl::StatusOr<std::unique_ptr<RegistryImageStore>> Create(
      registry::RegistryClient* client, registry::Reference ref, const std::string& temp_dir);
  ~RegistryImageStore() override;

  const registry::Reference& reference() const { return ref_; }
  UploadStats stats() const;

  absl::StatusOr<Descriptor> Resolve(std::string_view tag) const override;
  absl::StatusOr<std::string> ReadManifest(const Descriptor& d, size_t max_size) const override;
  absl::StatusOr<std::string> ReadBlob(const Sha256& digest, int64_t expected_size,
                                       size_t max_size) const override;
  absl::StatusOr<std::unique_ptr<InputStream>> OpenBlob(const Sha256& digest,
                                                        int64_t expected_size) const override;
  bool HasBlob(const Sha256& digest) const override;
  bool SameStore(const ImageStore& other) const override;
  absl::StatusOr<std::unique_ptr<BlobSink>> NewBlobWriter() const override;
  absl::StatusOr<Descriptor> WriteBlob(std::string_view media_type,
                                       std::string_view data) const override;
  absl::StatusOr<Descriptor> WriteManifest(std::string_view media_type,
                                           std::string_view data) const override;
  absl::Status CopyBlobFrom(const ImageStore& src, const Descriptor& d) const override;
  absl::Status Tag(std::string_view tag, const Descriptor& d) const override;

  // Uploads the spooled blob `digest` (in the spool layout) unless present; removes it.
  absl::Status PushSpooled(const Sha256& digest) const;

 private:
  RegistryImageStore(registry::RegistryClient* client, registry::Reference ref,
                     std::string spool_dir, std::unique_ptr<OciLayout> spool)
      : client_(client),
        ref_(std::move(ref)),
        spool_dir_(std::move(spool_dir)),
        spool_(std::move(spool)) {}
  absl::Status PushFromSource(BlobSource& src, const Sha256& digest) const;

  registry::RegistryClient* const client_;
  const registry::Reference ref_;
  const std::string spool_dir_;
  const std::unique_ptr<OciLayout> spool_;
  mutable absl::Mutex mu_;
  mutable UploadStats stats_ ABSL_GUARDED_BY(mu_);
  // Manifests pushed by digest, kept for Tag: digest hex -> (media type, bytes).
  mutable std::map<std::string, std::pair<std::string, std::string>> manifests_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace lazysnap

#endif  // LAZYSNAP_IMAGE_REGISTRY_IMAGE_STORE_H_

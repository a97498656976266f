// ImageStore: where ConvertImage reads a source image from and writes the converted one to.
// An OCI image layout (OciLayoutStore, here) or a registry repository (image/). Blobs,
// manifests and tags are separate because registries keep them apart; a store writes
// everything a tag needs before Tag() points the tag at it.
#ifndef LAZYSNAP_FORMAT_IMAGE_STORE_H_
#define LAZYSNAP_FORMAT_IMAGE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/digest.h"
#include "base/stream.h"
#include "format/oci.h"
#include "format/oci_layout.h"

namespace lazysnap {

// Streams one new blob into a store. One writer per blob, not thread-safe; any number of
// writers of one store may run concurrently. Destroying an uncommitted sink drops its data.
class BlobSink : public OutputStream {
 public:
  // Checks the data hashes to `expected` (DataLoss if not) and makes the blob visible in the
  // store. The sink is finished afterwards, whatever the outcome.
  virtual absl::Status Commit(const Sha256& expected) = 0;
  virtual uint64_t bytes() const = 0;
};

// All methods are thread-safe.
class ImageStore {
 public:
  virtual ~ImageStore() = default;

  // The manifest or index `tag` names (a tag; a registry also takes "sha256:..."); empty: the
  // store's default (a layout's only image, a reference's own tag). NotFound if none.
  virtual absl::StatusOr<Descriptor> Resolve(std::string_view tag) const = 0;
  // The bytes of manifest or index `d`, digest-checked; InvalidArgument above `max_size`.
  virtual absl::StatusOr<std::string> ReadManifest(const Descriptor& d, size_t max_size) const = 0;
  // A whole blob (configs), digest- and (when `expected_size` >= 0) size-checked.
  virtual absl::StatusOr<std::string> ReadBlob(const Sha256& digest, int64_t expected_size,
                                               size_t max_size) const = 0;
  // A stream over a blob whose final Read fails with DataLoss if the content is wrong.
  virtual absl::StatusOr<std::unique_ptr<InputStream>> OpenBlob(const Sha256& digest,
                                                                int64_t expected_size) const = 0;
  virtual bool HasBlob(const Sha256& digest) const = 0;
  // Whether `other` holds the same blobs (same layout directory, same repository).
  virtual bool SameStore(const ImageStore& other) const = 0;

  virtual absl::StatusOr<std::unique_ptr<BlobSink>> NewBlobWriter() const = 0;
  // Stores `data` as a blob (configs) or a manifest/index; returns its descriptor.
  virtual absl::StatusOr<Descriptor> WriteBlob(std::string_view media_type,
                                               std::string_view data) const = 0;
  virtual absl::StatusOr<Descriptor> WriteManifest(std::string_view media_type,
                                                   std::string_view data) const = 0;
  // Copies blob `d` from `src` unless this store has it already.
  virtual absl::Status CopyBlobFrom(const ImageStore& src, const Descriptor& d) const = 0;
  // Points `tag` at `d`, a manifest or index written with WriteManifest. `d` may carry
  // annotations and a platform for a layout's index.json entry.
  virtual absl::Status Tag(std::string_view tag, const Descriptor& d) const = 0;
};

// Copies blob `d` from `src` into `dst` through a stream (verified on commit).
absl::Status CopyBlobStreaming(const ImageStore& src, const ImageStore& dst, const Descriptor& d);

// An ImageStore over an OciLayout (not owned; must outlive the store).
class OciLayoutStore : public ImageStore {
 public:
  explicit OciLayoutStore(const OciLayout* layout) : layout_(layout) {}
  const OciLayout& layout() const { return *layout_; }

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

 private:
  const OciLayout* layout_;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_IMAGE_STORE_H_

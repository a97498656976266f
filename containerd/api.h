// ContainerdApi: the part of containerd's gRPC API that `lazysnap image pull` uses (content,
// images, leases, snapshots and diff services), as a narrow interface so the pull logic is
// tested with fakes (containerd/pull_test.cc) and run against containerd through
// GrpcContainerd (containerd/grpc_client.h).
//
// Errors are containerd's gRPC codes carried as absl codes (NotFound, AlreadyExists,
// FailedPrecondition, ...), messages prefixed with the call that failed.
#ifndef LAZYSNAP_CONTAINERD_API_H_
#define LAZYSNAP_CONTAINERD_API_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/blob_source.h"
#include "base/digest.h"
#include "format/oci.h"

namespace lazysnap::containerd {

using Labels = std::map<std::string, std::string>;

// A mount as containerd's snapshotters return it (containerd.types.Mount).
struct Mount {
  std::string type, source, target;
  std::vector<std::string> options;
};

// An image record (containerd.services.images.v1.Image). Value type.
struct ImageRecord {
  std::string name;
  Labels labels;
  Descriptor target;  // media type, digest, size, annotations
};

// Thread-safety: one pull drives one instance; it may call WriteContent and SetContentLabels
// on a second thread while the first makes other calls (never UseLease then).
class ContainerdApi {
 public:
  virtual ~ContainerdApi() = default;

  // ---- leases. Every call after UseLease(id) carries the lease (containerd-lease header):
  // the content and snapshots it creates are protected from GC until the lease is deleted.
  // A lease with an `expire` label is removed by containerd's GC after that time even if
  // the caller dies before DeleteLease.
  virtual absl::StatusOr<std::string> CreateLease(absl::Duration expire) = 0;
  virtual void UseLease(const std::string& id) = 0;  // "" = none
  // `sync`: containerd collects what only the lease kept before answering (a garbage
  // collection pass, local time: after a failed pull); else it collects later.
  virtual absl::Status DeleteLease(const std::string& id, bool sync) = 0;

  // ---- content store.
  // Writes `src` (exactly `size` bytes) as blob `digest`, committed with `labels`; containerd
  // checks size and digest. `ref` names the upload (containerd's ingest ref). AlreadyExists
  // when the blob is in the store already (nothing written; the caller may update labels).
  virtual absl::Status WriteContent(const std::string& ref, const Sha256& digest, int64_t size,
                                    BlobSource& src, const Labels& labels) = 0;
  // Sets (adds or replaces) `labels` on blob `digest`; other labels stay. NotFound if absent.
  virtual absl::Status SetContentLabels(const Sha256& digest, const Labels& labels) = 0;

  // ---- snapshots (of snapshotter `snapshotter`).
  // Prepare: the mounts of the new active snapshot `key` on `parent` ("" = none).
  // AlreadyExists when the snapshotter found the target (label containerd.io/snapshot.ref)
  // already there, e.g. mounted remotely.
  virtual absl::StatusOr<std::vector<Mount>> Prepare(const std::string& snapshotter,
                                                     const std::string& key,
                                                     const std::string& parent,
                                                     const Labels& labels) = 0;
  virtual absl::Status Commit(const std::string& snapshotter, const std::string& name,
                              const std::string& key, const Labels& labels) = 0;
  // OK if snapshot `key` exists, NotFound if not.
  virtual absl::Status Stat(const std::string& snapshotter, const std::string& key) = 0;
  virtual absl::Status Remove(const std::string& snapshotter, const std::string& key) = 0;

  // ---- diff service: applies layer `layer` (a blob in the content store) onto `mounts`;
  // returns the digest of the uncompressed tar (the diff ID).
  virtual absl::StatusOr<Sha256> Apply(const Descriptor& layer,
                                       const std::vector<Mount>& mounts) = 0;

  // ---- images: creates the record, or replaces target and labels of an existing one.
  virtual absl::Status PutImage(const ImageRecord& image) = 0;
};

}  // namespace lazysnap::containerd

#endif  // LAZYSNAP_CONTAINERD_API_H_

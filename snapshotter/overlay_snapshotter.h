// OverlaySnapshotter: containerd's snapshotter semantics over overlayfs, the behaviour of
// containerd's own snapshots/overlay, plus the remote-snapshot protocol of stargz-snapshotter
// (a Prepare that carries containerd.io/snapshot.ref and a layer digest, when the layer can
// be mounted remotely, is committed under the ref at once and answers AlreadyExists).
//
// On disk, under root: metadata.db (see MetadataStore) and snapshots/<id>/{fs,work}. `fs` is
// the layer (overlay upperdir, or the remote mount); `work` the overlay workdir of an active
// snapshot. All methods are thread-safe; errors carry containerd's codes.
#ifndef LAZYSNAP_SNAPSHOTTER_OVERLAY_SNAPSHOTTER_H_
#define LAZYSNAP_SNAPSHOTTER_OVERLAY_SNAPSHOTTER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "snapshotter/metadata_store.h"
#include "snapshotter/remote_layer.h"
#include "snapshotter/snapshot.h"

namespace lazysnap {

class OverlaySnapshotter {
 public:
  // Opens (creating, mode 0700) the state directory `root` and locks it (root/lock) for the
  // snapshotter's lifetime: a root in use by another process is FailedPrecondition.
  // `mounter` serves remote layers (NewUnavailableRemoteLayerMounter() for none); the
  // snapshotter owns it.
  static absl::StatusOr<std::unique_ptr<OverlaySnapshotter>> Open(
      const std::string& root, std::unique_ptr<RemoteLayerMounter> mounter);

  absl::StatusOr<Info> Stat(const std::string& key);
  // Updates labels ("labels", "labels.KEY"; all when `fieldpaths` is empty) of info.name.
  absl::StatusOr<Info> Update(const Info& info, const std::vector<std::string>& fieldpaths);
  // Active snapshots: measured now from the upper directory; others: as recorded at commit.
  absl::StatusOr<Usage> GetUsage(const std::string& key);
  // A new active (read-write) snapshot on committed `parent` (may be empty). Prepare, View
  // and Mounts are Unavailable while a remote layer below fails its mounter's Check.
  absl::StatusOr<std::vector<Mount>> Prepare(const std::string& key, const std::string& parent,
                                             const Labels& labels);
  // A new read-only view of committed `parent` (may be empty).
  absl::StatusOr<std::vector<Mount>> View(const std::string& key, const std::string& parent,
                                          const Labels& labels);
  // The mounts of an active or view snapshot.
  absl::StatusOr<std::vector<Mount>> Mounts(const std::string& key);
  // Commits active `key` as `name` with `labels` (which replace the active one's).
  absl::Status Commit(const std::string& name, const std::string& key, const Labels& labels);
  // Removes a snapshot without children, and its directory.
  absl::Status Remove(const std::string& key);
  // Snapshots matching any of `filters` (containerd filter syntax, see filter.h).
  absl::StatusOr<std::vector<Info>> List(const std::vector<std::string>& filters);
  // Removes directories under snapshots/ that belong to no snapshot (left by a crash).
  absl::Status Cleanup();
  // Mounts every committed remote layer of the metadata again through the mounter (after a
  // restart; call before serving). A layer that cannot be mounted is logged and stays
  // unavailable (Prepare/View/Mounts above it fail its Check). remote_restore.cc.
  struct RestoreResult {
    size_t restored = 0, failed = 0;
  };
  absl::StatusOr<RestoreResult> RestoreRemoteLayers();

  ~OverlaySnapshotter();
  OverlaySnapshotter(const OverlaySnapshotter&) = delete;
  OverlaySnapshotter& operator=(const OverlaySnapshotter&) = delete;

  const std::string& root() const { return root_; }

  // How Prepares that asked for a remote layer (ref + digest labels) went, since Open.
  struct RemoteCounters {
    uint64_t prepared = 0;   // mounted remotely and committed under the ref
    uint64_t fallbacks = 0;  // not available remotely: ordinary snapshot
  };
  RemoteCounters remote_counters() const { return {remote_prepared_.load(), remote_fallbacks_.load()}; }

 private:
  OverlaySnapshotter(std::string root, int lock_fd, std::unique_ptr<MetadataStore> ms,
                     std::unique_ptr<RemoteLayerMounter> mounter, bool index_off);

  absl::StatusOr<std::vector<Mount>> CreateSnapshot(Kind kind, const std::string& key,
                                                    const std::string& parent,
                                                    const Labels& labels,
                                                    SnapshotRecord* record);
  absl::StatusOr<bool> TryRemote(const std::string& key, const SnapshotRecord& rec,
                                 const Labels& labels);
  // Unavailable unless every remote layer in `name`'s chain (itself included) passes the
  // mounter's Check. Takes (and releases) a read transaction.
  absl::Status CheckRemoteLayers(const std::string& name);
  absl::StatusOr<std::vector<std::string>> OrphanDirs(MetadataStore::Transaction& txn);
  void RemoveDirs(const std::vector<std::string>& dirs);
  std::vector<Mount> MountsFor(const SnapshotRecord& rec) const;
  std::string SnapshotDir(const std::string& id) const;
  std::string UpperPath(const std::string& id) const { return SnapshotDir(id) + "/fs"; }
  std::string WorkPath(const std::string& id) const { return SnapshotDir(id) + "/work"; }

  const std::string root_;
  const int lock_fd_;  // owned; flock()ed on root/lock
  const std::unique_ptr<MetadataStore> ms_;
  const std::unique_ptr<RemoteLayerMounter> mounter_;
  const bool index_off_;  // the kernel knows overlay's index=off option
  std::atomic<uint64_t> remote_prepared_{0};
  std::atomic<uint64_t> remote_fallbacks_{0};
};

// InvalidArgument when a label's key and value together exceed 4096 bytes (containerd's
// labels.Validate).
absl::Status ValidateLabels(const Labels& labels);

}  // namespace lazysnap

#endif  // LAZYSNAP_SNAPSHOTTER_OVERLAY_SNAPSHOTTER_H_

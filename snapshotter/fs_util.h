// Filesystem helpers of the snapshotter: disk usage of a layer, removal of a snapshot
// directory that never crosses into another mount, mount-point detection.
#ifndef LAZYSNAP_SNAPSHOTTER_FS_UTIL_H_
#define LAZYSNAP_SNAPSHOTTER_FS_UTIL_H_

#include <string>

#include "absl/status/statusor.h"
#include "snapshotter/snapshot.h"

namespace lazysnap {

// Allocated bytes (st_blocks * 512) and number of distinct inodes under `dir`, itself
// included, hard links counted once: containerd's continuity fs.DiskUsage.
absl::StatusOr<Usage> DiskUsage(const std::string& dir);

// Removes `path` and everything under it, like `rm -rf`, but never descends into another
// filesystem (a mount below `path` makes it fail instead). A missing `path` is OK.
absl::Status RemoveTree(const std::string& path);

// True when `path` is a directory on a different device than its parent (a mount point).
absl::StatusOr<bool> IsMountPoint(const std::string& path);

}  // namespace lazysnap

#endif  // LAZYSNAP_SNAPSHOTTER_FS_UTIL_H_

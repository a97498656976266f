// RootfsBuilder: unpacks an image's layers, bottom first, into one directory, as containerd's
// applier does for a plain (non-overlay) snapshot, so `lazysnap image optimize` can run the
// image's workload in it. Each layer is applied on top of the previous ones: entries replace
// what is there, `.wh.NAME` deletes NAME of the layers below, `.wh..wh..opq` empties its
// directory of what the layers below put there.
//
// Layers are untrusted: names are cleaned (CleanEntryName: no "..") and every path is resolved
// inside the root (openat2 RESOLVE_IN_ROOT), so a symlink in the tree (`/lib -> usr/lib`, or a
// hostile `x -> /etc`) is followed as it would be in a chroot and never leads out of the
// directory. Owners, device nodes and trusted.* xattrs need root; without it they are skipped
// and counted (ApplyStats::skipped).
#ifndef LAZYSNAP_IMAGE_ROOTFS_H_
#define LAZYSNAP_IMAGE_ROOTFS_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/stream.h"

namespace lazysnap {

struct ApplyStats {
  uint64_t entries = 0;   // tar members applied, whiteouts included
  uint64_t files = 0;     // regular files written
  uint64_t bytes = 0;     // file data written
  uint64_t removed = 0;   // objects deleted by whiteouts
  uint64_t skipped = 0;   // owners, devices or xattrs that could not be set (not root)
};

// Not thread-safe. Owns a descriptor of the root directory.
class RootfsBuilder {
 public:
  ~RootfsBuilder();
  RootfsBuilder(const RootfsBuilder&) = delete;
  RootfsBuilder& operator=(const RootfsBuilder&) = delete;

  // Opens `dir`, an existing (normally empty) directory, as the root.
  static absl::StatusOr<std::unique_ptr<RootfsBuilder>> Open(const std::string& dir);

  // Applies one layer: `tar` is its uncompressed tar stream (not owned). A malformed archive
  // is the TarReader's error; a failed system call is the errno's status naming the path.
  // After an error the tree is partly applied.
  absl::Status ApplyLayer(InputStream& tar);

  // Whether the tree holds `path` (relative, cleaned: "usr/bin/python3.11") as a regular file
  // written by some layer (hard links included).
  bool HasFile(std::string_view path) const { return files_.count(path) > 0; }
  const ApplyStats& stats() const { return stats_; }

 private:
  explicit RootfsBuilder(int root_fd) : root_fd_(root_fd) {}
  class Layer;

  int root_fd_;
  std::set<std::string, std::less<>> files_;
  ApplyStats stats_;
};

// Removes `dir` and everything below it without crossing into other file systems (a mount
// left below is kept, and reported as FailedPrecondition). For the temporary directories of
// `image optimize`, which have /proc, /dev and /sys mounted inside while the workload runs.
absl::Status RemoveTree(const std::string& dir);

}  // namespace lazysnap

#endif  // LAZYSNAP_IMAGE_ROOTFS_H_

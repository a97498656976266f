// /proc/self/mountinfo, parsed: how LayerFs finds its mount's device number and checks it is
// still mounted without touching the FUSE filesystem itself (which could block).
#ifndef LAZYSNAP_FUSEFS_MOUNTINFO_H_
#define LAZYSNAP_FUSEFS_MOUNTINFO_H_

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace lazysnap {

struct MountInfo {
  dev_t dev = 0;           // st_dev of the mount's root
  std::string mountpoint;  // unescaped
  std::string fstype;      // "fuse.lazysnap", "overlay", ...
};

// Parses mountinfo(5) text, in order (later lines are mounted over earlier ones at the same
// path). Malformed lines are skipped.
std::vector<MountInfo> ParseMountInfo(std::string_view text);
// ParseMountInfo of /proc/self/mountinfo.
absl::StatusOr<std::vector<MountInfo>> ReadMountInfo();
// The mount visible at `path` (the last one listed there), or NotFound.
absl::StatusOr<MountInfo> TopMountAt(const std::string& path);

}  // namespace lazysnap

#endif  // LAZYSNAP_FUSEFS_MOUNTINFO_H_

// Value types of the snapshotter: snapshot kinds, infos, usage and mounts, mirroring
// containerd's snapshots.Info / snapshots.Usage / mount.Mount. Plain values; cheap to copy.
#ifndef LAZYSNAP_SNAPSHOTTER_SNAPSHOT_H_
#define LAZYSNAP_SNAPSHOTTER_SNAPSHOT_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"

namespace lazysnap {

// Numbered as containerd.services.snapshots.v1.Kind.
enum class Kind { kUnknown = 0, kView = 1, kActive = 2, kCommitted = 3 };

// "view", "active", "committed" ("unknown" otherwise): the names containerd's filters use.
std::string_view KindName(Kind kind);

using Labels = std::map<std::string, std::string>;

struct Info {
  std::string name;    // the key (active/view) or name (committed)
  std::string parent;  // name of the committed parent, empty if none
  Kind kind = Kind::kUnknown;
  absl::Time created = absl::UnixEpoch();
  absl::Time updated = absl::UnixEpoch();
  Labels labels;
};

// Disk usage of a snapshot's own layer (its upper directory).
struct Usage {
  int64_t size = 0;    // bytes of allocated blocks
  int64_t inodes = 0;  // distinct inodes
};

// One mount(2) call, as containerd's mount.Mount (target is chosen by the caller).
struct Mount {
  std::string type;
  std::string source;
  std::vector<std::string> options;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_SNAPSHOTTER_SNAPSHOT_H_

// OverlaySnapshotter::RestoreRemoteLayers: remote layers are mounts owned by the daemon's
// process, so after a restart their directories are empty (or hold a dead FUSE mount after a
// crash) until they are mounted again from the labels committed with them.
#include <sys/mount.h>

#include <cerrno>

#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "snapshotter/overlay_snapshotter.h"

namespace lazysnap {

absl::StatusOr<OverlaySnapshotter::RestoreResult> OverlaySnapshotter::RestoreRemoteLayers() {
  struct Layer {
    std::string name, dir;
    Labels labels;
  };
  std::vector<Layer> layers;
  {
    ASSIGN_OR_RETURN(Filter all, Filter::ParseAny({}));
    ASSIGN_OR_RETURN(auto txn, ms_->Begin(false));
    ASSIGN_OR_RETURN(std::vector<Info> infos, txn->List(all));
    for (const Info& info : infos) {
      if (info.kind != Kind::kCommitted || !info.labels.count(kRemoteLabel)) continue;
      ASSIGN_OR_RETURN(SnapshotEntry e, txn->GetInfo(info.name));
      layers.push_back({info.name, UpperPath(e.id), info.labels});
    }
  }
  RestoreResult result;
  for (const Layer& layer : layers) {
    // A mount left by the previous process (dead after a crash): detach it first.
    if (umount2(layer.dir.c_str(), MNT_DETACH) == 0) {
      LZ_LOG(kInfo, "detached a stale mount at ", layer.dir);
    }
    const std::string digest = LayerDigestFromLabels(layer.labels);
    absl::Status s = digest.empty()
                         ? absl::FailedPreconditionError("no layer digest in its labels")
                         : mounter_->Mount(digest, layer.labels, layer.dir);
    if (s.ok()) {
      ++result.restored;
      LZ_LOG(kInfo, "restored remote snapshot ", layer.name, " (layer ", digest, ")");
    } else {
      ++result.failed;
      LZ_LOG(kError, "cannot restore remote snapshot ", layer.name, " (layer ", digest,
             "): ", s.ToString(), "; it stays unavailable until removed");
    }
  }
  return result;
}

}  // namespace lazysnap

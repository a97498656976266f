// The snapshotter's narrow interface to lazily-fetched layers (fusefs/ implements it later):
// mount one image layer read-only at a directory, check that a mount still serves, unmount.
// Plus the labels of containerd's remote-snapshot protocol (as stargz-snapshotter speaks it).
#ifndef LAZYSNAP_SNAPSHOTTER_REMOTE_LAYER_H_
#define LAZYSNAP_SNAPSHOTTER_REMOTE_LAYER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "snapshotter/snapshot.h"

namespace lazysnap {

// The chain ID a prepared layer is to be committed under (set by containerd's unpacker).
inline constexpr char kTargetSnapshotLabel[] = "containerd.io/snapshot.ref";
// The layer's digest: set by containerd's CRI plugin, or by ctr-remote / nerdctl.
inline constexpr char kCriLayerDigestLabel[] = "containerd.io/snapshot/cri.layer-digest";
inline constexpr char kStargzLayerDigestLabel[] = "containerd.io/snapshot/remote/stargz.digest";
// Marks a committed snapshot whose directory is a remote (lazily-fetched) mount.
inline constexpr char kRemoteLabel[] = "containerd.io/snapshot/remote";
inline constexpr char kRemoteLabelValue[] = "remote snapshot";

// The layer digest the labels name (CRI's label first), or "" when there is none.
std::string LayerDigestFromLabels(const Labels& labels);

// Implementations must be thread-safe: calls for different directories run concurrently.
class RemoteLayerMounter {
 public:
  virtual ~RemoteLayerMounter() = default;

  // Mounts layer `digest` read-only at the existing empty directory `dir`. `labels` are the
  // Prepare labels (image reference, manifest digest, TOC digest...). Any error means "not
  // available remotely": the caller falls back to an ordinary snapshot, so it must leave
  // `dir` unmounted and empty.
  virtual absl::Status Mount(const std::string& digest, const Labels& labels,
                             const std::string& dir) = 0;
  // OK when the mount at `dir` is alive and can serve reads.
  virtual absl::Status Check(const std::string& dir) = 0;
  // Unmounts `dir`. NotFound when nothing of ours is mounted there.
  virtual absl::Status Unmount(const std::string& dir) = 0;
};

// A mounter for builds and configurations without lazy pulling: Mount and Check are always
// Unavailable (so every Prepare is an ordinary overlayfs snapshot); Unmount detaches whatever
// is mounted at the directory.
std::unique_ptr<RemoteLayerMounter> NewUnavailableRemoteLayerMounter();

}  // namespace lazysnap

#endif  // LAZYSNAP_SNAPSHOTTER_REMOTE_LAYER_H_

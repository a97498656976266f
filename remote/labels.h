// What a Prepare's labels say about the layer to mount remotely. Two dialects name the image
// and layer: containerd's CRI plugin (containerd.io/snapshot/cri.*) and stargz-snapshotter's
// ctr-remote / nerdctl (containerd.io/snapshot/remote/stargz.*); the layer descriptor's own
// annotations arrive as containerd.io/snapshot/... labels (e.g. stargz/toc.digest).
#ifndef LAZYSNAP_REMOTE_LABELS_H_
#define LAZYSNAP_REMOTE_LABELS_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "base/digest.h"
#include "registry/reference.h"
#include "snapshotter/snapshot.h"

namespace lazysnap {

inline constexpr char kCriImageRefLabel[] = "containerd.io/snapshot/cri.image-ref";
inline constexpr char kCriManifestDigestLabel[] = "containerd.io/snapshot/cri.manifest-digest";
inline constexpr char kCriImageLayersLabel[] = "containerd.io/snapshot/cri.image-layers";
inline constexpr char kStargzReferenceLabel[] = "containerd.io/snapshot/remote/stargz.reference";
inline constexpr char kStargzLayersLabel[] = "containerd.io/snapshot/remote/stargz.layers";

// A remote layer as the labels describe it. Value type.
struct RemoteLayerSpec {
  Sha256 digest;                        // the layer blob
  std::optional<registry::Reference> ref;  // the image it is pulled from (its repository)
  std::optional<Sha256> toc_digest;     // containerd.io/snapshot/stargz/toc.digest
};

// Parses the layer `digest` and the labels. A malformed digest, image reference or TOC digest
// is InvalidArgument; a missing reference leaves `ref` empty (the layer can then only be
// served from what is cached locally). CRI's labels win over stargz's. Thread-safe.
absl::StatusOr<RemoteLayerSpec> ParseRemoteLayerLabels(const std::string& digest,
                                                       const Labels& labels);

}  // namespace lazysnap

#endif  // LAZYSNAP_REMOTE_LABELS_H_

// What a Prepare's labels say about the layer to mount remotely. Two dialects name the image
// and layer: containerd's CRI plugin (containerd.io/snapshot/cri.*) and stargz-snapshotter's
// ctr-remote / nerdctl (containerd.io/snapshot/remote/stargz.*); the layer descriptor's own
// annotations arrive as containerd.io/snapshot/... labels (e.g. stargz/toc.digest).
#ifndef LAZYSNAP_REMOTE_LABELS_H_
#define LAZYSNAP_REMOTE_LABELS_H_

#include <optional>
#include <string>
#include <vector>

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
  // containerd.io/snapshot/lazysnap/toc-tail-size (format/layer.h): the bytes from the TOC to
  // the blob's end, a hint for the first read's size. Unverified: a malformed one is left out.
  std::optional<uint64_t> toc_tail_size;
  // The image's manifest: cri.manifest-digest, else the digest of a digest-pinned reference
  // ("repo@sha256:..."). Keys per-image state (access traces) when present.
  std::optional<Sha256> manifest_digest;
  // Every layer of the image, base first (cri.image-layers, else stargz.layers: comma-
  // separated digests). containerd truncates the list to fit its label size limit, so it
  // may lack the last layers; `digest` need not be in it.
  std::vector<Sha256> image_layers;
};

// Parses the layer `digest` and the labels. A malformed digest, image reference or TOC digest
// is InvalidArgument; a missing reference leaves `ref` empty (the layer can then only be
// served from what is cached locally). CRI's labels win over stargz's. The informational
// labels (manifest digest, image layers) never fail the parse: a malformed one is logged and
// left out (a malformed entry of the layer list ends the list). Thread-safe.
absl::StatusOr<RemoteLayerSpec> ParseRemoteLayerLabels(const std::string& digest,
                                                       const Labels& labels);

}  // namespace lazysnap

#endif  // LAZYSNAP_REMOTE_LABELS_H_

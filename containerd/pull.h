// PullImage: pulls an image into containerd LAZILY, as containerd's own unpacker does it but
// with the labels that make a remote snapshotter (lazysnapd) mount seekable layers instead of
// downloading them:
//   - manifest (through an index to the wanted platform) and config from the registry;
//   - a lease, so nothing half-pulled survives a failure (deleted at the end either way);
//   - per layer, unless the snapshot of its chain ID exists: Prepare("extract-<unique>
//     <chainID>", parent chain ID, labels containerd.io/snapshot.ref=<chainID>, the CRI labels
//     cri.image-ref / cri.layer-digest / cri.manifest-digest / cri.image-layers and the
//     layer's annotations under containerd.io/snapshot/). AlreadyExists = mounted remotely.
//     Otherwise (not seekable) the blob is written to the content store, applied onto the
//     returned mounts by containerd's diff service, checked against the config's diff ID and
//     committed under the chain ID;
//   - config, manifest (and index) into the content store with containerd's GC labels
//     (gc.ref.content.*, and gc.ref.snapshot.<snapshotter> on the config: "unpacked"); the
//     config and manifest on a second thread while the layers are prepared;
//   - the image record (created, or its target replaced).
// Spec of the labels: docs/cli.md ("lazysnap image pull").
#ifndef LAZYSNAP_CONTAINERD_PULL_H_
#define LAZYSNAP_CONTAINERD_PULL_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/blob_source.h"
#include "containerd/api.h"
#include "format/oci.h"

namespace lazysnap::containerd {

// The registry side of a pull, for one image reference. Implementations verify digests.
class ImageSource {
 public:
  virtual ~ImageSource() = default;
  // The manifest or index the reference names, and its exact bytes.
  virtual absl::Status Top(Descriptor* desc, std::string* bytes) = 0;
  // A manifest of the reference's repository by digest (an index entry).
  virtual absl::StatusOr<std::string> FetchManifest(const Descriptor& desc) = 0;
  // A small blob (the config), whole.
  virtual absl::StatusOr<std::string> FetchBlob(const Descriptor& desc) = 0;
  // A layer blob for streaming into the content store.
  virtual absl::StatusOr<std::unique_ptr<BlobSource>> OpenBlob(const Descriptor& desc) = 0;
};

struct PullOptions {
  std::string name;         // the image record's name, e.g. "registry.example/app:v1"
  std::string image_ref;    // for the cri.image-ref label (what lazysnapd fetches from)
  std::string snapshotter = "lazysnap";
  Platform platform = Platform::Default();
  absl::Duration lease_expire = absl::Hours(1);  // lease left by a crashed pull expires
  std::function<void(std::string_view)> progress;  // one line per step; may be empty
};

enum class LayerOutcome { kRemote, kApplied, kPresent };
std::string_view LayerOutcomeName(LayerOutcome o);  // "remote", "applied", "present"

struct PulledLayer {
  Descriptor blob;
  Sha256 diff_id;
  std::string chain_id;  // "sha256:..."
  LayerOutcome outcome = LayerOutcome::kRemote;
};

struct PullResult {
  Descriptor target;  // the image record's target (the index or manifest)
  Descriptor manifest, config;
  std::vector<PulledLayer> layers;
};

// Pulls as described above. Errors name the step and object; containerd's and the source's
// codes are kept (NotFound for an unknown reference, InvalidArgument for a manifest that is
// not an image, FailedPrecondition for a diff ID mismatch). On error no image record is
// created or changed, prepared snapshots are removed and the lease is deleted.
absl::StatusOr<PullResult> PullImage(ContainerdApi& api, ImageSource& source,
                                     const PullOptions& options);

// The chain IDs of `diff_ids` (OCI image spec): chain[0] = diff[0], chain[i] =
// sha256(chain[i-1] + " " + diff[i]).
std::vector<Sha256> ChainIds(const std::vector<Sha256>& diff_ids);

// The Prepare labels of layer `index` of `manifest` (see above). Exposed for tests.
Labels LayerLabels(const Manifest& manifest, const Sha256& manifest_digest, size_t index,
                   const std::string& chain_id, const std::string& image_ref);

}  // namespace lazysnap::containerd

#endif  // LAZYSNAP_CONTAINERD_PULL_H_

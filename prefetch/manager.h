// PrefetchManager: what lazysnapd does with access traces when layers are mounted
// (docs/prefetch.md).
//
// On each mounted layer of image M (keyed by its manifest digest, prefetch/trace.md):
//   - M has a trace (local TraceStore, else the TraceSource, e.g. the registry, when set) and
//     it lists the layer with the same TOC digest: replay its chunks, in trace order.
//   - else, when the layer has a `.prefetch.landmark`: prefetch the chunks before it.
//   - M has no trace and recording is on: the layer's reads join M's recording. The recording
//     ends `window` after the first read or after `quiet` without a new one; the merged trace
//     is stored (TraceStore::Put) and used from then on.
//   - then, with background_fetch, the rest of the layer.
// Layers without an image key get the landmark and background passes only.
#ifndef LAZYSNAP_PREFETCH_MANAGER_H_
#define LAZYSNAP_PREFETCH_MANAGER_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cache/layer_cache.h"
#include "format/layer.h"
#include "prefetch/recorder.h"
#include "prefetch/scheduler.h"
#include "prefetch/trace.h"

namespace lazysnap {

struct PrefetchConfig {
  bool record = true;
  RecordingPolicy recording;
  uint32_t max_recorded_chunks = 1u << 20;  // per layer
  bool replay = true;
  bool landmark = true;
  bool background_fetch = false;
  bool registry_lookup = true;  // ask the TraceSource (if set) when no local trace exists
  PrefetchOptions scheduler;
};

// Where traces not in the local store come from (the registry: set by lazysnapd's wiring).
class TraceSource {
 public:
  virtual ~TraceSource() = default;
  // The trace of image `manifest`, pulled as `image_ref` ("" if unknown) names the repository.
  // NotFound when there is none. Called at most once per image per PrefetchManager, from
  // LayerMounted (the mount waits: keep it bounded). Must be thread-safe.
  virtual absl::StatusOr<Trace> Fetch(const std::string& image_ref, const Sha256& manifest) = 0;
  // A layer of image `manifest` is about to be mounted (its TOC not yet read): a source may
  // start looking the trace up so that the later Fetch finds it ready. Must not block on the
  // network. Thread-safe.
  virtual void Hint(const std::string& image_ref, const Sha256& manifest) {}
};

struct MountedLayerInfo {
  std::string id;                // unique while mounted (the mount directory)
  std::optional<Sha256> image;   // the image manifest digest, if known
  std::string image_ref;         // the image reference, for TraceSource ("" if unknown)
  Sha256 digest;                 // the layer blob
  std::shared_ptr<const SeekableLayer> layer;
  std::shared_ptr<LayerCache> cache;  // opened over layer->index.chunks()
};

class PrefetchManager {
 public:
  // Traces are stored under `root`/traces (TraceStore).
  PrefetchManager(const PrefetchConfig& config, std::string root);
  // Ends every recording that saw reads (stores its trace), cancels prefetching.
  ~PrefetchManager();
  PrefetchManager(const PrefetchManager&) = delete;
  PrefetchManager& operator=(const PrefetchManager&) = delete;

  // Every method is thread-safe.

  void SetTraceSource(std::shared_ptr<TraceSource> source);
  // Passes TraceSource::Hint on when the image's trace may be needed from the source (lookup
  // on, no trace stored or known for the image yet). Cheap; call before mounting a layer.
  void HintImage(const std::string& image_ref, const Sha256& manifest);
  // Before a layer's TOC is read: the blob ranges its replay's first requests will read
  // (OrderedRequestRanges over the trace's recorded ranges), up to `max_bytes`, when image
  // `manifest` has a trace in the local store (or loaded) listing `layer` with ranges; sets
  // *blob_size. Empty otherwise, and while another mount holds the image's state (TraceOf
  // asking a TraceSource: not waited for). Asks no TraceSource (no round trip).
  std::vector<TraceRange> EarlyRanges(const Sha256& manifest, const Sha256& layer,
                                      uint64_t max_bytes, uint64_t* blob_size);
  // Starts replay / landmark / recording / background work for a just-mounted layer.
  void LayerMounted(const MountedLayerInfo& info);
  // Stops work for the layer (waits for its running prefetch requests). Its reads recorded so
  // far stay in the image's recording.
  void LayerUnmounted(const std::string& id);
  // LayerMounted was called for `id` but its mount then failed (the FUSE mount, after the
  // replay was started): stops its work as LayerUnmounted does and also takes the layer out of
  // the image's recording (its log off the cache), so that containerd's retry of the mount
  // records the layer afresh instead of beside a dead entry of the same digest.
  void LayerMountFailed(const std::string& id);
  // Ends the recordings that are due (or all, with `all`), storing their traces. The manager's
  // own thread calls it periodically; tests call it directly.
  void FinishRecordings(bool all = false);
  // Blocks until no prefetch batch is queued or running.
  void WaitIdle() { scheduler_.WaitIdle(); }

  TraceStore& store() { return store_; }
  const PrefetchConfig& config() const { return config_; }

 private:
  struct Image;
  struct Mount {
    uint64_t job = 0;  // 0: none
    // Set when the layer joined its image's recording: what LayerMountFailed takes back.
    std::shared_ptr<Image> recording;
    std::shared_ptr<AccessLog> log;
    std::weak_ptr<LayerCache> cache;
  };
  // Erases `id` from mounts_ and cancels its job; returns what it held (job 0 if none).
  Mount Forget(const std::string& id);
  std::shared_ptr<Image> ImageFor(const Sha256& manifest);
  // The image's trace, loading it on first use (store, then source). Null when none.
  std::shared_ptr<const Trace> TraceOf(Image& image, const MountedLayerInfo& info);
  void Monitor();

  const PrefetchConfig config_;
  TraceStore store_;
  PrefetchScheduler scheduler_;

  mutable absl::Mutex mu_;
  absl::CondVar stop_cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<TraceSource> source_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Image>> images_ ABSL_GUARDED_BY(mu_);  // by hex
  std::map<std::string, Mount> mounts_ ABSL_GUARDED_BY(mu_);                   // by id
  std::thread monitor_;  // last: started after the fields above
};

}  // namespace lazysnap

#endif  // LAZYSNAP_PREFETCH_MANAGER_H_

// Recording an image's access trace: one AccessLog per mounted layer of the image (set on the
// layer's LayerCache, lock-free on the read path), merged by absolute time into a Trace when
// the recording ends (docs/prefetch.md).
#ifndef LAZYSNAP_PREFETCH_RECORDER_H_
#define LAZYSNAP_PREFETCH_RECORDER_H_

#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "base/digest.h"
#include "cache/access_log.h"
#include "format/layer.h"
#include "prefetch/trace.h"

namespace lazysnap {

// One layer's log in a recording.
struct RecordedLayer {
  Sha256 digest;
  Sha256 toc_digest;
  std::shared_ptr<AccessLog> log;
  // When set, the trace gets the blob's size and each chunk's blob range (LayerTrace::ranges).
  std::shared_ptr<const SeekableLayer> layer;
};

// The trace of image `manifest` from its layers' logs: each access's time is taken as
// log->start() + millis, and the trace starts at the earliest access of any layer, so the
// layers' entries share one clock. Layers without accesses are kept with an empty list
// (replay then fetches nothing for them instead of falling back to the landmark).
// A layer listed twice keeps its first log. Thread-safe (reads the logs' snapshots).
Trace MergeAccessLogs(const Sha256& manifest, const std::vector<RecordedLayer>& layers);

// When a recording ends. `first` / `last` are the earliest / latest access over its layers
// (absl::InfinitePast() when none yet), `mounted` when its first layer was mounted.
enum class RecordingState { kRecording, kDone, kAbandoned };
struct RecordingPolicy {
  absl::Duration window = absl::Seconds(60);   // after the first access
  absl::Duration quiet = absl::Seconds(5);     // no new access for this long
  absl::Duration idle = absl::Minutes(30);     // no access at all since the mount: give up
};
RecordingState Decide(const RecordingPolicy& policy, absl::Time mounted, absl::Time first,
                      absl::Time last, absl::Time now);

}  // namespace lazysnap

#endif  // LAZYSNAP_PREFETCH_RECORDER_H_

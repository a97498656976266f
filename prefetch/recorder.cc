#include "prefetch/recorder.h"

#include <algorithm>

namespace lazysnap {

Trace MergeAccessLogs(const Sha256& manifest, const std::vector<RecordedLayer>& layers) {
  Trace trace;
  trace.manifest = manifest;
  std::vector<std::vector<AccessLog::Access>> snaps;
  absl::Time begin = absl::InfiniteFuture();
  std::vector<const RecordedLayer*> kept;
  for (const RecordedLayer& l : layers) {
    bool dup = std::any_of(kept.begin(), kept.end(),
                           [&l](const RecordedLayer* k) { return k->digest == l.digest; });
    if (dup || l.log == nullptr) continue;
    kept.push_back(&l);
    snaps.push_back(l.log->Snapshot());
    for (const AccessLog::Access& a : snaps.back()) {
      begin = std::min(begin, l.log->start() + absl::Milliseconds(a.millis));
    }
  }
  for (size_t i = 0; i < kept.size(); i++) {
    LayerTrace lt;
    lt.digest = kept[i]->digest;
    lt.toc_digest = kept[i]->toc_digest;
    const absl::Time start = kept[i]->log->start();
    const SeekableLayer* layer = kept[i]->layer.get();
    const absl::Span<const Chunk> table =
        layer != nullptr ? layer->index.chunks() : absl::Span<const Chunk>();
    bool ranged = layer != nullptr && layer->blob_size > 0;
    for (const AccessLog::Access& a : snaps[i]) {
      int64_t ms = absl::ToInt64Milliseconds(start + absl::Milliseconds(a.millis) - begin);
      lt.chunks.push_back({a.chunk, static_cast<uint32_t>(std::clamp<int64_t>(ms, 0, UINT32_MAX))});
      if (ranged && a.chunk < table.size() &&
          table[a.chunk].compressed_offset + table[a.chunk].compressed_size <= layer->blob_size) {
        lt.ranges.push_back({table[a.chunk].compressed_offset, table[a.chunk].compressed_size});
      } else {
        ranged = false;
      }
    }
    if (ranged) {
      lt.blob_size = layer->blob_size;
    } else {
      lt.ranges.clear();
    }
    trace.layers.push_back(std::move(lt));
  }
  return trace;
}

RecordingState Decide(const RecordingPolicy& policy, absl::Time mounted, absl::Time first,
                      absl::Time last, absl::Time now) {
  if (first == absl::InfinitePast()) {
    return now - mounted >= policy.idle ? RecordingState::kAbandoned : RecordingState::kRecording;
  }
  if (now - first >= policy.window || now - last >= policy.quiet) return RecordingState::kDone;
  return RecordingState::kRecording;
}

}  // namespace lazysnap

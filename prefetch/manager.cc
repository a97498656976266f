#include "prefetch/manager.h"

#include <algorithm>

#include "absl/time/clock.h"
#include "base/log.h"
#include "base/strings.h"

namespace lazysnap {

struct PrefetchManager::Image {
  explicit Image(const Sha256& m) : manifest(m) {}
  const Sha256 manifest;
  absl::Mutex mu;  // serializes loading the trace and the recording's changes
  bool loaded ABSL_GUARDED_BY(mu) = false;
  std::shared_ptr<const Trace> trace ABSL_GUARDED_BY(mu);
  bool recording ABSL_GUARDED_BY(mu) = false;
  bool recorded ABSL_GUARDED_BY(mu) = false;  // a recording of it ended in this process
  absl::Time mounted ABSL_GUARDED_BY(mu);
  absl::Time first ABSL_GUARDED_BY(mu) = absl::InfinitePast();  // first read seen
  std::vector<RecordedLayer> layers ABSL_GUARDED_BY(mu);
  std::vector<std::weak_ptr<LayerCache>> caches ABSL_GUARDED_BY(mu);
};

PrefetchManager::PrefetchManager(const PrefetchConfig& config, std::string root)
    : config_(config), store_(std::move(root)), scheduler_(config.scheduler) {
  monitor_ = std::thread([this] { Monitor(); });
}

PrefetchManager::~PrefetchManager() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    stop_cv_.SignalAll();
  }
  monitor_.join();
  FinishRecordings(/*all=*/true);
}

void PrefetchManager::SetTraceSource(std::shared_ptr<TraceSource> source) {
  absl::MutexLock lock(&mu_);
  source_ = std::move(source);
}

void PrefetchManager::HintImage(const std::string& image_ref, const Sha256& manifest) {
  if (!config_.registry_lookup || !config_.replay) return;
  std::shared_ptr<TraceSource> source;
  std::shared_ptr<Image> image;
  {
    absl::MutexLock lock(&mu_);  // never held with an Image::mu (that order is image, then mu_)
    source = source_;
    if (auto it = images_.find(manifest.Hex()); it != images_.end()) image = it->second;
  }
  if (source == nullptr || store_.Has(manifest)) return;
  if (image != nullptr) {
    absl::MutexLock lock(&image->mu);
    if (image->loaded) return;
  }
  source->Hint(image_ref, manifest);
}

std::shared_ptr<PrefetchManager::Image> PrefetchManager::ImageFor(const Sha256& manifest) {
  absl::MutexLock lock(&mu_);
  auto& image = images_[manifest.Hex()];
  if (!image) image = std::make_shared<Image>(manifest);
  return image;
}

std::shared_ptr<const Trace> PrefetchManager::TraceOf(Image& image, const MountedLayerInfo& info)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(image.mu) {
  if (image.loaded) return image.trace;
  image.loaded = true;
  auto stored = store_.Get(image.manifest);
  if (stored.ok()) {
    image.trace = std::make_shared<const Trace>(*std::move(stored));
    LZ_LOG(kInfo, "prefetch: trace of ", image.manifest.ToString(), " from ", store_.dir(), " (",
           image.trace->access_count(), " chunks)");
    return image.trace;
  }
  if (!absl::IsNotFound(stored.status())) {
    LZ_LOG(kWarning, "prefetch: stored trace unusable: ", stored.status().ToString());
  }
  std::shared_ptr<TraceSource> source;
  {
    absl::MutexLock lock(&mu_);
    source = source_;
  }
  if (source == nullptr || !config_.registry_lookup) return nullptr;
  auto fetched = source->Fetch(info.image_ref, image.manifest);
  if (!fetched.ok()) {
    if (!absl::IsNotFound(fetched.status())) {
      LZ_LOG(kWarning, "prefetch: trace lookup for ", image.manifest.ToString(), ": ",
             fetched.status().ToString());
    }
    return nullptr;
  }
  if (fetched->manifest != image.manifest) {
    LZ_LOG(kWarning, "prefetch: the trace found for ", image.manifest.ToString(), " names ",
           fetched->manifest.ToString(), "; ignored");
    return nullptr;
  }
  absl::Status put = store_.Put(*fetched);
  if (!put.ok()) LZ_LOG(kWarning, "prefetch: storing the fetched trace: ", put.ToString());
  image.trace = std::make_shared<const Trace>(*std::move(fetched));
  LZ_LOG(kInfo, "prefetch: trace of ", image.manifest.ToString(), " fetched (",
         image.trace->access_count(), " chunks)");
  return image.trace;
}

std::vector<TraceRange> PrefetchManager::EarlyRanges(const Sha256& manifest, const Sha256& layer,
                                                     uint64_t max_bytes, uint64_t* blob_size) {
  if (!config_.replay || max_bytes == 0) return {};
  std::shared_ptr<Image> image = ImageFor(manifest);
  std::shared_ptr<const Trace> trace;
  // Not waited for: TraceOf may hold it across a registry lookup (another layer's mount).
  // Busy: no early bytes, the replay starts after the TOC as without them.
  if (!image->mu.TryLock()) return {};
  if (image->loaded) {
    trace = image->trace;
  } else if (auto stored = store_.Get(manifest); stored.ok()) {
    image->loaded = true;  // as TraceOf's first step
    image->trace = std::make_shared<const Trace>(*std::move(stored));
    trace = image->trace;
  }
  image->mu.Unlock();
  const LayerTrace* entry = trace != nullptr ? trace->Find(layer) : nullptr;
  if (entry == nullptr || entry->ranges.size() != entry->chunks.size() || entry->blob_size == 0) {
    return {};
  }
  // The traced chunks as a chunk table of their own, in trace order: cut as the replay cuts.
  std::vector<Chunk> table(entry->ranges.size());
  std::vector<uint32_t> order(table.size());
  for (uint32_t i = 0; i < table.size(); i++) {
    table[i].compressed_offset = entry->ranges[i].offset;
    table[i].compressed_size = static_cast<uint32_t>(entry->ranges[i].size);
    table[i].size = entry->ranges[i].size > 0 ? 1 : 0;
    order[i] = i;
  }
  std::vector<TraceRange> ranges = scheduler_.OrderedRequestRanges(table, order);
  uint64_t total = 0;
  size_t n = 0;
  while (n < ranges.size() && total + ranges[n].size <= max_bytes) total += ranges[n++].size;
  ranges.resize(n);
  *blob_size = entry->blob_size;
  return ranges;
}

void PrefetchManager::LayerMounted(const MountedLayerInfo& info) {
  const absl::Span<const Chunk> chunks = info.layer->index.chunks();
  std::vector<uint32_t> order;
  bool planned = false;
  Mount mount;
  if (info.image && (config_.replay || config_.record)) {
    std::shared_ptr<Image> image = ImageFor(*info.image);
    absl::MutexLock lock(&image->mu);
    std::shared_ptr<const Trace> trace = TraceOf(*image, info);
    if (trace != nullptr) {
      const LayerTrace* entry = trace->Find(info.digest);
      if (entry == nullptr) {
        LZ_LOG(kInfo, "prefetch: the trace of ", info.image->ToString(), " does not list layer ",
               info.digest.ToString());
      } else if (entry->toc_digest != info.layer->toc_digest) {
        LZ_LOG(kWarning, "prefetch: the trace of ", info.image->ToString(), " has layer ",
               info.digest.ToString(), " with TOC ", entry->toc_digest.ToString(), ", mounted TOC is ",
               info.layer->toc_digest.ToString(), ": not replayed");
      } else if (config_.replay) {
        for (const TraceAccess& a : entry->chunks) order.push_back(a.chunk);
        planned = true;
        LZ_LOG(kInfo, "prefetch: replaying ", order.size(), " traced chunks of layer ",
               info.digest.ToString());
      }
    } else if (config_.record && !image->recorded) {
      if (!image->recording) {
        image->recording = true;
        image->mounted = absl::Now();
        image->first = absl::InfinitePast();
        LZ_LOG(kInfo, "prefetch: recording the access trace of ", info.image->ToString());
      }
      // Each chunk is recorded once at most: no need for more slots than chunks.
      const uint32_t count = static_cast<uint32_t>(chunks.size());
      auto log = std::make_shared<AccessLog>(count, std::min(count, config_.max_recorded_chunks),
                                             absl::InfiniteDuration());
      info.cache->SetAccessLog(log);
      image->layers.push_back({info.digest, info.layer->toc_digest, log, info.layer});
      image->caches.push_back(info.cache);
      mount.recording = image;
      mount.log = log;
      mount.cache = info.cache;
    }
  }
  if (!planned && config_.landmark) {
    if (std::optional<uint64_t> landmark = info.layer->index.prefetch_landmark_offset()) {
      for (uint32_t c = 0; c < chunks.size(); c++) {
        if (chunks[c].compressed_offset < *landmark) order.push_back(c);
      }
      std::sort(order.begin(), order.end(), [&chunks](uint32_t a, uint32_t b) {
        return chunks[a].compressed_offset < chunks[b].compressed_offset;
      });
      planned = true;
      LZ_LOG(kInfo, "prefetch: ", order.size(), " chunks before the landmark of layer ",
             info.digest.ToString());
    }
  }
  if (!planned && !config_.background_fetch) {
    if (mount.recording != nullptr) {
      absl::MutexLock lock(&mu_);
      mounts_[info.id] = std::move(mount);
    }
    return;
  }
  PrefetchJob job;
  job.name = info.digest.ToString();
  job.cache = info.cache;
  job.chunks = chunks;
  job.keep_alive = info.layer;
  job.order = std::move(order);
  job.background = config_.background_fetch;
  mount.job = scheduler_.Submit(std::move(job));
  absl::MutexLock lock(&mu_);
  mounts_[info.id] = std::move(mount);
}

PrefetchManager::Mount PrefetchManager::Forget(const std::string& id) {
  Mount mount;
  {
    absl::MutexLock lock(&mu_);
    auto it = mounts_.find(id);
    if (it == mounts_.end()) return mount;
    mount = std::move(it->second);
    mounts_.erase(it);
  }
  if (mount.job != 0) scheduler_.Cancel(mount.job);
  return mount;
}

void PrefetchManager::LayerUnmounted(const std::string& id) { Forget(id); }

void PrefetchManager::LayerMountFailed(const std::string& id) {
  Mount mount = Forget(id);
  if (mount.recording == nullptr) return;
  mount.log->Stop();
  std::shared_ptr<LayerCache> cache = mount.cache.lock();
  if (cache != nullptr && cache->access_log() == mount.log) cache->SetAccessLog(nullptr);
  Image& image = *mount.recording;
  absl::MutexLock lock(&image.mu);
  auto& layers = image.layers;
  layers.erase(std::remove_if(layers.begin(), layers.end(),
                              [&mount](const RecordedLayer& l) { return l.log == mount.log; }),
               layers.end());
  // One entry of the cache (another mount of the same layer may have added its own).
  auto& caches = image.caches;
  auto same = std::find_if(caches.begin(), caches.end(),
                           [&mount](const std::weak_ptr<LayerCache>& c) {
                             return !c.owner_before(mount.cache) && !mount.cache.owner_before(c);
                           });
  if (same != caches.end()) caches.erase(same);
}

void PrefetchManager::FinishRecordings(bool all) {
  std::vector<std::shared_ptr<Image>> images;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [hex, image] : images_) images.push_back(image);
  }
  const absl::Time now = absl::Now();
  for (auto& image : images) {
    absl::MutexLock lock(&image->mu);
    if (!image->recording) continue;
    absl::Time last = absl::InfinitePast();
    for (const RecordedLayer& l : image->layers) {
      if (l.log->size() > 0) last = std::max(last, l.log->last_access());
    }
    if (last != absl::InfinitePast() && image->first == absl::InfinitePast()) image->first = now;
    RecordingState state = Decide(config_.recording, image->mounted, image->first, last, now);
    if (all && state == RecordingState::kRecording) {
      state = image->first == absl::InfinitePast() ? RecordingState::kAbandoned
                                                   : RecordingState::kDone;
    }
    if (state == RecordingState::kRecording) continue;
    for (const RecordedLayer& l : image->layers) {
      l.log->Stop();
    }
    for (auto& weak : image->caches) {
      if (auto cache = weak.lock()) cache->SetAccessLog(nullptr);
    }
    if (state == RecordingState::kDone) {
      Trace trace = MergeAccessLogs(image->manifest, image->layers);
      absl::Status put = store_.Put(trace);
      if (put.ok()) {
        LZ_LOG(kInfo, "prefetch: trace of ", image->manifest.ToString(), " recorded: ",
               trace.access_count(), " chunks in ", trace.layers.size(), " layers, stored at ",
               store_.PathOf(image->manifest));
        image->trace = std::make_shared<const Trace>(std::move(trace));
        image->loaded = true;
      } else {
        LZ_LOG(kWarning, "prefetch: storing the trace of ", image->manifest.ToString(), ": ",
               put.ToString());
      }
      image->recorded = true;
    } else {
      LZ_LOG(kInfo, "prefetch: no reads of ", image->manifest.ToString(), " since its mount; ",
             "recording abandoned");
    }
    image->recording = false;
    image->layers.clear();
    image->caches.clear();
  }
}

void PrefetchManager::Monitor() {
  const absl::Duration tick =
      std::clamp(config_.recording.quiet / 4, absl::Milliseconds(20), absl::Milliseconds(500));
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    stop_cv_.WaitWithTimeout(&mu_, tick);
    if (stop_) break;
    mu_.Unlock();
    FinishRecordings();
    mu_.Lock();
  }
}

}  // namespace lazysnap

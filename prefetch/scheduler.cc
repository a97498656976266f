#include "prefetch/scheduler.h"

#include <algorithm>

#include "absl/time/clock.h"
#include "base/log.h"
#include "base/strings.h"

namespace lazysnap {

struct PrefetchScheduler::Job {
  uint64_t id = 0;
  PrefetchJob spec;  // `order` cleared once cut into batches
  absl::Time started;
  uint64_t batches_total = 0;
  uint64_t batches_done = 0;  // run, skipped or dropped
  int running = 0;
  bool failed = false;
  bool cancelled = false;
};

namespace {

// Under a bandwidth limit a batch is reserved whole, so keep batches (and requests) to about a
// quarter second's worth: the limit then holds over short intervals too.
// max_request_bytes bounds every prefetch request, ordered (replay, landmark) ones too.
PrefetchOptions Effective(PrefetchOptions o) {
  o.ordered_request_bytes = std::min(o.ordered_request_bytes, o.max_request_bytes);
  if (o.bandwidth_limit > 0) {
    const uint64_t quarter = std::max<uint64_t>(o.bandwidth_limit / 4, 64 << 10);
    o.max_batch_bytes = std::min(o.max_batch_bytes, quarter);
    o.background_batch_bytes = std::min(o.background_batch_bytes, quarter);
    o.first_batch_bytes = std::min(o.first_batch_bytes, o.max_batch_bytes);
    o.max_request_bytes = std::min(o.max_request_bytes, quarter);
    o.ordered_request_bytes = std::min(o.ordered_request_bytes, quarter);
  }
  return o;
}

// `batch` (ordered chunks) cut into the requests LayerCache::EnsureChunks would make of it:
// blob order, chunks up to shape.max_gap_bytes apart joined, at most shape.max_request_bytes
// each. EnsureChunks fetches one call's requests one after another, so a batch of scattered
// chunks (a trace's small files) cost a round trip per request, in series; as batches of their
// own, `workers` of them are fetched at once.
std::vector<std::vector<uint32_t>> SplitIntoRequests(absl::Span<const Chunk> chunks,
                                                     std::vector<uint32_t> batch,
                                                     const FetchShape& shape) {
  std::stable_sort(batch.begin(), batch.end(), [&chunks](uint32_t a, uint32_t b) {
    return chunks[a].compressed_offset < chunks[b].compressed_offset;
  });
  std::vector<std::vector<uint32_t>> out;
  uint64_t begin = 0, end = 0;
  for (uint32_t c : batch) {
    const uint64_t off = chunks[c].compressed_offset, e = off + chunks[c].compressed_size;
    if (out.empty() || off > end + shape.max_gap_bytes ||
        std::max(e, end) - begin > std::max<uint64_t>(shape.max_request_bytes, 1)) {
      out.emplace_back();
      begin = off;
      end = e;
    }
    end = std::max(end, e);
    out.back().push_back(c);
  }
  return out;
}

}  // namespace

uint64_t PrefetchRequestBytes(absl::Span<const Chunk> chunks, std::vector<uint32_t> missing,
                              const FetchShape& shape) {
  std::sort(missing.begin(), missing.end(), [&chunks](uint32_t a, uint32_t b) {
    return chunks[a].compressed_offset < chunks[b].compressed_offset;
  });
  // As LayerCache::EnsureChunks: requests of at most max_request_bytes from their first chunk,
  // each merging chunks up to max_gap_bytes apart.
  uint64_t total = 0, begin = 0, end = 0, request = 0;
  bool open = false;
  for (uint32_t c : missing) {
    if (c >= chunks.size()) continue;
    const uint64_t off = chunks[c].compressed_offset, e = off + chunks[c].compressed_size;
    const bool same_request = open && e - request <= std::max<uint64_t>(shape.max_request_bytes, 1);
    if (same_request && off <= end + shape.max_gap_bytes &&
        std::max(e, end) - begin <= shape.max_request_bytes) {
      end = std::max(end, e);
      continue;
    }
    if (open) total += end - begin;
    if (!same_request) request = off;
    begin = off;
    end = e;
    open = true;
  }
  if (open) total += end - begin;
  return total;
}

PrefetchScheduler::PrefetchScheduler(const PrefetchOptions& options)
    : options_(Effective(options)), bucket_(options_.bandwidth_limit, options_.first_batch_bytes) {
  for (int i = 0; i < std::max(1, options_.workers); i++) workers_.emplace_back([this] { Work(); });
}

PrefetchScheduler::~PrefetchScheduler() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    for (auto& job : jobs_) job->cancelled = true;
    ordered_.clear();
    background_.clear();
    changed_.SignalAll();
  }
  for (std::thread& t : workers_) t.join();
}

std::vector<std::vector<uint32_t>> PrefetchScheduler::Cut(const PrefetchJob& job,
                                                          const std::vector<uint32_t>& order,
                                                          bool background) const {
  std::vector<std::vector<uint32_t>> batches;
  uint64_t cap = background ? options_.background_batch_bytes : options_.first_batch_bytes;
  const uint64_t max = background ? options_.background_batch_bytes : options_.max_batch_bytes;
  uint64_t bytes = 0;
  for (uint32_t c : order) {
    if (c >= job.chunks.size() || job.chunks[c].size == 0 || job.chunks[c].zeros) continue;
    if (batches.empty() || bytes >= cap) {
      if (!batches.empty()) cap = std::min(cap * 2, std::max(max, cap));
      batches.emplace_back();
      bytes = 0;
    }
    batches.back().push_back(c);
    bytes += job.chunks[c].compressed_size;
  }
  return batches;
}

std::vector<TraceRange> PrefetchScheduler::OrderedRequestRanges(
    absl::Span<const Chunk> chunks, const std::vector<uint32_t>& order) const {
  PrefetchJob job;
  job.chunks = chunks;
  std::vector<TraceRange> out;
  for (auto& batch : Cut(job, order, /*background=*/false)) {
    for (auto& request : SplitIntoRequests(chunks, std::move(batch), ShapeOf(Batch{}))) {
      uint64_t begin = UINT64_MAX, end = 0;
      for (uint32_t c : request) {
        begin = std::min(begin, chunks[c].compressed_offset);
        end = std::max(end, chunks[c].compressed_offset + chunks[c].compressed_size);
      }
      if (end > begin) out.push_back({begin, end - begin});
    }
  }
  return out;
}

uint64_t PrefetchScheduler::Submit(PrefetchJob spec) {
  auto job = std::make_shared<Job>();
  job->started = absl::Now();
  std::vector<std::vector<uint32_t>> ordered;
  const FetchShape ordered_shape = ShapeOf(Batch{});
  for (auto& batch : Cut(spec, spec.order, /*background=*/false)) {
    for (auto& request : SplitIntoRequests(spec.chunks, std::move(batch), ordered_shape)) {
      ordered.push_back(std::move(request));
    }
  }
  std::vector<std::vector<uint32_t>> rest;
  if (spec.background) {
    std::vector<bool> listed(spec.chunks.size(), false);
    for (uint32_t c : spec.order) {
      if (c < listed.size()) listed[c] = true;
    }
    std::vector<uint32_t> others;
    for (uint32_t c = 0; c < spec.chunks.size(); c++) {
      if (!listed[c]) others.push_back(c);
    }
    std::sort(others.begin(), others.end(), [&spec](uint32_t a, uint32_t b) {
      return spec.chunks[a].compressed_offset < spec.chunks[b].compressed_offset;
    });
    rest = Cut(spec, others, /*background=*/true);
  }
  spec.order.clear();
  spec.order.shrink_to_fit();
  job->spec = std::move(spec);
  job->batches_total = ordered.size() + rest.size();
  absl::MutexLock lock(&mu_);
  job->id = next_id_++;
  if (job->batches_total == 0) return job->id;
  jobs_.push_back(job);
  for (auto& b : ordered) ordered_.push_back({job, std::move(b)});
  for (auto& b : rest) background_.push_back({job, std::move(b), /*background=*/true});
  changed_.SignalAll();
  return job->id;
}

void PrefetchScheduler::Cancel(uint64_t id) {
  // Declared before the lock: the cache and index are released (maybe destroyed) unlocked.
  std::shared_ptr<LayerCache> cache;
  std::shared_ptr<const void> keep_alive;
  absl::MutexLock lock(&mu_);
  auto it = std::find_if(jobs_.begin(), jobs_.end(), [id](const auto& j) { return j->id == id; });
  if (it == jobs_.end()) return;
  std::shared_ptr<Job> job = *it;
  job->cancelled = true;
  auto mine = [&job](const Batch& b) { return b.job == job; };
  ordered_.erase(std::remove_if(ordered_.begin(), ordered_.end(), mine), ordered_.end());
  background_.erase(std::remove_if(background_.begin(), background_.end(), mine),
                    background_.end());
  changed_.SignalAll();
  while (job->running > 0) changed_.Wait(&mu_);
  // A worker that ran the job's last batch may still hold the Job for a moment after it said
  // so: take the references out of the Job itself, so none is left once Cancel returns. No
  // worker reads them any more (no batch of the job is queued or running; a cancelled job's
  // end is not logged).
  cache = std::move(job->spec.cache);
  keep_alive = std::move(job->spec.keep_alive);
  jobs_.erase(std::remove(jobs_.begin(), jobs_.end(), job), jobs_.end());
  changed_.SignalAll();
}

void PrefetchScheduler::WaitIdle() {
  absl::MutexLock lock(&mu_);
  while (!ordered_.empty() || !background_.empty() || running_ > 0) changed_.Wait(&mu_);
}

std::vector<PrefetchJobStats> PrefetchScheduler::Stats() const {
  absl::MutexLock lock(&mu_);
  std::vector<PrefetchJobStats> out;
  for (const auto& j : jobs_) {
    out.push_back({j->spec.name, j->batches_done, j->batches_total, j->failed, j->cancelled});
  }
  return out;
}

void PrefetchScheduler::Work() {
  for (;;) {
    Batch batch;
    {
      absl::MutexLock lock(&mu_);
      while (!stop_ && ordered_.empty() && background_.empty()) changed_.Wait(&mu_);
      if (stop_) return;
      std::deque<Batch>& q = !ordered_.empty() ? ordered_ : background_;
      batch = std::move(q.front());
      q.pop_front();
      running_++;
      batch.job->running++;
    }
    RunBatch(batch);
    std::shared_ptr<Job> job = std::move(batch.job);
    batch = Batch{};
    absl::MutexLock lock(&mu_);
    running_--;
    job->running--;
    job->batches_done++;
    if (job->batches_done == job->batches_total && !job->cancelled) {
      LayerCacheStats s = job->spec.cache->stats();
      LZ_LOG(kInfo, "prefetch of ", job->spec.name, " done in ",
             absl::FormatDuration(absl::Now() - job->started), ": ", s.prefetch_chunks,
             " chunks, ", s.prefetch_bytes_fetched, " bytes in ", s.prefetch_requests,
             " requests", job->failed ? " (some batches failed)" : "");
      jobs_.erase(std::remove(jobs_.begin(), jobs_.end(), job), jobs_.end());
    }
    changed_.SignalAll();
  }
}

FetchShape PrefetchScheduler::ShapeOf(const Batch& batch) const {
  FetchShape shape;
  shape.max_gap_bytes = options_.max_gap_bytes;
  if (batch.background) {
    shape.max_request_bytes = options_.max_request_bytes;
  } else {
    // The trace's chunks are what the workload reads next: they do not wait for its reads'
    // fetches, and every worker may fetch for the layer at once.
    shape.max_request_bytes = options_.ordered_request_bytes;
    shape.yield_to_ondemand = false;
    shape.max_fetches = std::max(1, options_.workers);
  }
  return shape;
}

void PrefetchScheduler::RunBatch(const Batch& batch) {
  Job& job = *batch.job;
  const FetchShape shape = ShapeOf(batch);
  std::vector<uint32_t> missing = job.spec.cache->Missing(batch.chunks);
  if (missing.empty()) return;
  const uint64_t bytes = bucket_.rate() > 0
                             ? PrefetchRequestBytes(job.spec.chunks, missing, shape)
                             : 0;
  const absl::Time start = absl::Now() + bucket_.Reserve(bytes, absl::Now());
  {
    absl::MutexLock lock(&mu_);
    while (!stop_ && !job.cancelled && absl::Now() < start) {
      changed_.WaitWithDeadline(&mu_, start);
    }
    if (stop_ || job.cancelled) return;
  }
  absl::Status s = job.spec.cache->EnsureChunks(missing, FetchPriority::kPrefetch, shape);
  if (!s.ok()) {
    absl::MutexLock lock(&mu_);
    if (!job.failed) {
      LZ_LOG(kWarning, "prefetch of ", job.spec.name, ": ", s.ToString(),
             " (its other batches still run; on-demand reads retry)");
    }
    job.failed = true;
  }
}

}  // namespace lazysnap

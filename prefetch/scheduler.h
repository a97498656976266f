// PrefetchScheduler: a pool of worker threads that fetch chunk lists into LayerCaches ahead of
// the reads (docs/prefetch.md).
//
// A job is one layer's ordered chunk list (a replayed trace, the chunks before an eStargz
// landmark) and optionally a background pass over the rest of the layer. The ordered list is
// cut, in its order, into batches that grow from first_batch_bytes, doubling up to
// max_batch_bytes of compressed data: small batches keep the trace's order (each batch is
// fetched in blob order), so what a workload reads first comes first. Each ordered batch is
// then cut, in blob order, into the requests it makes (at most ordered_request_bytes,
// bridging gaps up to max_gap_bytes), each queued as a batch of its own: a batch of scattered
// small chunks is fetched `workers` requests at once, not one round trip after another (one
// LayerCache::EnsureChunks(kPrefetch) call fetches its requests in series); ordered
// requests do not yield to on-demand fetches (they hold what the racing reads need next), and
// up to `workers` of them run at once per layer. Background batches (background_batch_bytes,
// requests up to max_request_bytes) come after every job's ordered batches and yield to
// on-demand fetches. A token bucket limits prefetch bandwidth, counting the blob bytes each
// batch's requests will read (bridged gaps included); on-demand reads are not limited.
#ifndef LAZYSNAP_PREFETCH_SCHEDULER_H_
#define LAZYSNAP_PREFETCH_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cache/layer_cache.h"
#include "format/index.h"
#include "prefetch/token_bucket.h"
#include "prefetch/trace.h"

namespace lazysnap {

struct PrefetchOptions {
  // Threads; also the ordered requests of one layer in flight at once (at most 4 of the
  // registry client's 8 connections per host stay with prefetch by default).
  int workers = 4;
  // Blob bytes fetched to join two ranges. Small: with requests running in parallel a gap
  // costs link time (1 MiB: 84 ms at 100 Mbit/s) and saves little; 64 KiB measured best on
  // gcc at 100 Mbit/s, 20 ms (docs/prefetch.md).
  uint64_t max_gap_bytes = 64ull << 10;
  uint64_t max_request_bytes = 16ull << 20;  // one background range request at most
  // One ordered (trace, landmark) request at most. An on-demand read of a chunk a prefetch
  // request holds waits on it only up to LayerCacheOptions::max_prefetch_wait_bytes (1 MiB),
  // else fetches the chunk again: keep ordered requests within that.
  uint64_t ordered_request_bytes = 1ull << 20;
  // Ordered batches: about one ordered request each, so `workers` of them run in parallel,
  // near the trace's order (a batch is fetched in blob order). 1 MiB with 4 workers measured
  // best on gcc and python at 100 Mbit/s, 20 ms (32 MiB batches: one request after another).
  uint64_t first_batch_bytes = 1ull << 20;   // the first batch of a job's ordered list
  uint64_t max_batch_bytes = 1ull << 20;     // ordered batches double up to this
  uint64_t background_batch_bytes = 32ull << 20;  // one background batch
  uint64_t bandwidth_limit = 0;              // bytes/s; 0: unlimited. When set, batches and
                                             // requests are capped at a quarter second's worth
};

// The blob bytes EnsureChunks(kPrefetch, shape) reads for `missing` (chunk indices into
// `chunks`): the chunks' ranges merged as it merges them, bridged gaps included.
uint64_t PrefetchRequestBytes(absl::Span<const Chunk> chunks, std::vector<uint32_t> missing,
                              const FetchShape& shape);

struct PrefetchJob {
  std::string name;                  // for logs (the layer digest)
  std::shared_ptr<LayerCache> cache;
  absl::Span<const Chunk> chunks;    // the cache's chunk table; must outlive the job
  std::shared_ptr<const void> keep_alive;  // holds `chunks` (the layer index)
  std::vector<uint32_t> order;       // chunks to fetch, in this order (out-of-range skipped)
  bool background = false;           // then every other chunk of the layer, in blob order
};

// A job's figures, a snapshot.
struct PrefetchJobStats {
  std::string name;
  uint64_t batches_done = 0, batches_total = 0;
  bool failed = false, cancelled = false;
};

class PrefetchScheduler {
 public:
  explicit PrefetchScheduler(const PrefetchOptions& options);
  // Cancels every job and joins the workers.
  ~PrefetchScheduler();
  PrefetchScheduler(const PrefetchScheduler&) = delete;
  PrefetchScheduler& operator=(const PrefetchScheduler&) = delete;

  // Every method is thread-safe.

  // Queues `job`; returns its id (> 0).
  uint64_t Submit(PrefetchJob job);
  // Drops the job's queued batches and waits for its running ones; afterwards the scheduler
  // holds no reference to the job's cache. Unknown or finished ids are a no-op.
  void Cancel(uint64_t id);
  // Blocks until no batch is queued or running (tests, benchmarks).
  void WaitIdle();
  std::vector<PrefetchJobStats> Stats() const;
  // The blob ranges of the ordered requests Submit() makes of `order` over `chunks`, in the
  // order it queues them, each as EnsureChunks reads it when all its chunks are missing.
  std::vector<TraceRange> OrderedRequestRanges(absl::Span<const Chunk> chunks,
                                               const std::vector<uint32_t>& order) const;

 private:
  struct Job;
  struct Batch {
    std::shared_ptr<Job> job;
    std::vector<uint32_t> chunks;
    bool background = false;
  };
  void Work();
  void RunBatch(const Batch& batch);
  std::vector<std::vector<uint32_t>> Cut(const PrefetchJob& job, const std::vector<uint32_t>& order,
                                         bool background) const;
  FetchShape ShapeOf(const Batch& batch) const;

  const PrefetchOptions options_;
  TokenBucket bucket_;
  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  std::deque<Batch> ordered_ ABSL_GUARDED_BY(mu_);
  std::deque<Batch> background_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);  // unfinished
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<std::thread> workers_;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_PREFETCH_SCHEDULER_H_

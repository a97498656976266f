// PrefetchScheduler: a pool of worker threads that fetch chunk lists into LayerCaches ahead of
// the reads (docs/prefetch.md).
//
// A job is one layer's ordered chunk list (a replayed trace, the chunks before an eStargz
// landmark) and optionally a background pass over the rest of the layer. The list is cut, in
// its order, into batches that grow geometrically (first_batch_bytes, doubling up to
// max_batch_bytes of compressed data): the first chunks a workload needs come quickly, later
// ones in large requests. Each batch is one LayerCache::EnsureChunks(kPrefetch) call, which
// sorts it by blob offset and coalesces it into requests of at most max_request_bytes bridging
// gaps up to max_gap_bytes. Workers take batches first-in first-out, every job's ordered
// batches before any background batch. A token bucket limits prefetch bandwidth (on-demand
// reads are not limited). LayerCache makes prefetch yield to on-demand reads.
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

namespace lazysnap {

struct PrefetchOptions {
  int workers = 2;
  uint64_t max_gap_bytes = 1ull << 20;       // blob bytes fetched to join two ranges
  uint64_t max_request_bytes = 16ull << 20;  // one range request at most
  uint64_t first_batch_bytes = 1ull << 20;   // the first batch of a job's list
  uint64_t max_batch_bytes = 32ull << 20;    // batches double up to this
  uint64_t bandwidth_limit = 0;              // bytes/s; 0: unlimited. When set, batches and
                                             // requests are capped at a quarter second's worth
};

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

 private:
  struct Job;
  struct Batch {
    std::shared_ptr<Job> job;
    std::vector<uint32_t> chunks;
  };
  void Work();
  void RunBatch(const Batch& batch);
  std::vector<std::vector<uint32_t>> Cut(const PrefetchJob& job, const std::vector<uint32_t>& order,
                                         bool grow) const;

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

#include "format/convert_pipeline.h"

#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace lazysnap {
namespace {

class Pipeline {
 public:
  Pipeline(const std::function<bool(size_t)>& has_job, size_t window)
      : has_job_(has_job), window_(window), slots_(window), ready_(window) {}

  void Worker(int thread, const std::function<absl::Status(size_t, int, JobOutput*)>& work) {
    for (;;) {
      size_t i;
      {
        absl::MutexLock lock(&mu_);
        auto can_start = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return !error_.ok() || end_ || next_ < consumed_ + window_;
        };
        mu_.Await(absl::Condition(&can_start));
        if (!error_.ok() || end_) return;
        i = next_++;
      }
      if (!has_job_(i)) {
        absl::MutexLock lock(&mu_);
        end_ = true;
        return;
      }
      JobOutput out;
      absl::Status s = work(i, thread, &out);
      absl::MutexLock lock(&mu_);
      if (!s.ok()) {
        if (error_.ok()) error_ = s;
        return;
      }
      slots_[i % window_] = std::move(out);
      ready_[i % window_] = true;
    }
  }

  absl::Status Consume(const std::function<absl::Status(size_t, JobOutput*)>& consume) {
    for (size_t i = 0;; ++i) {
      if (!has_job_(i)) break;
      JobOutput out;
      {
        absl::MutexLock lock(&mu_);
        auto done = [this, i]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return !error_.ok() || ready_[i % window_];
        };
        mu_.Await(absl::Condition(&done));
        if (!error_.ok()) return error_;
        out = std::move(slots_[i % window_]);
        ready_[i % window_] = false;
      }
      absl::Status s = consume(i, &out);
      if (!s.ok()) {
        Fail(s);
        return s;
      }
      absl::MutexLock lock(&mu_);
      consumed_ = i + 1;  // only now may job i + window start: at most `window` outputs live
    }
    return absl::OkStatus();
  }

  void Fail(const absl::Status& s) {
    absl::MutexLock lock(&mu_);
    if (error_.ok()) error_ = s;
  }

 private:
  const std::function<bool(size_t)>& has_job_;
  const size_t window_;
  absl::Mutex mu_;
  bool end_ ABSL_GUARDED_BY(mu_) = false;     // some worker found there is no job next_-1
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;      // next job to start
  size_t consumed_ ABSL_GUARDED_BY(mu_) = 0;  // jobs consumed so far
  std::vector<JobOutput> slots_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> ready_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::Status RunOrdered(size_t n, int threads, size_t window,
                        const std::function<absl::Status(size_t, int, JobOutput*)>& work,
                        const std::function<absl::Status(size_t, JobOutput*)>& consume) {
  return RunOrdered([n](size_t i) { return i < n; }, threads, window, work, consume);
}

absl::Status RunOrdered(const std::function<bool(size_t)>& has_job, int threads, size_t window,
                        const std::function<absl::Status(size_t, int, JobOutput*)>& work,
                        const std::function<absl::Status(size_t, JobOutput*)>& consume) {
  if (threads < 1) threads = 1;
  if (window < 1) window = 1;
  Pipeline p(has_job, window);
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (int t = 0; t < threads; ++t) pool.emplace_back([&p, &work, t] { p.Worker(t, work); });
  absl::Status s = p.Consume(consume);
  for (auto& th : pool) th.join();
  return s;
}

}  // namespace lazysnap

// A token bucket that paces bytes at a fixed rate, allowing debt: a caller takes what it needs
// at once and is told when it may go on. Callers that arrive while the bucket is in debt queue
// behind the debt, so several connections sharing one bucket share its rate roughly fairly.
#ifndef LAZYSNAP_BENCH_SHAPER_TOKEN_BUCKET_H_
#define LAZYSNAP_BENCH_SHAPER_TOKEN_BUCKET_H_

#include <chrono>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace lazysnap::shaper {

using Clock = std::chrono::steady_clock;

class TokenBucket {
 public:
  // `bytes_per_second` > 0; `burst_bytes` is the most a caller may take without waiting
  // after an idle period. The bucket starts full.
  TokenBucket(double bytes_per_second, double burst_bytes, Clock::time_point now);

  // Takes `bytes` tokens at time `now`; returns the time at which they are paid for (now, or
  // later when the bucket is in debt). The caller sleeps until then. Thread-safe.
  Clock::time_point Take(uint64_t bytes, Clock::time_point now);

  double rate() const { return rate_; }

 private:
  const double rate_;
  const double burst_;
  absl::Mutex mu_;
  double tokens_ ABSL_GUARDED_BY(mu_);  // negative: debt
  Clock::time_point last_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lazysnap::shaper

#endif  // LAZYSNAP_BENCH_SHAPER_TOKEN_BUCKET_H_

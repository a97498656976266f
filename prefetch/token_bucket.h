// TokenBucket: a bandwidth limit as a reservation schedule. Each transfer of n bytes reserves
// its slot: it may start once the transfers before it have "drained" at `rate` bytes/s, less
// a burst allowance. Pure arithmetic on times the caller passes in (testable without sleeps).
#ifndef LAZYSNAP_PREFETCH_TOKEN_BUCKET_H_
#define LAZYSNAP_PREFETCH_TOKEN_BUCKET_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace lazysnap {

class TokenBucket {
 public:
  // `rate` bytes per second (0: unlimited); up to `burst` bytes may go at once after idling.
  TokenBucket(uint64_t rate, uint64_t burst) : rate_(rate), burst_(burst) {}

  // Reserves `bytes` at time `now`; returns how long the caller must wait before sending them
  // (zero when unlimited or within the burst). Over any interval T the reserved bytes are at
  // most burst + rate * T + one transfer. Thread-safe.
  absl::Duration Reserve(uint64_t bytes, absl::Time now) {
    if (rate_ == 0) return absl::ZeroDuration();
    absl::MutexLock lock(&mu_);
    const absl::Duration burst_time = absl::Seconds(static_cast<double>(burst_) / rate_);
    if (next_ < now - burst_time) next_ = now - burst_time;  // idle: credit at most the burst
    const absl::Duration wait = next_ > now ? next_ - now : absl::ZeroDuration();
    next_ += absl::Seconds(static_cast<double>(bytes) / rate_);
    return wait;
  }
  uint64_t rate() const { return rate_; }

 private:
  const uint64_t rate_;
  const uint64_t burst_;
  absl::Mutex mu_;
  absl::Time next_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();  // when reservations drain
};

}  // namespace lazysnap

#endif  // LAZYSNAP_PREFETCH_TOKEN_BUCKET_H_

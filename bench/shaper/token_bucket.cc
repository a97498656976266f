#include "bench/shaper/token_bucket.h"

#include <algorithm>

namespace lazysnap::shaper {

TokenBucket::TokenBucket(double bytes_per_second, double burst_bytes, Clock::time_point now)
    : rate_(bytes_per_second), burst_(burst_bytes), tokens_(burst_bytes), last_(now) {}

Clock::time_point TokenBucket::Take(uint64_t bytes, Clock::time_point now) {
  absl::MutexLock lock(&mu_);
  if (now > last_) {
    double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
    last_ = now;
  }
  tokens_ -= static_cast<double>(bytes);
  if (tokens_ >= 0) return now;
  auto wait = std::chrono::duration<double>(-tokens_ / rate_);
  return last_ + std::chrono::duration_cast<Clock::duration>(wait);
}

}  // namespace lazysnap::shaper

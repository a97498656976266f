#include "cache/access_log.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace lazysnap {

AccessLog::AccessLog(uint32_t chunk_count, uint32_t capacity, absl::Duration window)
    : chunk_count_(chunk_count),
      capacity_(capacity),
      start_(absl::Now()),
      deadline_(window == absl::InfiniteDuration() ? absl::InfiniteFuture() : start_ + window),
      seen_(new std::atomic<uint64_t>[(chunk_count + 63) / 64]),
      slots_(new std::atomic<uint64_t>[std::max<uint32_t>(capacity, 1)]) {
  for (uint32_t i = 0; i < (chunk_count + 63) / 64; i++) seen_[i].store(0);
  for (uint32_t i = 0; i < std::max<uint32_t>(capacity, 1); i++) slots_[i].store(0);
}

bool AccessLog::stopped() const {
  return stopped_.load(std::memory_order_acquire) ||
         next_.load(std::memory_order_relaxed) >= capacity_ || absl::Now() >= deadline_;
}

void AccessLog::Record(uint32_t first, uint32_t end) {
  end = std::min(end, chunk_count_);
  for (uint32_t c = first; c < end; c++) {
    std::atomic<uint64_t>& word = seen_[c / 64];
    const uint64_t bit = uint64_t{1} << (c % 64);
    if (word.load(std::memory_order_relaxed) & bit) continue;  // the common, hot case
    if (stopped_.load(std::memory_order_acquire)) return;
    absl::Time now = absl::Now();
    if (now >= deadline_) {
      stopped_.store(true, std::memory_order_release);
      return;
    }
    if (word.fetch_or(bit, std::memory_order_relaxed) & bit) continue;  // another reader won
    uint32_t slot = next_.fetch_add(1, std::memory_order_relaxed);
    if (slot >= capacity_) {  // full: later first reads return at the stopped_ check
      next_.store(capacity_, std::memory_order_relaxed);
      stopped_.store(true, std::memory_order_release);
      return;
    }
    int64_t millis = absl::ToInt64Milliseconds(now - start_);
    uint64_t ms = static_cast<uint64_t>(std::clamp<int64_t>(millis, 0, 0xffffffff));
    slots_[slot].store((uint64_t{c} + 1) << 32 | ms, std::memory_order_release);
    int64_t prev = last_access_millis_.load(std::memory_order_relaxed);
    while (prev < millis &&
           !last_access_millis_.compare_exchange_weak(prev, millis, std::memory_order_relaxed)) {
    }
  }
}

uint32_t AccessLog::size() const {
  return std::min(next_.load(std::memory_order_relaxed), capacity_);
}

std::vector<AccessLog::Access> AccessLog::Snapshot() const {
  std::vector<Access> out;
  uint32_t n = size();
  out.reserve(n);
  for (uint32_t i = 0; i < n; i++) {
    uint64_t v = slots_[i].load(std::memory_order_acquire);
    if (v == 0) continue;  // claimed, not yet stored
    out.push_back(Access{static_cast<uint32_t>((v >> 32) - 1), static_cast<uint32_t>(v)});
  }
  return out;
}

absl::Time AccessLog::last_access() const {
  return start_ + absl::Milliseconds(last_access_millis_.load(std::memory_order_relaxed));
}

}  // namespace lazysnap

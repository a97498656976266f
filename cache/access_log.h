// AccessLog: the order in which a layer's chunks were first read, recorded on the read path
// without locks. The raw material of prefetch traces (prefetch/, docs/prefetch.md) and of
// `lazysnap image optimize`.
//
// One bit per chunk says "already recorded" (fetch_or: the first reader of a chunk wins); the
// winner claims the next slot of a fixed array with fetch_add and stores (chunk, time) in it.
// Recording stops at `capacity` accesses, after `window` from construction, or at Stop().
#ifndef LAZYSNAP_CACHE_ACCESS_LOG_H_
#define LAZYSNAP_CACHE_ACCESS_LOG_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/time/time.h"

namespace lazysnap {

class AccessLog {
 public:
  struct Access {
    uint32_t chunk = 0;
    uint32_t millis = 0;  // since the log was created
  };

  // A log for a layer of `chunk_count` chunks, keeping at most `capacity` accesses, for
  // `window` after construction (absl::InfiniteDuration(): until Stop()).
  AccessLog(uint32_t chunk_count, uint32_t capacity, absl::Duration window);
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Every method is thread-safe; Record() takes no lock and does not allocate.

  // Records the first access of each of the chunks [first, end) (indices into the layer's
  // chunk table; out-of-range ones are ignored). A no-op once stopped.
  void Record(uint32_t first, uint32_t end);
  // Ends recording; later Record() calls do nothing.
  void Stop() { stopped_.store(true, std::memory_order_release); }
  // True after Stop(), when the window has passed or the log is full.
  bool stopped() const;

  // The accesses recorded so far, in the order they were claimed. A Record() running
  // concurrently may or may not be included.
  std::vector<Access> Snapshot() const;
  // Number of accesses recorded so far.
  uint32_t size() const;
  // Time of the latest recorded access (the creation time if none): for "until reads go quiet".
  absl::Time last_access() const;
  absl::Time start() const { return start_; }
  uint32_t chunk_count() const { return chunk_count_; }

 private:
  const uint32_t chunk_count_;
  const uint32_t capacity_;
  const absl::Time start_;
  const absl::Time deadline_;
  std::unique_ptr<std::atomic<uint64_t>[]> seen_;   // one bit per chunk
  std::unique_ptr<std::atomic<uint64_t>[]> slots_;  // (chunk + 1) << 32 | millis; 0 = unset
  std::atomic<uint32_t> next_{0};
  std::atomic<int64_t> last_access_millis_{0};
  std::atomic<bool> stopped_{false};
};

}  // namespace lazysnap

#endif  // LAZYSNAP_CACHE_ACCESS_LOG_H_

// Test doubles for BlobSource: a forwarder to subclass for fault injection, and a counter of
// reads. Header-only; meant for tests, fuzzers and benchmarks.
#ifndef LAZYSNAP_BASE_TESTING_H_
#define LAZYSNAP_BASE_TESTING_H_

#include <atomic>
#include <cstdint>

#include "base/blob_source.h"

namespace lazysnap {

// Forwards every call to `base` (not owned; must outlive this). Subclass it and override
// ReadAt to inject faults. Thread-safe if `base` is.
class ForwardingBlobSource : public BlobSource {
 public:
  explicit ForwardingBlobSource(BlobSource* base) : base_(base) {}
  uint64_t Size() const override { return base_->Size(); }
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override {
    return base_->ReadAt(offset, buf);
  }

 protected:
  BlobSource* base() const { return base_; }

 private:
  BlobSource* base_;
};

// Counts the ReadAt calls and bytes requested that it forwards. Thread-safe if `base` is.
class CountingBlobSource : public ForwardingBlobSource {
 public:
  using ForwardingBlobSource::ForwardingBlobSource;
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override {
    reads_.fetch_add(1, std::memory_order_relaxed);
    bytes_.fetch_add(buf.size(), std::memory_order_relaxed);
    return ForwardingBlobSource::ReadAt(offset, buf);
  }
  uint64_t reads() const { return reads_.load(std::memory_order_relaxed); }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> reads_{0};
  std::atomic<uint64_t> bytes_{0};
};

}  // namespace lazysnap

#endif  // LAZYSNAP_BASE_TESTING_H_

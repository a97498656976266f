// Early bytes: a layer's traced blob ranges fetched while its TOC is still being read, so
// that the trace replay finds its first requests' bytes in memory (docs/prefetch.md, "The
// replay before the TOC").
//
// EarlyBytes holds a plan (blob ranges, in the order the replay will ask for them) and the
// bytes fetched for it; the fetching runs on the caller's threads (Fetch). EarlyBlobSource is
// the BlobSource given to the layer's cache: a read that lies inside one planned range is
// answered from memory (waiting for it when it is being fetched), anything else is read from
// the source below. Nothing is trusted: the bytes are the same blob's at the same offsets,
// and LayerCache checks every chunk's digest in whatever a read returns, so a wrong plan (a
// lying trace) costs fetched bytes, never wrong data.
#ifndef LAZYSNAP_REMOTE_EARLY_SOURCE_H_
#define LAZYSNAP_REMOTE_EARLY_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/blob_source.h"
#include "prefetch/trace.h"

namespace lazysnap {

struct EarlyBytesStats {
  uint64_t ranges = 0, fetched_bytes = 0, served_bytes = 0, served_reads = 0, failed = 0;
};

class EarlyBytes {
 public:
  // `plan`: non-overlapping blob ranges. Bytes are dropped at Release(), or at the first
  // Read after `hold` from construction, or range by range once read whole.
  EarlyBytes(std::vector<TraceRange> plan, absl::Duration hold);
  EarlyBytes(const EarlyBytes&) = delete;
  EarlyBytes& operator=(const EarlyBytes&) = delete;

  // Fetches the plan's ranges not yet taken, in order, from `source`, one at a time, until
  // none is left, Release(), or the first failed read (then no range is fetched any more, by
  // any thread: a registry that fails once is not asked for the rest). Several threads may
  // run it at once (each takes the next range).
  void Fetch(BlobSource& source) ABSL_LOCKS_EXCLUDED(mu_);
  // Copies [offset, offset + buf.size()) into `buf` when it lies inside one planned range
  // that is fetched or being fetched (waits for it, up to `wait`), and returns true; false
  // when the caller must read it elsewhere (not planned, not started yet: then the range is
  // not fetched any more, failed, released, still in flight after `wait`, empty). A
  // Release() while it waits returns false at once. Thread-safe.
  bool Read(uint64_t offset, absl::Span<char> buf, absl::Duration wait) ABSL_LOCKS_EXCLUDED(mu_);
  // Frees every byte; ranges not started are not fetched, readers waiting stop waiting.
  // Thread-safe.
  void Release() ABSL_LOCKS_EXCLUDED(mu_);
  EarlyBytesStats stats() const;

 private:
  enum class State { kPending, kFetching, kDone, kFailed, kGone };
  struct Range {
    TraceRange range;
    State state = State::kPending;
    std::string bytes;
    uint64_t served = 0;  // bytes read out of it
  };
  // Sorts `plan` by offset into `ranges` (dropping empty and overlapping ranges); returns
  // the indices into `ranges` in plan order.
  static std::vector<size_t> Layout(std::vector<TraceRange> plan, std::vector<Range>* ranges);
  // The range holding [offset, offset + n), n > 0, or null.
  Range* Find(uint64_t offset, uint64_t n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Time release_at_;
  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  std::vector<Range> ranges_ ABSL_GUARDED_BY(mu_);  // sorted by offset
  const std::vector<size_t> order_;                 // indices into ranges_, plan order
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;            // into order_
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  EarlyBytesStats stats_ ABSL_GUARDED_BY(mu_);
};

// A BlobSource over `inner` that answers reads from `early` when it can. Thread-safe as
// `inner` is. Both are shared (the early bytes' fetch threads may outlive the source).
class EarlyBlobSource : public BlobSource {
 public:
  EarlyBlobSource(std::shared_ptr<BlobSource> inner, std::shared_ptr<EarlyBytes> early,
                  absl::Duration wait)
      : inner_(std::move(inner)), early_(std::move(early)), wait_(wait) {}
  uint64_t Size() const override { return inner_->Size(); }
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override;

 private:
  const std::shared_ptr<BlobSource> inner_;
  const std::shared_ptr<EarlyBytes> early_;
  const absl::Duration wait_;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_REMOTE_EARLY_SOURCE_H_

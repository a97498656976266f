#include "remote/early_source.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "absl/time/clock.h"

namespace lazysnap {

EarlyBytes::EarlyBytes(std::vector<TraceRange> plan, absl::Duration hold)
    : release_at_(absl::Now() + hold), order_(Layout(std::move(plan), &ranges_)) {
  absl::MutexLock l(&mu_);
  stats_.ranges = ranges_.size();
}

std::vector<size_t> EarlyBytes::Layout(std::vector<TraceRange> plan, std::vector<Range>* ranges) {
  std::vector<size_t> by_offset(plan.size());
  std::iota(by_offset.begin(), by_offset.end(), 0);
  std::sort(by_offset.begin(), by_offset.end(),
            [&plan](size_t a, size_t b) { return plan[a].offset < plan[b].offset; });
  std::vector<size_t> position(plan.size());
  std::vector<bool> kept(plan.size(), false);
  uint64_t end = 0;
  for (size_t i : by_offset) {
    if (plan[i].size == 0 || (!ranges->empty() && plan[i].offset < end)) continue;  // overlap
    kept[i] = true;
    position[i] = ranges->size();
    ranges->push_back({plan[i]});
    end = plan[i].offset + plan[i].size;
  }
  std::vector<size_t> order;
  for (size_t i = 0; i < plan.size(); i++) {
    if (kept[i]) order.push_back(position[i]);
  }
  return order;
}

void EarlyBytes::Fetch(BlobSource& source) {
  for (;;) {
    size_t k;
    TraceRange r;
    {
      absl::MutexLock l(&mu_);
      while (next_ < order_.size() && ranges_[order_[next_]].state != State::kPending) next_++;
      if (released_ || next_ >= order_.size()) return;
      k = order_[next_++];
      ranges_[k].state = State::kFetching;
      r = ranges_[k].range;
    }
    std::string bytes(r.size, '\0');
    absl::Status s = source.ReadAt(r.offset, absl::MakeSpan(bytes));
    absl::MutexLock l(&mu_);
    Range& range = ranges_[k];
    if (released_) {
      range.state = State::kGone;
    } else if (s.ok()) {
      range.state = State::kDone;
      range.bytes = std::move(bytes);
      stats_.fetched_bytes += r.size;
    } else {
      range.state = State::kFailed;
      stats_.failed++;
      // The registry failed (after its client's retries): the rest is read on demand.
      for (Range& other : ranges_) {
        if (other.state == State::kPending) other.state = State::kGone;
      }
      next_ = order_.size();
    }
    changed_.SignalAll();
    if (!s.ok()) return;
  }
}

EarlyBytes::Range* EarlyBytes::Find(uint64_t offset, uint64_t n) {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), offset,
                             [](uint64_t o, const Range& r) { return o < r.range.offset; });
  if (n == 0 || it == ranges_.begin()) return nullptr;
  --it;
  const uint64_t end = it->range.offset + it->range.size;
  if (offset >= end || n > end - offset) return nullptr;
  return &*it;
}

bool EarlyBytes::Read(uint64_t offset, absl::Span<char> buf, absl::Duration wait) {
  if (absl::Now() >= release_at_) Release();
  const absl::Time deadline = absl::Now() + wait;
  absl::MutexLock l(&mu_);
  Range* range = Find(offset, buf.size());
  if (range == nullptr) return false;
  if (range->state == State::kPending) {
    range->state = State::kGone;  // the caller reads it now: not fetched a second time
    return false;
  }
  while (range->state == State::kFetching && !released_) {
    if (changed_.WaitWithDeadline(&mu_, deadline)) break;
  }
  if (released_ || range->state != State::kDone) return false;
  std::memcpy(buf.data(), range->bytes.data() + (offset - range->range.offset), buf.size());
  stats_.served_bytes += buf.size();
  stats_.served_reads++;
  range->served += buf.size();
  if (range->served >= range->range.size) {  // read whole (the replay reads each range once)
    range->state = State::kGone;
    std::string().swap(range->bytes);
  }
  return true;
}

void EarlyBytes::Release() {
  absl::MutexLock l(&mu_);
  if (released_) return;
  released_ = true;
  for (Range& r : ranges_) {
    if (r.state != State::kFetching) r.state = State::kGone;
    std::string().swap(r.bytes);
  }
  changed_.SignalAll();
}

EarlyBytesStats EarlyBytes::stats() const {
  absl::MutexLock l(&mu_);
  return stats_;
}

absl::Status EarlyBlobSource::ReadAt(uint64_t offset, absl::Span<char> buf) {
  if (early_->Read(offset, buf, wait_)) return absl::OkStatus();
  return inner_->ReadAt(offset, buf);
}

}  // namespace lazysnap

// LayerCache's read side: file ranges, reads, presence queries, access logs, stats (the
// fetching and flushing are in layer_cache.cc).
#include <algorithm>

#include "base/status_macros.h"
#include "base/strings.h"
#include "cache/layer_cache.h"

namespace lazysnap {

absl::Status LayerCache::CheckFileChunks(const Entry& file) const {
  if (uint64_t{file.chunks_begin} + file.chunks_count > chunks_.size()) {
    return absl::InvalidArgumentError("file's chunks are outside the chunk table");
  }
  uint64_t covered = file.chunks_count == 0
                         ? 0
                         : chunks_[file.chunks_begin + file.chunks_count - 1].file_offset +
                               chunks_[file.chunks_begin + file.chunks_count - 1].size;
  if (covered != file.size) {
    return absl::InvalidArgumentError(
        StrCat("file of ", file.size, " bytes has chunks covering ", covered));
  }
  return absl::OkStatus();
}

std::pair<uint32_t, uint32_t> LayerCache::ChunkSpan(const Entry& file, uint64_t offset,
                                                    uint64_t length) const {
  if (length == 0 || offset >= file.size ||
      uint64_t{file.chunks_begin} + file.chunks_count > chunks_.size()) {
    return {0, 0};
  }
  uint64_t end = length > file.size - offset ? file.size : offset + length;
  auto cs = chunks_.subspan(file.chunks_begin, file.chunks_count);
  auto by_offset = [](uint64_t off, const Chunk& c) { return off < c.file_offset; };
  auto first = std::upper_bound(cs.begin(), cs.end(), offset, by_offset);
  if (first != cs.begin()) --first;
  auto last = std::upper_bound(first, cs.end(), end - 1, by_offset);
  return {file.chunks_begin + static_cast<uint32_t>(first - cs.begin()),
          file.chunks_begin + static_cast<uint32_t>(last - cs.begin())};
}

std::vector<uint32_t> LayerCache::ChunksOfRange(const Entry& file, uint64_t offset,
                                                uint64_t length) const {
  auto [first, end] = ChunkSpan(file, offset, length);
  std::vector<uint32_t> out;
  for (uint32_t i = first; i < end; i++) out.push_back(i);
  return out;
}

absl::StatusOr<DataRange> LayerCache::FileRange(const Entry& file, uint64_t offset, uint64_t length,
                                                FetchPriority priority) {
  RETURN_IF_ERROR(CheckFileChunks(file));
  DataRange r;
  r.fd = data_fd_.get();
  if (offset >= file.size || length == 0) return r;
  r.length = std::min(length, file.size - offset);
  r.offset = data_offset(file.chunks_begin) + offset;
  auto [first, end] = ChunkSpan(file, offset, r.length);
  if (priority == FetchPriority::kOnDemand) {
    if (AccessLog* log = access_log_.load(std::memory_order_acquire)) log->Record(first, end);
  }
  const bool note = priority == FetchPriority::kOnDemand;
  // Fast paths for the common, fully or partly cached cases: no allocation, no sort.
  if (complete_.load(std::memory_order_acquire)) {
    counters_.hits += end - first;
    if (note) NotePrefetchedReads(first, end);
    return r;
  }
  bool cached;
  {
    absl::MutexLock lock(&mu_);
    uint32_t i = first;
    while (i < end && present_[i]) i++;
    cached = i == end;
  }
  if (cached) {
    counters_.hits += end - first;
  } else {
    RETURN_IF_ERROR(EnsureChunks(ChunksOfRange(file, offset, r.length), priority));
  }
  if (note) NotePrefetchedReads(first, end);
  return r;
}

void LayerCache::NotePrefetchedReads(uint32_t first, uint32_t end) {
  if (!any_prefetched_.load(std::memory_order_acquire)) return;
  for (uint32_t c = first; c < end; c++) {
    const uint64_t bit = uint64_t{1} << (c % 64);
    std::atomic<uint64_t>& word = prefetched_[c / 64];
    if ((word.load(std::memory_order_relaxed) & bit) == 0) continue;
    if ((word.fetch_and(~bit, std::memory_order_relaxed) & bit) == 0) continue;
    counters_.prefetch_hits++;
    counters_.prefetch_hit_bytes += chunks_[c].size;
  }
}

absl::StatusOr<size_t> LayerCache::ReadFile(const Entry& file, uint64_t offset,
                                            absl::Span<char> buf, FetchPriority priority) {
  ASSIGN_OR_RETURN(DataRange r, FileRange(file, offset, buf.size(), priority));
  RETURN_IF_ERROR(PreadFull(r.fd, r.offset, buf.subspan(0, r.length), data_path_));
  return static_cast<size_t>(r.length);
}

void LayerCache::SetAccessLog(std::shared_ptr<AccessLog> log) {
  absl::MutexLock lock(&mu_);
  access_log_.store(log.get(), std::memory_order_release);
  if (log != nullptr) access_logs_.push_back(std::move(log));
}

std::shared_ptr<AccessLog> LayerCache::access_log() const {
  absl::MutexLock lock(&mu_);
  AccessLog* current = access_log_.load(std::memory_order_acquire);
  for (const auto& log : access_logs_) {
    if (log.get() == current) return log;
  }
  return nullptr;
}

bool LayerCache::IsPresent(uint32_t chunk) const {
  absl::MutexLock lock(&mu_);
  return chunk < present_.size() && present_[chunk];
}

std::vector<uint32_t> LayerCache::Missing(absl::Span<const uint32_t> chunks) const {
  std::vector<uint32_t> out;
  if (complete_.load(std::memory_order_acquire)) return out;
  absl::MutexLock lock(&mu_);
  for (uint32_t c : chunks) {
    if (c < present_.size() && !present_[c]) out.push_back(c);
  }
  return out;
}

bool LayerCache::Complete() const {
  absl::MutexLock lock(&mu_);
  return present_chunks_ == chunks_.size();
}

LayerCacheStats LayerCache::stats() const {
  LayerCacheStats s;
  s.hits = counters_.hits;
  s.waits = counters_.waits;
  s.requests = counters_.requests;
  s.bytes_fetched = counters_.bytes_fetched;
  s.chunks_fetched = counters_.chunks_fetched;
  s.verification_failures = counters_.verification_failures;
  s.fetch_failures = counters_.fetch_failures;
  s.syncs = counters_.syncs;
  s.prefetch_hits = counters_.prefetch_hits;  // hits first: a snapshot never has more hit
  s.prefetch_hit_bytes = counters_.prefetch_hit_bytes;  // bytes than prefetched bytes
  s.prefetch_requests = counters_.prefetch_requests;
  s.prefetch_bytes_fetched = counters_.prefetch_bytes_fetched;
  s.prefetch_chunks = counters_.prefetch_chunks;
  s.prefetch_chunk_bytes = counters_.prefetch_chunk_bytes;
  absl::MutexLock lock(&mu_);
  s.present_chunks = present_chunks_;
  s.total_chunks = chunks_.size();
  s.present_bytes = present_bytes_;
  s.total_bytes = total_bytes_;
  return s;
}

}  // namespace lazysnap

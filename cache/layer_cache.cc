#include "cache/layer_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "base/errors.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace lazysnap {

// One coalesced request: chunks (sorted by compressed_offset) read with one ReadAt.
struct LayerCache::Group {
  uint64_t begin = 0, end = 0;  // blob range
  std::vector<uint32_t> chunks;
  std::shared_ptr<Flight> flight;
  bool prefetch = false;  // fetched by FetchPriority::kPrefetch
};

// The fetch of one group, which callers needing any of its chunks wait on.
struct LayerCache::Flight {
  bool done = false;
  absl::Status status;
  bool prefetch = false;  // a FetchPriority::kPrefetch request
  uint64_t bytes = 0;     // its blob bytes
};

LayerCache::LayerCache(std::string dir, absl::Span<const Chunk> chunks,
                       std::shared_ptr<BlobSource> source, std::shared_ptr<ChunkDecoder> decoder,
                       const LayerCacheOptions& options)
    : dir_(std::move(dir)),
      data_path_(dir_ + "/data"),
      chunks_(chunks),
      source_(std::move(source)),
      decoder_(std::move(decoder)),
      options_(options) {}

absl::StatusOr<std::unique_ptr<LayerCache>> LayerCache::Open(std::string dir,
                                                             const Sha256& layer_id,
                                                             absl::Span<const Chunk> chunks,
                                                             std::shared_ptr<BlobSource> source,
                                                             std::shared_ptr<ChunkDecoder> decoder,
                                                             const LayerCacheOptions& options) {
  if (decoder == nullptr) return absl::InvalidArgumentError("LayerCache needs a decoder");
  if (chunks.size() >= 0xffffffffu) return absl::InvalidArgumentError("too many chunks");
  std::unique_ptr<LayerCache> cache(
      new LayerCache(std::move(dir), chunks, std::move(source), std::move(decoder), options));
  RETURN_IF_ERROR(cache->Init(layer_id));
  return cache;
}

uint64_t LayerCache::data_offset(uint32_t chunk) const {
  uint64_t off = data_base_[chunk / kDataBaseStride];
  for (uint32_t i = chunk - chunk % kDataBaseStride; i < chunk; i++) off += chunks_[i].size;
  return off;
}

absl::Status LayerCache::Init(const Sha256& layer_id) {
  data_base_.reserve(chunks_.size() / kDataBaseStride + 1);
  uint64_t data_end = 0;
  for (size_t i = 0; i < chunks_.size(); i++) {
    const Chunk& c = chunks_[i];
    if (i % kDataBaseStride == 0) data_base_.push_back(data_end);
    bool continues = i > 0 && chunks_[i - 1].entry == c.entry;
    uint64_t want = continues ? chunks_[i - 1].file_offset + chunks_[i - 1].size : 0;
    if (c.file_offset != want) {
      return absl::InvalidArgumentError(StrCat("chunk ", i, " of entry ", c.entry, " starts at ",
                                               c.file_offset, ", expected ", want));
    }
    data_end += c.size;
  }
  total_bytes_ = data_end;
  for (uint32_t i = 0; i < chunks_.size(); i++) {
    if (!Trivial(i)) blob_order_.push_back(i);
  }
  std::sort(blob_order_.begin(), blob_order_.end(), [this](uint32_t a, uint32_t b) {
    return chunks_[a].compressed_offset != chunks_[b].compressed_offset
               ? chunks_[a].compressed_offset < chunks_[b].compressed_offset
               : a < b;
  });

  ASSIGN_OR_RETURN(bitmap_,
                   ChunkBitmap::Open(dir_ + "/bitmap", {layer_id, chunks_.size(), total_bytes_}));
  data_fd_ = UniqueFd(::open(data_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!data_fd_.valid()) return ErrnoToStatus(errno, StrCat("open ", data_path_));
  struct stat st;
  if (::fstat(data_fd_.get(), &st) != 0) return ErrnoToStatus(errno, StrCat("stat ", data_path_));
  uint64_t set = bitmap_->CountSet();
  if (set > 0 && static_cast<uint64_t>(st.st_size) != total_bytes_) {
    LZ_LOG(kWarning, "cache: ", data_path_, " is ", st.st_size, " bytes, expected ", total_bytes_,
           "; resetting the layer's cache");
    RETURN_IF_ERROR(bitmap_->Reset());
    set = 0;
  }
  if (set == 0) {
    // Nothing trusted: drop any old bytes so the never-written (zeros) chunks read as zeros,
    // and every per-file copy (made from bytes no longer trusted, maybe for another index).
    if (::ftruncate(data_fd_.get(), 0) != 0) {
      return ErrnoToStatus(errno, StrCat("truncate ", data_path_));
    }
  }
  if (::ftruncate(data_fd_.get(), static_cast<off_t>(total_bytes_)) != 0) {
    return ErrnoToStatus(errno, StrCat("truncate ", data_path_));
  }

  prefetched_.reset(new std::atomic<uint64_t>[chunks_.size() / 64 + 1]);
  for (size_t w = 0; w <= chunks_.size() / 64; w++) prefetched_[w].store(0);
  std::vector<bool> bits = bitmap_->Snapshot();
  absl::MutexLock lock(&mu_);
  present_.assign(chunks_.size(), false);
  for (uint32_t i = 0; i < chunks_.size(); i++) {
    if (bits[i] || Trivial(i)) {
      present_[i] = true;
      present_chunks_++;
      present_bytes_ += chunks_[i].size;
    }
  }
  complete_ = present_chunks_ == chunks_.size();
  RemoveCopies(/*all=*/set == 0);
  return absl::OkStatus();
}

LayerCache::~LayerCache() {
  absl::Status s = Flush();
  if (!s.ok()) LZ_LOG(kWarning, "cache: flushing ", dir_, " on close: ", s.ToString());
}

absl::Status LayerCache::EnsureChunks(absl::Span<const uint32_t> chunks, FetchPriority priority) {
  return EnsureChunks(chunks, priority, {options_.max_gap_bytes, options_.max_request_bytes});
}

absl::Status LayerCache::EnsureChunks(absl::Span<const uint32_t> chunks, FetchPriority priority,
                                      const FetchShape& shape) {
  std::vector<uint32_t> sorted;
  sorted.reserve(chunks.size());
  for (uint32_t c : chunks) {
    if (c >= chunks_.size()) {
      return absl::InvalidArgumentError(
          StrCat("chunk ", c, " out of range (", chunks_.size(), " chunks)"));
    }
    sorted.push_back(c);
  }
  std::sort(sorted.begin(), sorted.end(), [this](uint32_t a, uint32_t b) {
    return chunks_[a].compressed_offset != chunks_[b].compressed_offset
               ? chunks_[a].compressed_offset < chunks_[b].compressed_offset
               : a < b;
  });
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  if (priority == FetchPriority::kOnDemand) return FetchAndWait(sorted, priority, shape);

  // Prefetch: one request's worth of chunks at a time, under the per-layer slot limit.
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i + 1;
    uint64_t begin = chunks_[sorted[i]].compressed_offset;
    while (j < sorted.size() &&
           chunks_[sorted[j]].compressed_offset + chunks_[sorted[j]].compressed_size - begin <=
               std::max<uint64_t>(shape.max_request_bytes, 1)) {
      j++;
    }
    {
      absl::MutexLock lock(&mu_);
      const int slots = shape.max_fetches > 0 ? shape.max_fetches : options_.max_prefetch_fetches;
      while (prefetch_active_ >= std::max(1, slots) ||
             (shape.yield_to_ondemand && ondemand_active_ > 0)) {
        changed_.Wait(&mu_);
      }
      prefetch_active_++;
    }
    absl::Status s = FetchAndWait(absl::MakeConstSpan(sorted).subspan(i, j - i), priority, shape);
    {
      absl::MutexLock lock(&mu_);
      prefetch_active_--;
      changed_.SignalAll();
    }
    RETURN_IF_ERROR(s);
    i = j;
  }
  return absl::OkStatus();
}

absl::Status LayerCache::FetchAndWait(absl::Span<const uint32_t> sorted, FetchPriority priority,
                                      const FetchShape& shape) {
  const bool prefetch = priority == FetchPriority::kPrefetch;
  std::vector<Group> mine;
  std::vector<std::pair<uint32_t, std::shared_ptr<Flight>>> theirs;
  {
    absl::MutexLock lock(&mu_);
    std::vector<uint32_t> claim;
    // An on-demand read does not wait on a large prefetch request (it may take seconds on a
    // slow link): it fetches the chunk itself (the flight it replaces still finishes).
    auto overtakes = [&](const std::shared_ptr<Flight>& f) {
      return !prefetch && f != nullptr && f->prefetch && f->bytes > options_.max_prefetch_wait_bytes;
    };
    auto try_claim = [&](uint32_t c) {
      if (present_[c]) return false;
      if (auto it = in_flight_.find(c); it != in_flight_.end() && !overtakes(it->second)) {
        // A null flight is a claim of this very call (a sibling claimed earlier).
        if (it->second != nullptr) theirs.emplace_back(c, it->second);
        return false;
      }
      in_flight_[c] = nullptr;  // the group's flight is filled in below, still under mu_
      claim.push_back(c);
      return true;
    };
    for (uint32_t c : sorted) {
      if (present_[c]) {
        counters_.hits++;
        continue;
      }
      if (auto it = in_flight_.find(c);
          it != in_flight_.end() && it->second != nullptr && !overtakes(it->second)) {
        counters_.waits++;
      }
      if (!try_claim(c)) continue;
      // Chunks sharing this compressed range come for free with it.
      uint64_t off = chunks_[c].compressed_offset;
      auto lo = std::lower_bound(
          blob_order_.begin(), blob_order_.end(), off,
          [this](uint32_t x, uint64_t o) { return chunks_[x].compressed_offset < o; });
      for (auto it = lo; it != blob_order_.end() && chunks_[*it].compressed_offset == off; ++it) {
        if (*it != c && !present_[*it]) {
          auto f = in_flight_.find(*it);
          if (f == in_flight_.end() || overtakes(f->second)) try_claim(*it);
        }
      }
    }
    std::sort(claim.begin(), claim.end(), [this](uint32_t a, uint32_t b) {
      return chunks_[a].compressed_offset != chunks_[b].compressed_offset
                 ? chunks_[a].compressed_offset < chunks_[b].compressed_offset
                 : a < b;
    });
    for (uint32_t c : claim) {
      const Chunk& ch = chunks_[c];
      uint64_t end = ch.compressed_offset + ch.compressed_size;
      bool joins = !mine.empty() &&
                   ch.compressed_offset <= mine.back().end + shape.max_gap_bytes &&
                   std::max(end, mine.back().end) - mine.back().begin <= shape.max_request_bytes;
      if (!joins) {
        mine.emplace_back();
        mine.back().begin = ch.compressed_offset;
        mine.back().flight = std::make_shared<Flight>();
        mine.back().prefetch = prefetch;
      }
      mine.back().end = std::max(mine.back().end, end);
      mine.back().chunks.push_back(c);
      in_flight_[c] = mine.back().flight;
    }
    for (Group& g : mine) {
      g.flight->prefetch = prefetch;
      g.flight->bytes = g.end - g.begin;
    }
    if (prefetch) {
      // A prefetch keeps what its bridged gaps hold too: missing chunks lying wholly inside a
      // request come with it, so a later batch does not fetch those bytes again.
      for (Group& g : mine) {
        auto it = std::lower_bound(
            blob_order_.begin(), blob_order_.end(), g.begin,
            [this](uint32_t x, uint64_t o) { return chunks_[x].compressed_offset < o; });
        for (; it != blob_order_.end() && chunks_[*it].compressed_offset < g.end; ++it) {
          const Chunk& ch = chunks_[*it];
          if (ch.compressed_offset + ch.compressed_size > g.end || present_[*it] ||
              in_flight_.count(*it)) {
            continue;
          }
          in_flight_[*it] = g.flight;
          g.chunks.push_back(*it);
        }
      }
    }
    if (!prefetch && !mine.empty()) ondemand_active_++;
  }

  absl::Status first_error;
  for (const Group& g : mine) {
    std::vector<uint32_t> written;
    absl::Status s = FetchGroup(g, &written);
    FinishGroup(g, written, s);
    if (!s.ok() && first_error.ok()) first_error = s;
  }
  if (!prefetch && !mine.empty()) {
    absl::MutexLock lock(&mu_);
    ondemand_active_--;
    changed_.SignalAll();
  }
  if (!mine.empty()) {
    bool sync_now;
    {
      absl::MutexLock lock(&mu_);
      // A flush already running will be followed by the next caller's; don't queue behind it.
      sync_now = !flushing_ && unsynced_bytes_ > 0 && unsynced_bytes_ >= options_.sync_batch_bytes;
    }
    if (sync_now) {
      absl::Status s = Flush();
      if (!s.ok()) LZ_LOG(kWarning, "cache: flush of ", dir_, " failed: ", s.ToString());
    }
  }

  absl::MutexLock lock(&mu_);
  for (auto& [chunk, flight] : theirs) {
    while (!flight->done) changed_.Wait(&mu_);
    if (!present_[chunk] && first_error.ok()) {
      first_error = flight->status.ok()
                        ? absl::InternalError(StrCat("chunk ", chunk, " missing after its fetch"))
                        : flight->status;
    }
  }
  return first_error;
}

absl::Status LayerCache::FetchGroup(const Group& g, std::vector<uint32_t>* written) {
  if (source_ == nullptr) {
    return absl::UnavailableError(StrCat("cache ", dir_, ": chunk missing and no blob source"));
  }
  std::string buf(g.end - g.begin, '\0');
  counters_.requests++;
  if (g.prefetch) counters_.prefetch_requests++;
  absl::Status s = source_->ReadAt(g.begin, absl::MakeSpan(buf));
  if (!s.ok()) {
    counters_.fetch_failures++;
    LZ_LOG(kWarning, "cache: fetching blob range [", g.begin, ", ", g.end, ") for ", dir_,
           " failed: ", s.ToString());
    return s;
  }
  counters_.bytes_fetched += buf.size();
  if (g.prefetch) counters_.prefetch_bytes_fetched += buf.size();
  absl::Status first_error;
  std::string out;
  for (uint32_t c : g.chunks) {
    const Chunk& ch = chunks_[c];
    out.resize(ch.size);
    std::string_view compressed(buf.data() + (ch.compressed_offset - g.begin), ch.compressed_size);
    absl::Status d = decoder_->Decode(ch, compressed, absl::MakeSpan(out));
    if (!d.ok()) {
      counters_.verification_failures++;
      LZ_LOG(kError, "cache: chunk ", c, " (blob offset ", ch.compressed_offset, ") of ", dir_,
             " failed verification: ", d.ToString());
      if (first_error.ok()) first_error = d;
      continue;
    }
    absl::Status w = PwriteFull(data_fd_.get(), data_offset(c), out, data_path_);
    if (!w.ok()) {
      LZ_LOG(kError, "cache: writing chunk ", c, " to ", data_path_, ": ", w.ToString());
      if (first_error.ok()) first_error = w;
      continue;
    }
    counters_.chunks_fetched++;
    written->push_back(c);
  }
  return first_error;
}

void LayerCache::FinishGroup(const Group& g, const std::vector<uint32_t>& written,
                             const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  for (uint32_t c : written) {
    if (present_[c]) {  // an on-demand read overtook this prefetch (or the reverse)
      counters_.chunks_fetched--;
      continue;
    }
    present_[c] = true;
    present_chunks_++;
    present_bytes_ += chunks_[c].size;
    unsynced_.push_back(c);
    unsynced_bytes_ += chunks_[c].size;
    if (g.prefetch) {  // counted before the bit is set: hits never exceed these
      counters_.prefetch_chunks++;
      counters_.prefetch_chunk_bytes += chunks_[c].size;
      prefetched_[c / 64].fetch_or(uint64_t{1} << (c % 64), std::memory_order_release);
    }
  }
  if (g.prefetch && !written.empty()) any_prefetched_.store(true, std::memory_order_release);
  if (present_chunks_ == chunks_.size()) complete_ = true;
  for (uint32_t c : g.chunks) {
    // Not a flight that overtook this one (it erases its own entries).
    if (auto it = in_flight_.find(c); it != in_flight_.end() && it->second == g.flight) {
      in_flight_.erase(it);
    }
  }
  g.flight->status = status;
  g.flight->done = true;
  changed_.SignalAll();
}

absl::Status LayerCache::Flush() {
  std::vector<uint32_t> batch;
  {
    absl::MutexLock lock(&mu_);
    while (flushing_) changed_.Wait(&mu_);
    if (unsynced_.empty()) return absl::OkStatus();
    flushing_ = true;
    batch.swap(unsynced_);
    unsynced_bytes_ = 0;
  }
  absl::Status s = DataSync(data_fd_.get(), data_path_);
  if (s.ok()) s = bitmap_->Set(batch);
  absl::MutexLock lock(&mu_);
  flushing_ = false;
  changed_.SignalAll();
  if (!s.ok()) {
    // The bytes may not be on disk: forget the chunks so they are fetched and written again.
    LZ_LOG(kError, "cache: making ", batch.size(), " chunks of ", dir_,
           " durable failed: ", s.ToString());
    for (uint32_t c : batch) {
      if (present_[c] && !bitmap_->Test(c)) {
        complete_ = false;
        present_[c] = false;
        present_chunks_--;
        present_bytes_ -= chunks_[c].size;
      }
    }
    return s;
  }
  counters_.syncs++;
  return absl::OkStatus();
}

}  // namespace lazysnap

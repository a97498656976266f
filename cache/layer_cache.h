// LayerCache: the local store of one lazily loaded layer's file data (docs/cache.md).
//
// <dir>/data is sparse; chunk i sits at data_offset(i), the prefix sum of the sizes of chunks
// 0..i-1. A file's chunks are contiguous in the index and tile the file, so a byte range of a
// file is ONE contiguous range of `data` (FileRange(): pread/splice it whole). <dir>/bitmap
// (ChunkBitmap) records which chunks are durable in `data`.
//
// EnsureChunks() fetches each missing chunk once (concurrent callers wait on the fetch in
// flight), coalescing chunks adjacent in the blob into one ReadAt, and decodes and verifies
// each before writing it; failures fail the read (the source's or decoder's status), are
// logged and counted, and leave the chunk missing for the next read to retry.
//
// Crash safety: a bit reaches the on-disk bitmap only after an fdatasync(data) covering its
// bytes. To keep disk flushes off the on-demand path, written chunks are served at once from
// the page cache and made durable in batches (sync_batch_bytes, Flush(), destruction): a crash
// costs at most one batch of re-fetching, never a bit over bytes that did not reach the disk.
#ifndef LAZYSNAP_CACHE_LAYER_CACHE_H_
#define LAZYSNAP_CACHE_LAYER_CACHE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "base/blob_source.h"
#include "cache/access_log.h"
#include "cache/chunk_bitmap.h"
#include "cache/chunk_decoder.h"
#include "cache/file_io.h"
#include "format/index.h"

namespace lazysnap {

// kOnDemand reads (a process waits) fetch everything at once; kPrefetch fetches one request
// at a time, at most max_prefetch_fetches such requests per layer run at once, and a prefetch
// request does not start while an on-demand fetch of the layer is running, so background work
// never crowds out on-demand reads. An on-demand read of a chunk a prefetch request is
// fetching waits on that request instead of fetching the chunk again if the request is small
// (at most max_prefetch_wait_bytes); behind a larger one (up to max_request_bytes: seconds on a
// slow link) it fetches the chunk itself, and whichever write lands first is kept.
enum class FetchPriority { kOnDemand, kPrefetch };

// How a prefetch coalesces chunks into requests (EnsureChunks' third argument).
struct FetchShape {
  uint64_t max_gap_bytes = 0;      // unused blob bytes fetched to join two ranges
  uint64_t max_request_bytes = 0;  // cap on one request
  // kPrefetch only: false lets the requests start while an on-demand fetch of the layer runs
  // (a replayed trace's chunks are as urgent as the reads racing them); the per-layer limit on
  // prefetch requests still holds.
  bool yield_to_ondemand = true;
  // kPrefetch only: prefetch requests of the layer running at once, at most (counting every
  // caller's); 0: LayerCacheOptions::max_prefetch_fetches.
  int max_fetches = 0;
};

struct LayerCacheOptions {
  uint64_t max_request_bytes = 8ull << 20;  // cap on one coalesced ReadAt
  uint64_t max_gap_bytes = 32ull << 10;     // unused blob bytes worth fetching to coalesce
  uint64_t sync_batch_bytes = 64ull << 20;  // 0: fdatasync + persist bits after every request
  int max_prefetch_fetches = 2;
  // An on-demand read waits on a prefetch request holding its chunk only if that request is
  // at most this many blob bytes; otherwise it fetches the chunk with its own request.
  uint64_t max_prefetch_wait_bytes = 1ull << 20;
  // Per-file copies (WriteFileCopy): the free space the cache's filesystem must keep beyond
  // twice the file's size, the size of one copy_file_range between stop checks, and, if set,
  // a check that `bytes` more fit the cache's size limit (CacheManager sets it). Thread-safe.
  uint64_t copy_min_free_bytes = 256ull << 20;
  uint64_t copy_piece_bytes = 8ull << 20;
  std::function<bool(uint64_t bytes)> copy_allowed;
};

// Counters since open; a snapshot.
struct LayerCacheStats {
  uint64_t hits = 0;                   // requested chunks that were already present
  uint64_t waits = 0;                  // requested chunks another caller was fetching
  uint64_t requests = 0;               // BlobSource::ReadAt calls
  uint64_t bytes_fetched = 0;          // blob bytes read
  uint64_t chunks_fetched = 0;         // chunks decoded, verified and written
  uint64_t verification_failures = 0;  // chunks the decoder rejected
  uint64_t fetch_failures = 0;         // failed ReadAt calls
  uint64_t syncs = 0;                  // batches made durable
  // Prefetch (FetchPriority::kPrefetch) figures; the fields above include them.
  uint64_t prefetch_requests = 0;      // ReadAt calls made by prefetch
  uint64_t prefetch_bytes_fetched = 0; // blob bytes read by prefetch
  uint64_t prefetch_chunks = 0;        // chunks fetched by prefetch
  uint64_t prefetch_chunk_bytes = 0;   // their uncompressed bytes
  uint64_t prefetch_hits = 0;          // prefetched chunks later read on demand (each once)
  uint64_t prefetch_hit_bytes = 0;     // their uncompressed bytes
  // Chunks fetched by prefetch and not (yet) read on demand, in uncompressed bytes.
  uint64_t prefetch_unused_bytes() const { return prefetch_chunk_bytes - prefetch_hit_bytes; }
  uint64_t ondemand_chunks() const { return chunks_fetched - prefetch_chunks; }
  uint64_t present_chunks = 0, total_chunks = 0;
  uint64_t present_bytes = 0, total_bytes = 0;
};

// Where a file range lives in the data file, for pread/splice by the caller.
struct DataRange {
  int fd = -1;          // the data file; valid while the LayerCache lives; do not close
  uint64_t offset = 0;  // in the data file
  uint64_t length = 0;  // clamped to the end of the file
};

class LayerCache {
 public:
  // Opens (creating) the cache in existing directory `dir` for the layer identified by
  // `layer_id` (its TOC digest) whose chunk table is `chunks` (LayerIndex::chunks()); `chunks`
  // must outlive the LayerCache. An untrusted bitmap is reset (see ChunkBitmap). `source` may
  // be null (offline: missing chunks are Unavailable). A chunk table whose files' chunks do
  // not tile them is InvalidArgument.
  static absl::StatusOr<std::unique_ptr<LayerCache>> Open(std::string dir, const Sha256& layer_id,
                                                          absl::Span<const Chunk> chunks,
                                                          std::shared_ptr<BlobSource> source,
                                                          std::shared_ptr<ChunkDecoder> decoder,
                                                          const LayerCacheOptions& options = {});
  // Flushes (errors logged). No call may be in progress.
  ~LayerCache();
  LayerCache(const LayerCache&) = delete;
  LayerCache& operator=(const LayerCache&) = delete;

  // Every method below is thread-safe.

  // Makes chunks (indices into the chunk table, any order, duplicates allowed) present,
  // fetching the missing ones; blocks until they are or one failed (the first error).
  absl::Status EnsureChunks(absl::Span<const uint32_t> chunks,
                            FetchPriority priority = FetchPriority::kOnDemand);
  // The same, coalescing by `shape` instead of the options' max_gap_bytes / max_request_bytes.
  absl::Status EnsureChunks(absl::Span<const uint32_t> chunks, FetchPriority priority,
                            const FetchShape& shape);

  // Reads up to buf.size() bytes of regular file `file` (the Entry holding the data: for a
  // hard link, index.entry(e.inode)) at `offset`, fetching as needed. Returns the bytes read:
  // fewer than asked only at the end of the file, 0 at or past it.
  absl::StatusOr<size_t> ReadFile(const Entry& file, uint64_t offset, absl::Span<char> buf,
                                  FetchPriority priority = FetchPriority::kOnDemand);

  // Ensures [offset, offset + length) of `file` is present and says where it is in the data
  // file, so the caller can splice or pread it directly.
  absl::StatusOr<DataRange> FileRange(const Entry& file, uint64_t offset, uint64_t length,
                                      FetchPriority priority = FetchPriority::kOnDemand);

  // Indices of the chunks of `file` overlapping [offset, offset + length).
  std::vector<uint32_t> ChunksOfRange(const Entry& file, uint64_t offset, uint64_t length) const;

  bool IsPresent(uint32_t chunk) const;
  // The chunks of `chunks` (indices; out-of-range ones skipped) that are missing, in their
  // order: one lock for the lot (a prefetch batch asks before reserving bandwidth).
  std::vector<uint32_t> Missing(absl::Span<const uint32_t> chunks) const;
  // True when every chunk is present.
  bool Complete() const;
  // Makes every written chunk durable and its bit persistent (fdatasync data, then bitmap).
  absl::Status Flush();

  // Starts recording on-demand reads (FileRange/ReadFile with kOnDemand) into `log`, whose
  // chunk count must be this layer's; null stops recording. Logs once set stay alive as long
  // as the LayerCache (readers may still hold them), so set a handful, not thousands.
  void SetAccessLog(std::shared_ptr<AccessLog> log);
  // The log set last, or null.
  std::shared_ptr<AccessLog> access_log() const;

  // Per-file copies, the backing files of FUSE passthrough (docs/cache.md): FileCopyPath(file)
  // = <dir>/files/<data offset>-<size> holds exactly the bytes of regular file `file` (the
  // Entry holding the data), named by where they lie in the data file, so a copy can only
  // ever stand for that range of this layer's data (and Init empties files/ whenever it
  // resets the data). WriteFileCopy() makes it from the data file, only if every chunk of
  // `file` is present (else FailedPrecondition) and there is room (else ResourceExhausted:
  // the filesystem keeps less than 2x the file + copy_min_free_bytes free, or copy_allowed
  // says no): copy_file_range in pieces of copy_piece_bytes into a temp file, fdatasync,
  // rename, so a crash leaves at most a temp file, which Open() removes. Blocks for the copy
  // (call it in the background); `stop` (may be null) is checked between pieces: once set,
  // the temp file is removed and the call returns Cancelled. OpenFileCopy() opens an
  // existing copy read-only; NotFound if there is none; a copy of the wrong size is removed
  // and NotFound. A file whose chunks do not cover exactly file.size is InvalidArgument.
  absl::Status WriteFileCopy(const Entry& file, const std::atomic<bool>* stop = nullptr);
  absl::StatusOr<UniqueFd> OpenFileCopy(const Entry& file) const;
  std::string FileCopyPath(const Entry& file) const;

  LayerCacheStats stats() const;
  // Where chunk `chunk` (< chunk count) starts in the data file. O(kDataBaseStride).
  uint64_t data_offset(uint32_t chunk) const;
  const std::string& dir() const { return dir_; }
  // Why the bitmap was reset on open (OK if it was trusted).
  const absl::Status& reset_reason() const { return bitmap_->reset_reason(); }

 private:
  struct Flight;
  struct Group;
  LayerCache(std::string dir, absl::Span<const Chunk> chunks, std::shared_ptr<BlobSource> source,
             std::shared_ptr<ChunkDecoder> decoder, const LayerCacheOptions& options);
  absl::Status Init(const Sha256& layer_id);
  void RemoveCopies(bool all) const;  // layer_cache_copy.cc: temp files only, or every copy
  // OK if `file`'s chunks are inside the chunk table and cover exactly file.size bytes.
  absl::Status CheckFileChunks(const Entry& file) const;
  absl::Status FetchAndWait(absl::Span<const uint32_t> sorted, FetchPriority priority,
                            const FetchShape& shape);
  absl::Status FetchGroup(const Group& group, std::vector<uint32_t>* written);
  void FinishGroup(const Group& group, const std::vector<uint32_t>& written,
                   const absl::Status& status);
  // Counts the first on-demand read of each prefetched chunk in [first, end). Lock-free.
  void NotePrefetchedReads(uint32_t first, uint32_t end);
  // [first, end) indices of the chunks of `file` overlapping [offset, offset + length).
  std::pair<uint32_t, uint32_t> ChunkSpan(const Entry& file, uint64_t offset,
                                          uint64_t length) const;
  bool Trivial(uint32_t chunk) const { return chunks_[chunk].size == 0 || chunks_[chunk].zeros; }

  const std::string dir_;
  const std::string data_path_;
  const absl::Span<const Chunk> chunks_;
  const std::shared_ptr<BlobSource> source_;
  const std::shared_ptr<ChunkDecoder> decoder_;
  const LayerCacheOptions options_;
  // data_offset() of every kDataBaseStride-th chunk (the others add the sizes in between:
  // 2 bytes a chunk, not 8; a read walks at most 3 chunk sizes); immutable after Init.
  static constexpr uint32_t kDataBaseStride = 4;
  std::vector<uint64_t> data_base_;
  std::vector<uint32_t> blob_order_;   // non-trivial chunks by (compressed_offset, index)
  uint64_t total_bytes_ = 0;
  UniqueFd data_fd_;
  std::unique_ptr<ChunkBitmap> bitmap_;

  mutable absl::Mutex mu_;
  absl::CondVar changed_;  // a flight finished, a flush ended or a prefetch slot freed
  std::vector<bool> present_ ABSL_GUARDED_BY(mu_);  // written (maybe not yet durable)
  std::unordered_map<uint32_t, std::shared_ptr<Flight>> in_flight_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> unsynced_ ABSL_GUARDED_BY(mu_);
  uint64_t unsynced_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t present_chunks_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t present_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool flushing_ ABSL_GUARDED_BY(mu_) = false;
  int prefetch_active_ ABSL_GUARDED_BY(mu_) = 0;
  int ondemand_active_ ABSL_GUARDED_BY(mu_) = 0;  // on-demand calls fetching groups
  std::vector<std::shared_ptr<AccessLog>> access_logs_ ABSL_GUARDED_BY(mu_);  // keep-alive
  std::atomic<AccessLog*> access_log_{nullptr};  // the current one; read without the lock
  std::atomic<bool> complete_{false};  // every chunk present: reads skip the lock
  // One bit per chunk: fetched by prefetch and not read on demand since. Set under mu_ (in
  // FinishGroup), cleared lock-free by the first on-demand read.
  std::unique_ptr<std::atomic<uint64_t>[]> prefetched_;
  std::atomic<bool> any_prefetched_{false};  // read path skips the bits until a prefetch

  struct Counters {
    std::atomic<uint64_t> hits{0}, waits{0}, requests{0}, bytes_fetched{0}, chunks_fetched{0},
        verification_failures{0}, fetch_failures{0}, syncs{0}, prefetch_requests{0},
        prefetch_bytes_fetched{0}, prefetch_chunks{0}, prefetch_chunk_bytes{0}, prefetch_hits{0},
        prefetch_hit_bytes{0};
  };
  mutable Counters counters_;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_CACHE_LAYER_CACHE_H_

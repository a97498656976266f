// CacheManager: the cache directory as a whole. One subdirectory per layer, named by the layer
// (blob) digest, holding that layer's LayerCache files (and any other per-layer files callers
// put there, e.g. a cached TOC); a size limit; usage accounting; and a GC that evicts whole
// layers, least recently used first, never one that is in use.
//
//   <root>/layers/<sha256 hex>/{data,bitmap,...}
//   <root>/trash/   evicted layers being deleted (emptied on Open)
//
// A layer is in use while a LayerCache handed out by OpenLayer() is alive or a LayerPin for it
// exists (the snapshotter pins mounted layers). Its last use is when it was last opened,
// pinned or released; that time is kept as the layer directory's mtime, so LRU order survives
// restarts. Eviction renames the directory into trash/ under the lock (atomic, so a
// concurrent OpenLayer never sees half a layer) and deletes it outside the lock.
#ifndef LAZYSNAP_CACHE_CACHE_MANAGER_H_
#define LAZYSNAP_CACHE_CACHE_MANAGER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/blob_source.h"
#include "base/digest.h"
#include "cache/chunk_decoder.h"
#include "cache/layer_cache.h"
#include "format/index.h"
#include "format/layer.h"

namespace lazysnap {

struct CacheManagerOptions {
  // 0: unlimited (GC evicts nothing). Also: no per-file copy (LayerCacheOptions::
  // copy_allowed, FUSE passthrough) is made that would take usage past it.
  uint64_t size_limit_bytes = 0;
};

// One layer's directory as GC sees it.
struct LayerUsage {
  Sha256 digest;
  uint64_t bytes = 0;  // disk space allocated to its files
  absl::Time last_used;
  bool in_use = false;
};

struct GcResult {
  std::vector<Sha256> evicted;
  uint64_t bytes_freed = 0;
  uint64_t usage_after = 0;  // may still exceed the limit if the rest is in use
};

class CacheManager;
namespace cache_internal {
struct ManagerState;
}

// Keeps one layer in use while it lives. Move-only; may outlive the CacheManager.
class LayerPin {
 public:
  LayerPin() = default;
  LayerPin(LayerPin&&) noexcept = default;
  LayerPin& operator=(LayerPin&& o) noexcept;
  ~LayerPin();

 private:
  friend class CacheManager;
  LayerPin(std::shared_ptr<cache_internal::ManagerState> state, std::string name)
      : state_(std::move(state)), name_(std::move(name)) {}
  void Release();
  std::shared_ptr<cache_internal::ManagerState> state_;
  std::string name_;
};

class CacheManager {
 public:
  // Opens (creating) the cache rooted at `root` and empties its trash.
  static absl::StatusOr<std::unique_ptr<CacheManager>> Open(std::string root,
                                                            const CacheManagerOptions& options);
  ~CacheManager();
  CacheManager(const CacheManager&) = delete;
  CacheManager& operator=(const CacheManager&) = delete;

  // Every method is thread-safe.

  // The layer's cache, opened in its directory (created if needed). While any copy of the
  // returned pointer lives the layer is in use. Opening a layer that is already open returns
  // the same LayerCache (the other arguments are then ignored; a different `toc_digest` is
  // FailedPrecondition). `chunks` must outlive the LayerCache. See LayerCache::Open.
  absl::StatusOr<std::shared_ptr<LayerCache>> OpenLayer(const Sha256& layer_digest,
                                                        const Sha256& toc_digest,
                                                        absl::Span<const Chunk> chunks,
                                                        std::shared_ptr<BlobSource> source,
                                                        std::shared_ptr<ChunkDecoder> decoder,
                                                        const LayerCacheOptions& options = {});

  // The same for a layer opened by format/ (OpenLayer / OpenLayerFromToc): identity is its
  // TOC digest, the decoder is FormatChunkDecoder, and `layer` is kept alive with the cache.
  absl::StatusOr<std::shared_ptr<LayerCache>> OpenLayer(const Sha256& layer_digest,
                                                        std::shared_ptr<const SeekableLayer> layer,
                                                        std::shared_ptr<BlobSource> source,
                                                        const LayerCacheOptions& options = {});

  // Flushes every open layer (LayerCache::Flush); the first error. For a periodic timer and
  // shutdown.
  absl::Status FlushAll();

  // Marks the layer in use until the pin is destroyed (it need not exist yet).
  LayerPin Pin(const Sha256& layer_digest);

  // The layer's directory (it may not exist).
  std::string LayerDir(const Sha256& layer_digest) const;

  // Every layer directory with its size and last use, least recently used first.
  absl::StatusOr<std::vector<LayerUsage>> List() const;
  // Total bytes allocated to all layers.
  absl::StatusOr<uint64_t> Usage() const;

  // Evicts least recently used layers not in use until usage is within the size limit.
  absl::StatusOr<GcResult> CollectGarbage();
  // Removes one layer's cache. FailedPrecondition if it is in use; NotFound if absent.
  absl::Status RemoveLayer(const Sha256& layer_digest);

  uint64_t size_limit() const { return options_.size_limit_bytes; }

 private:
  CacheManager(std::string root, const CacheManagerOptions& options,
               std::shared_ptr<cache_internal::ManagerState> state);
  // Moves the layer's directory to trash if it is not in use; returns the trash path.
  absl::StatusOr<std::string> Detach(const std::string& name);
  absl::StatusOr<std::shared_ptr<LayerCache>> OpenLayerImpl(
      const Sha256& layer_digest, const Sha256& toc_digest, absl::Span<const Chunk> chunks,
      std::shared_ptr<BlobSource> source, std::shared_ptr<ChunkDecoder> decoder,
      const LayerCacheOptions& options, std::shared_ptr<const void> keep_alive);

  const std::string root_;
  const CacheManagerOptions options_;
  const std::shared_ptr<cache_internal::ManagerState> state_;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_CACHE_CACHE_MANAGER_H_

#include "cache/cache_manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "base/errors.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace lazysnap {
namespace cache_internal {

// What the manager, its LayerCache handles and its pins share; outlives whichever goes last.
struct ManagerState {
  struct Layer {
    std::weak_ptr<LayerCache> cache;
    Sha256 toc;
    int pins = 0;
    bool opening = false;  // a LayerCache is being opened
    bool open = false;     // a LayerCache exists (maybe expired and still being destroyed)
  };

  explicit ManagerState(std::string dir) : layers_dir(std::move(dir)) {}

  bool InUse(const std::string& name) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = layers.find(name);
    if (it == layers.end()) return false;
    const Layer& l = it->second;
    return l.pins > 0 || l.opening || l.open;
  }
  void MaybeForget(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (!InUse(name)) layers.erase(name);
  }

  // Records a use of the layer now, in memory and as its directory's mtime.
  void Touch(const std::string& name) ABSL_LOCKS_EXCLUDED(mu) {
    absl::Time t;
    {
      absl::MutexLock lock(&mu);
      // Strictly increasing, so uses in quick succession keep their order.
      t = std::max(absl::Now(), last_stamp + absl::Microseconds(1));
      last_stamp = t;
    }
    timespec ts = absl::ToTimespec(t);
    timespec times[2] = {ts, ts};
    std::string path = StrCat(layers_dir, "/", name);
    if (::utimensat(AT_FDCWD, path.c_str(), times, 0) != 0 && errno != ENOENT) {
      LZ_LOG(kWarning, "cache: recording use of ", path, ": ", std::strerror(errno));
    }
  }

  void Unpin(const std::string& name) {
    {
      absl::MutexLock lock(&mu);
      layers[name].pins--;
      MaybeForget(name);
    }
    Touch(name);
  }

  const std::string layers_dir;
  absl::Mutex mu;
  absl::CondVar changed;  // an open or a close finished
  std::map<std::string, Layer> layers ABSL_GUARDED_BY(mu);
  absl::Time last_stamp ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  uint64_t trash_seq ABSL_GUARDED_BY(mu) = 0;
};

// The deleter of the LayerCaches the manager hands out: destroys (flushes) the cache, drops
// what kept its chunk table alive, then marks the layer closed and records the use.
struct CloseLayer {
  std::shared_ptr<ManagerState> state;
  std::string name;
  std::shared_ptr<const void> keep_alive;

  void operator()(LayerCache* cache) {
    delete cache;
    keep_alive.reset();
    {
      absl::MutexLock lock(&state->mu);
      state->layers[name].open = false;
      state->MaybeForget(name);
      state->changed.SignalAll();
    }
    state->Touch(name);
  }
};

}  // namespace cache_internal

using cache_internal::CloseLayer;
using cache_internal::ManagerState;

namespace {

absl::Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, StrCat("mkdir ", path));
  }
  return absl::OkStatus();
}

// Disk space allocated to the regular files directly in `dir`, and in its `files` directory
// (a layer's per-file copies for FUSE passthrough: LayerCache::WriteFileCopy).
absl::StatusOr<uint64_t> DirBytes(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoToStatus(errno, StrCat("opendir ", dir));
  uint64_t total = 0;
  while (dirent* e = ::readdir(d)) {
    struct stat st;
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISREG(st.st_mode)) {
      total += static_cast<uint64_t>(st.st_blocks) * 512;
    } else if (S_ISDIR(st.st_mode) && std::string_view(e->d_name) == "files") {
      absl::StatusOr<uint64_t> files = DirBytes(StrCat(dir, "/files"));
      if (files.ok()) total += *files;
    }
  }
  ::closedir(d);
  return total;
}

// Disk space allocated to every layer directory in `layers_dir` (errors count nothing).
uint64_t LayersBytes(const std::string& layers_dir) {
  DIR* d = ::opendir(layers_dir.c_str());
  if (d == nullptr) return 0;
  uint64_t total = 0;
  while (dirent* e = ::readdir(d)) {
    std::string_view name(e->d_name);
    if (name == "." || name == "..") continue;
    absl::StatusOr<uint64_t> bytes = DirBytes(StrCat(layers_dir, "/", name));
    if (bytes.ok()) total += *bytes;
  }
  ::closedir(d);
  return total;
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) LZ_LOG(kWarning, "cache: removing ", path, ": ", ec.message());
}

}  // namespace

LayerPin& LayerPin::operator=(LayerPin&& o) noexcept {
  if (this != &o) {
    Release();
    state_ = std::move(o.state_);
    name_ = std::move(o.name_);
  }
  return *this;
}

LayerPin::~LayerPin() { Release(); }

void LayerPin::Release() {
  if (state_ != nullptr) state_->Unpin(name_);
  state_ = nullptr;
}

CacheManager::CacheManager(std::string root, const CacheManagerOptions& options,
                           std::shared_ptr<ManagerState> state)
    : root_(std::move(root)), options_(options), state_(std::move(state)) {}

CacheManager::~CacheManager() = default;

absl::StatusOr<std::unique_ptr<CacheManager>> CacheManager::Open(
    std::string root, const CacheManagerOptions& options) {
  RETURN_IF_ERROR(MakeDir(root));
  RETURN_IF_ERROR(MakeDir(root + "/layers"));
  std::string trash = root + "/trash";
  RemoveTree(trash);  // evictions a crash interrupted
  RETURN_IF_ERROR(MakeDir(trash));
  auto state = std::make_shared<ManagerState>(root + "/layers");
  return std::unique_ptr<CacheManager>(new CacheManager(std::move(root), options, state));
}

std::string CacheManager::LayerDir(const Sha256& layer_digest) const {
  return StrCat(state_->layers_dir, "/", layer_digest.Hex());
}

absl::StatusOr<std::shared_ptr<LayerCache>> CacheManager::OpenLayer(
    const Sha256& layer_digest, const Sha256& toc_digest, absl::Span<const Chunk> chunks,
    std::shared_ptr<BlobSource> source, std::shared_ptr<ChunkDecoder> decoder,
    const LayerCacheOptions& options) {
  return OpenLayerImpl(layer_digest, toc_digest, chunks, std::move(source), std::move(decoder),
                       options, nullptr);
}

absl::StatusOr<std::shared_ptr<LayerCache>> CacheManager::OpenLayer(
    const Sha256& layer_digest, std::shared_ptr<const SeekableLayer> layer,
    std::shared_ptr<BlobSource> source, const LayerCacheOptions& options) {
  if (layer == nullptr) return absl::InvalidArgumentError("OpenLayer: no layer");
  const SeekableLayer& l = *layer;
  return OpenLayerImpl(layer_digest, l.toc_digest, l.index.chunks(), std::move(source),
                       std::make_shared<FormatChunkDecoder>(l.index), options,
                       std::move(layer));
}

absl::StatusOr<std::shared_ptr<LayerCache>> CacheManager::OpenLayerImpl(
    const Sha256& layer_digest, const Sha256& toc_digest, absl::Span<const Chunk> chunks,
    std::shared_ptr<BlobSource> source, std::shared_ptr<ChunkDecoder> decoder,
    const LayerCacheOptions& options, std::shared_ptr<const void> keep_alive) {
  const std::string name = layer_digest.Hex();
  {
    absl::MutexLock lock(&state_->mu);
    for (;;) {
      ManagerState::Layer& l = state_->layers[name];
      if (!l.opening && !l.open) break;
      if (std::shared_ptr<LayerCache> open = l.cache.lock()) {
        if (!(l.toc == toc_digest)) {
          return absl::FailedPreconditionError(StrCat("layer ", layer_digest.ToString(),
                                                      " is open with TOC ", l.toc.ToString(),
                                                      ", not ", toc_digest.ToString()));
        }
        return open;
      }
      state_->changed.Wait(&state_->mu);  // being opened, or released and still closing
    }
    state_->layers[name].opening = true;
  }
  std::string dir = LayerDir(layer_digest);
  absl::Status made = MakeDir(dir);
  LayerCacheOptions layer_options = options;
  if (options_.size_limit_bytes > 0 && !layer_options.copy_allowed) {
    // A per-file copy (FUSE passthrough) only while the cache stays within its limit.
    layer_options.copy_allowed = [layers = state_->layers_dir,
                                  limit = options_.size_limit_bytes](uint64_t bytes) {
      return LayersBytes(layers) + bytes <= limit;
    };
  }
  absl::StatusOr<std::unique_ptr<LayerCache>> opened =
      made.ok() ? LayerCache::Open(dir, toc_digest, chunks, std::move(source), std::move(decoder),
                                   layer_options)
                : made;
  std::shared_ptr<LayerCache> cache;
  {
    absl::MutexLock lock(&state_->mu);
    ManagerState::Layer& l = state_->layers[name];
    l.opening = false;
    state_->changed.SignalAll();
    if (!opened.ok()) {
      state_->MaybeForget(name);
      return opened.status();
    }
    cache = std::shared_ptr<LayerCache>(opened->release(),
                                        CloseLayer{state_, name, std::move(keep_alive)});
    l.cache = cache;
    l.open = true;
    l.toc = toc_digest;
  }
  state_->Touch(name);
  return cache;
}

LayerPin CacheManager::Pin(const Sha256& layer_digest) {
  std::string name = layer_digest.Hex();
  {
    absl::MutexLock lock(&state_->mu);
    state_->layers[name].pins++;
  }
  state_->Touch(name);
  return LayerPin(state_, name);
}

absl::Status CacheManager::FlushAll() {
  std::vector<std::shared_ptr<LayerCache>> open;
  {
    absl::MutexLock lock(&state_->mu);
    for (auto& [name, l] : state_->layers) {
      if (auto c = l.cache.lock()) open.push_back(std::move(c));
    }
  }
  absl::Status first;
  for (auto& c : open) {
    absl::Status s = c->Flush();
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

absl::StatusOr<std::vector<LayerUsage>> CacheManager::List() const {
  std::vector<LayerUsage> out;
  std::vector<std::string> names;
  DIR* d = ::opendir(state_->layers_dir.c_str());
  if (d == nullptr) return ErrnoToStatus(errno, StrCat("opendir ", state_->layers_dir));
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    absl::StatusOr<Sha256> digest = Sha256::Parse(StrCat("sha256:", name));
    if (!digest.ok()) {
      LZ_LOG(kDebug, "cache: ignoring ", state_->layers_dir, "/", name);
      continue;
    }
    std::string dir = StrCat(state_->layers_dir, "/", name);
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;  // raced with GC
    absl::StatusOr<uint64_t> bytes = DirBytes(dir);
    if (!bytes.ok()) continue;
    LayerUsage u;
    u.digest = *digest;
    u.bytes = *bytes;
    u.last_used = absl::TimeFromTimespec(st.st_mtim);
    out.push_back(u);
    names.push_back(name);
  }
  ::closedir(d);
  {
    absl::MutexLock lock(&state_->mu);
    for (size_t i = 0; i < out.size(); i++) out[i].in_use = state_->InUse(names[i]);
  }
  std::sort(out.begin(), out.end(),
            [](const LayerUsage& a, const LayerUsage& b) { return a.last_used < b.last_used; });
  return out;
}

absl::StatusOr<uint64_t> CacheManager::Usage() const {
  ASSIGN_OR_RETURN(std::vector<LayerUsage> layers, List());
  uint64_t total = 0;
  for (const LayerUsage& l : layers) total += l.bytes;
  return total;
}

absl::StatusOr<std::string> CacheManager::Detach(const std::string& name) {
  absl::MutexLock lock(&state_->mu);
  if (state_->InUse(name)) {
    return absl::FailedPreconditionError(StrCat("layer ", name, " is in use"));
  }
  std::string from = StrCat(state_->layers_dir, "/", name);
  std::string to = StrCat(root_, "/trash/", name, ".", state_->trash_seq++);
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return ErrnoToStatus(errno, StrCat("rename ", from, " to ", to));
  }
  return to;
}

absl::Status CacheManager::RemoveLayer(const Sha256& layer_digest) {
  ASSIGN_OR_RETURN(std::string trash, Detach(layer_digest.Hex()));
  RemoveTree(trash);
  return absl::OkStatus();
}

absl::StatusOr<GcResult> CacheManager::CollectGarbage() {
  GcResult result;
  ASSIGN_OR_RETURN(std::vector<LayerUsage> layers, List());
  uint64_t total = 0;
  for (const LayerUsage& l : layers) total += l.bytes;
  for (const LayerUsage& l : layers) {  // least recently used first
    if (options_.size_limit_bytes == 0 || total <= options_.size_limit_bytes) break;
    if (l.in_use) continue;
    absl::StatusOr<std::string> trash = Detach(l.digest.Hex());
    if (!trash.ok()) continue;  // became in use, or vanished, since List()
    RemoveTree(*trash);
    LZ_LOG(kInfo, "cache: evicted layer ", l.digest.ToString(), " (", l.bytes, " bytes)");
    total -= l.bytes;
    result.bytes_freed += l.bytes;
    result.evicted.push_back(l.digest);
  }
  result.usage_after = total;
  return result;
}

}  // namespace lazysnap

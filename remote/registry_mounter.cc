#include "remote/registry_mounter.h"

#include <malloc.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <limits>
#include <optional>
#include <system_error>

#include "base/errors.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "registry/blob_reader.h"
#include "registry/curl_transport.h"
#include "remote/tail_source.h"
#include "remote/toc_store.h"

namespace lazysnap {

namespace {

// `server_error_rounds`: see registry::RetryPolicy::max_server_error_rounds.
registry::ClientOptions ClientOptionsFor(const RegistryMounterOptions& options,
                                         absl::Duration deadline, int server_error_rounds) {
  registry::ClientOptions o;
  o.hosts_dir = options.hosts_dir;
  o.retry.deadline = deadline;
  o.retry.max_server_error_rounds = server_error_rounds;
  o.retry.attempt_timeout = std::min(o.retry.attempt_timeout, deadline);
  return o;
}

}  // namespace

struct RegistryLayerMounter::Mounted {
  RemoteLayerStats info;           // all but `cache` and `fs`
  LayerPin pin;                    // released after the filesystem is gone (declared first)
  std::shared_ptr<EarlyBytes> early;  // the replay-before-the-TOC bytes, if any
  std::unique_ptr<LayerFs> fs;

  RemoteLayerStats Stats() const {
    RemoteLayerStats s = info;
    s.cache = fs->cache().stats();
    s.fs = fs->stats();
    if (early) s.early = early->stats();
    return s;
  }
};

struct RegistryLayerMounter::Slot {
  absl::Mutex mu;
  std::weak_ptr<const SeekableLayer> layer ABSL_GUARDED_BY(mu);
};

absl::StatusOr<std::unique_ptr<RegistryLayerMounter>> RegistryLayerMounter::Create(
    const RegistryMounterOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<registry::CurlTransport> transport,
                   registry::CurlTransport::Create());
  auto credentials = std::make_unique<registry::CredentialStore>();
  if (!options.docker_config.empty()) {
    absl::Status s = credentials->AddDockerConfigFile(options.docker_config);
    if (!s.ok()) LZ_LOG(kWarning, "registry credentials: ", s.ToString());
  }
  if (!options.auths_toml.empty()) {
    absl::Status s = credentials->AddLazysnapConfig(options.auths_toml);
    if (!s.ok()) return s;  // names the host, never the secret
  }
  CacheManagerOptions cache_options;
  cache_options.size_limit_bytes = options.cache_max_bytes;
  ASSIGN_OR_RETURN(std::unique_ptr<CacheManager> cache,
                   CacheManager::Open(options.cache_root, cache_options));
  return std::unique_ptr<RegistryLayerMounter>(new RegistryLayerMounter(
      options, std::move(transport), std::move(credentials), std::move(cache)));
}

RegistryLayerMounter::RegistryLayerMounter(const RegistryMounterOptions& options,
                                           std::unique_ptr<registry::HttpTransport> transport,
                                           std::unique_ptr<registry::CredentialStore> credentials,
                                           std::unique_ptr<CacheManager> cache)
    : options_(options),
      transport_(std::move(transport)),
      credentials_(std::move(credentials)),
      client_(std::make_unique<registry::RegistryClient>(
          transport_.get(), credentials_.get(),
          // A container's read: a gateway's 502/504 during a registry rollout, or a blob
          // store's retryable 500, is retried until read_deadline, not failed (EIO) at once.
          ClientOptionsFor(options, options.read_deadline, std::numeric_limits<int>::max()))),
      mount_client_(std::make_unique<registry::RegistryClient>(
          transport_.get(), credentials_.get(),
          ClientOptionsFor(options, options.mount_deadline,
                           registry::RetryPolicy{}.max_server_error_rounds))),
      cache_(std::move(cache)),
      prefetch_(options.prefetch && !options.trace_root.empty()
                    ? std::make_unique<PrefetchManager>(*options.prefetch, options.trace_root)
                    : nullptr) {}

RegistryLayerMounter::~RegistryLayerMounter() {
  std::map<std::string, std::unique_ptr<Mounted>> mounts;
  {
    absl::MutexLock l(&mu_);
    mounts.swap(mounts_);
  }
  for (auto& [dir, m] : mounts) {
    if (prefetch_) prefetch_->LayerUnmounted(dir);
    if (m->early) m->early->Release();  // the warm-up threads fetch no more of it
    LZ_LOG(kInfo, "remote layer unmounted at shutdown: ",
           Describe(m->Stats()));
    absl::Status s = m->fs->Unmount();
    if (!s.ok()) LZ_LOG(kWarning, "unmount ", dir, ": ", s.ToString());
  }
  mounts.clear();
  absl::Status f = cache_->FlushAll();
  if (!f.ok()) LZ_LOG(kWarning, "cache flush: ", f.ToString());
}

std::string RegistryLayerMounter::Describe(const RemoteLayerStats& s) {
  return StrCat(s.digest.ToString(), " at ", s.dir, ": ", s.cache.requests, " requests, ",
                s.cache.bytes_fetched, " of ", s.blob_size, " blob bytes fetched, ",
                s.cache.present_chunks, "/", s.cache.total_chunks, " chunks (",
                s.cache.present_bytes, "/", s.cache.total_bytes, " bytes) cached, ",
                s.cache.verification_failures, " verification failures, ",
                s.toc_from_cache ? "TOC from the local cache"
                                 : StrCat("TOC: ", s.toc_bytes, " bytes in ", s.toc_requests,
                                          " requests"),
                "; prefetch: ", s.cache.prefetch_bytes_fetched, " bytes prefetched in ",
                s.cache.prefetch_requests, " requests, ", s.cache.prefetch_chunks,
                " chunks, ", s.cache.prefetch_hits, " of them read, ",
                s.cache.prefetch_unused_bytes(), " bytes unread; on demand: ",
                s.cache.ondemand_chunks(), " chunks in ",
                s.cache.requests - s.cache.prefetch_requests, " requests; passthrough: ",
                s.fs.passthrough_opens, " opens, ", s.fs.passthrough_copies, " copies",
                s.early.ranges == 0
                    ? ""
                    : StrCat("; before the TOC: ", s.early.ranges, " ranges, ",
                             s.early.fetched_bytes, " bytes fetched, ", s.early.served_bytes,
                             " served in ", s.early.served_reads, " reads, ", s.early.failed,
                             " failed"));
}

std::shared_future<std::optional<Sha256>> RegistryLayerMounter::ImageKey(
    const RemoteLayerSpec& spec) {
  auto ready = [this, &spec](std::optional<Sha256> key) {
    if (key) prefetch_->HintImage(spec.ref ? spec.ref->String() : "", *key);
    std::promise<std::optional<Sha256>> p;
    p.set_value(key);
    return p.get_future().share();
  };
  if (spec.manifest_digest) return ready(spec.manifest_digest);
  if (!spec.ref) return ready(std::nullopt);
  const std::string ref = spec.ref->String();
  absl::MutexLock l(&keys_mu_);
  const absl::Time now = absl::Now();
  if (auto it = image_keys_.find(ref); it != image_keys_.end()) {
    const bool failed =
        it->second.key.wait_for(std::chrono::seconds(0)) == std::future_status::ready &&
        !it->second.key.get();
    if (!failed || now - it->second.started < options_.image_key_retry) return it->second.key;
    image_keys_.erase(it);  // a resolution that failed a while ago: try again
  }
  // The task holds its own copy of the reference; `this` outlives it (see image_keys_).
  std::shared_future<std::optional<Sha256>> key =
      std::async(std::launch::async, [this, r = *spec.ref, ref]() -> std::optional<Sha256> {
        auto resolved = mount_client_->ResolveImage(r);
        if (!resolved.ok()) {
          LZ_LOG(kWarning, "prefetch: resolving ", ref, " to its manifest: ",
                 resolved.status().ToString(), "; no access trace for its layers");
          return std::nullopt;  // tried again by the next mount of the reference
        }
        LZ_LOG(kInfo, "prefetch: ", ref, " is manifest ", resolved->descriptor.digest.ToString());
        prefetch_->HintImage(ref, resolved->descriptor.digest);
        return resolved->descriptor.digest;
      }).share();
  image_keys_.emplace(ref, KeyResolution{key, now});
  return key;
}

void RegistryLayerMounter::WarmConnections(const RemoteLayerSpec& spec,
                                           std::shared_ptr<EarlyBytes> early, uint64_t blob_size) {
  if (!prefetch_ || !spec.ref) return;
  const int n = std::min(options_.prefetch->scheduler.workers, 8) - 1;
  if (n <= 0) return;
  absl::MutexLock l(&keys_mu_);
  for (auto it = warmers_.begin(); it != warmers_.end();) {
    if (it->wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;  // still warm
    it = warmers_.erase(it);
  }
  for (int i = 0; i < n; i++) {
    // The task holds copies; `this` outlives it (warmers_ is destroyed before the clients).
    warmers_.push_back(std::async(std::launch::async, [this, r = *spec.ref, d = spec.digest,
                                                       early, blob_size] {
      auto size = mount_client_->BlobSize(r, d);  // its answer is not needed, its connection is
      if (!size.ok()) LZ_LOG(kDebug, "warming a connection: ", size.status().ToString());
      if (early == nullptr) return;
      if (!size.ok() || *size != blob_size) {
        // The registry fails, or the trace's blob is not this one: every early answer would
        // fail (Content-Range's total), so nothing is fetched early.
        if (size.ok()) {
          LZ_LOG(kDebug, "layer ", d.ToString(), ": blob is ", *size, " bytes, its trace says ",
                 blob_size, ": no early bytes");  // (Mount says it as a warning)
        }
        early->Release();
        return;
      }
      // Now that the connection is open (and the TOC's bytes are on their way): early ranges,
      // with the mount's client (its deadline and bounded retries: a failing registry ends
      // the warm-up within mount_deadline, and Fetch stops at the first failure).
      auto blob = mount_client_->OpenBlob(r, d, blob_size);
      if (blob.ok()) early->Fetch(**blob);
    }));
  }
}

void RegistryLayerMounter::WaitForWarmUp() {
  std::vector<std::future<void>> warmers;
  {
    absl::MutexLock l(&keys_mu_);
    warmers.swap(warmers_);
  }
  warmers.clear();  // a std::async future's destructor waits for its task
}

std::shared_ptr<RegistryLayerMounter::Slot> RegistryLayerMounter::SlotFor(const Sha256& digest) {
  absl::MutexLock l(&mu_);
  auto& slot = slots_[digest.Hex()];
  if (!slot) slot = std::make_shared<Slot>();
  return slot;
}

absl::StatusOr<std::shared_ptr<const SeekableLayer>> RegistryLayerMounter::OpenIndex(
    const RemoteLayerSpec& spec, const Labels& labels, RemoteLayerStats* stats,
    std::string* fetched_toc) {
  std::shared_ptr<Slot> slot = SlotFor(spec.digest);
  absl::MutexLock l(&slot->mu);
  std::shared_ptr<const SeekableLayer> layer = slot->layer.lock();
  stats->toc_from_cache = true;
  const std::string dir = cache_->LayerDir(spec.digest);
  bool parsed = false;  // a stored TOC parsed here: megabytes of short-lived allocations
  if (!layer) {
    auto stored = LoadToc(dir, options_.limits);
    if (stored.ok()) {
      parsed = true;
      std::string().swap((*stored)->toc_json);  // stored already; the index is what serves
      layer = *std::move(stored);
    } else if (!absl::IsNotFound(stored.status())) {
      LZ_LOG(kWarning, "stored TOC of ", spec.digest.ToString(), " unusable, fetching it again: ",
             stored.status().ToString());
    }
  }
  if (layer && spec.toc_digest && layer->toc_digest != *spec.toc_digest) {
    LZ_LOG(kWarning, "stored TOC of ", spec.digest.ToString(), " is ",
           layer->toc_digest.ToString(), ", labels say ", spec.toc_digest->ToString(),
           ": fetching it again");
    layer.reset();
  }
  if (!layer) {
    stats->toc_from_cache = false;
    if (!spec.ref) {
      return absl::FailedPreconditionError(
          StrCat("layer ", spec.digest.ToString(), ": no image reference in the labels and no TOC stored locally"));
    }
    // One round trip for the size and the blob's tail (footer, and the TOC when it fits),
    // a second only for the part of the TOC before the tail. The converter's hint of the
    // TOC's size makes the tail fit (a wrong hint: that second request, as without one).
    // A server that does not answer suffix ranges right: HEAD + range reads, as without it.
    uint64_t tail_want = options_.tail_bytes;
    if (spec.toc_tail_size && *spec.toc_tail_size <= options_.max_tail_hint_bytes) {
      tail_want = std::max(*spec.toc_tail_size, options_.tail_bytes);
    } else if (spec.toc_tail_size) {
      LZ_LOG(kWarning, "layer ", spec.digest.ToString(), ": TOC tail size hint ",
             *spec.toc_tail_size, " over ", options_.max_tail_hint_bytes, " bytes, ignored");
    }
    absl::StatusOr<registry::RegistryClient::BlobTail> read_tail =
        mount_client_->ReadBlobTail(*spec.ref, spec.digest, tail_want);
    registry::RegistryClient::BlobTail tail;
    std::optional<uint64_t> blob_size;
    if (read_tail.ok()) {
      tail = *std::move(read_tail);
      blob_size = tail.size;
    } else if (absl::IsFailedPrecondition(read_tail.status()) ||
               absl::IsDataLoss(read_tail.status())) {
      LZ_LOG(kWarning, "layer ", spec.digest.ToString(), ": reading the blob's tail: ",
             read_tail.status().ToString(), "; reading the footer and TOC with range requests");
    } else {
      return read_tail.status();
    }
    const uint64_t tail_bytes = tail.bytes.size();
    ASSIGN_OR_RETURN(std::unique_ptr<registry::RegistryBlobSource> blob,
                     mount_client_->OpenBlob(*spec.ref, spec.digest, blob_size));
    TailedBlobSource tailed(blob.get(), std::move(tail.bytes));
    OpenOptions open;
    // The layer's annotations arrive as labels under the same keys (stargz/toc.digest).
    open.annotations = labels;
    open.limits = options_.limits;
    ASSIGN_OR_RETURN(std::unique_ptr<SeekableLayer> opened, OpenLayer(tailed, open));
    LZ_LOG(kInfo, "layer ", spec.digest.ToString(), ": TOC ", opened->toc_digest.ToString(),
           " (", opened->toc_json.size(), " bytes, ", opened->index.chunks().size(),
           " chunks) fetched with ", 1 + blob->requests(), " requests, ",
           tail_bytes + blob->bytes_received(), " bytes");
    // Mount stores it and frees it (the TOC JSON is several times the index's size, and a
    // mounted layer keeps its SeekableLayer).
    *fetched_toc = std::move(opened->toc_json);
    std::string().swap(opened->toc_json);
    stats->toc_requests = 1 + blob->requests();
    stats->toc_bytes = tail_bytes + blob->bytes_received();
    layer = std::move(opened);
  }
  slot->layer = layer;
  // Give the parse's freed heap back to the system: glibc keeps it otherwise (in the arena
  // of the gRPC thread that parsed), about 450 bytes per TOC entry (lazysnapd_bench).
  if (parsed) malloc_trim(0);
  return layer;
}

absl::Status RegistryLayerMounter::Mount(const std::string& digest, const Labels& labels,
                                         const std::string& dir) {
  {
    absl::MutexLock l(&mu_);
    if (mounts_.count(dir) || !starting_.insert(dir).second) {
      return absl::AlreadyExistsError(StrCat(dir, " is mounted already"));
    }
  }
  // `dir` is this call's until it returns (then in mounts_, or free again): the prefetch of
  // the layer, keyed by `dir`, starts before the FUSE mount.
  struct Starting {
    RegistryLayerMounter* self;
    const std::string& dir;
    ~Starting() {
      absl::MutexLock l(&self->mu_);
      self->starting_.erase(dir);
    }
  } starting{this, dir};
  const absl::Time t0 = absl::Now();
  ASSIGN_OR_RETURN(RemoteLayerSpec spec, ParseRemoteLayerLabels(digest, labels));
  auto m = std::make_unique<Mounted>();
  m->info.dir = dir;
  m->info.digest = spec.digest;
  m->pin = cache_->Pin(spec.digest);  // before anything lands in the layer's directory
  // Started before the TOC is read, so that resolving the tag (when the labels do not give
  // the manifest digest) and a registry trace lookup overlap it.
  std::shared_future<std::optional<Sha256>> image_key_future;
  if (prefetch_) image_key_future = ImageKey(spec);
  std::shared_ptr<EarlyBytes> early;
  uint64_t early_blob_size = 0;  // the trace's size of the blob `early` is planned in
  if (prefetch_ && spec.ref &&
      access(StrCat(cache_->LayerDir(spec.digest), "/toc.meta").c_str(), F_OK) != 0) {
    // The TOC is to be read from the registry: the replay's first bytes can come beside it.
    // Not under a prefetch bandwidth limit: early fetches are not paced by its token bucket.
    uint64_t& blob_size = early_blob_size;
    if (options_.early_bytes > 0 && options_.prefetch->scheduler.bandwidth_limit == 0 &&
        image_key_future.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      if (std::optional<Sha256> key = image_key_future.get()) {
        std::vector<TraceRange> plan =
            prefetch_->EarlyRanges(*key, spec.digest, options_.early_bytes, &blob_size);
        if (!plan.empty()) {
          early = std::make_shared<EarlyBytes>(std::move(plan), options_.early_hold);
        }
      }
    }
    WarmConnections(spec, early, blob_size);
  }
  m->early = early;
  // A mount that fails frees the early bytes and stops their fetch (nothing else would:
  // the layer is not in mounts_); a successful one hands them to Unmount.
  struct ReleaseEarly {
    std::shared_ptr<EarlyBytes> early;
    ~ReleaseEarly() {
      if (early) early->Release();
    }
  } release_early{early};
  const absl::Time t_key = absl::Now();
  std::string fetched_toc;  // stored below, off the replay's critical path
  ASSIGN_OR_RETURN(std::shared_ptr<const SeekableLayer> layer,
                   OpenIndex(spec, labels, &m->info, &fetched_toc));
  const absl::Time t_index = absl::Now();
  std::optional<Sha256> image_key;
  // Usually resolved by now: it started first. Not waited for past image_key_wait (a TOC
  // from the local cache with the registry down: the resolution runs to mount_deadline).
  if (image_key_future.valid()) {
    if (image_key_future.wait_for(absl::ToChronoMilliseconds(options_.image_key_wait)) ==
        std::future_status::ready) {
      image_key = image_key_future.get();
    } else {
      LZ_LOG(kWarning, "layer ", spec.digest.ToString(), ": the image's manifest digest is not ",
             "known after ", absl::FormatDuration(options_.image_key_wait),
             "; mounted without an access trace");
    }
  }
  const absl::Time t_key_wait = absl::Now();
  m->info.blob_size = layer->blob_size;
  if (early && layer->blob_size != early_blob_size) {
    LZ_LOG(kWarning, "layer ", spec.digest.ToString(), ": blob is ", layer->blob_size,
           " bytes, its trace says ", early_blob_size, ": no early bytes");
    early->Release();
    early.reset();
  }
  std::shared_ptr<BlobSource> source;
  if (spec.ref) {
    // Offline when the size is known: no request until a chunk is missing.
    auto blob = client_->OpenBlob(*spec.ref, spec.digest, layer->blob_size);
    if (blob.ok()) {
      source = std::shared_ptr<BlobSource>(*std::move(blob));
      if (early) {
        source = std::make_shared<EarlyBlobSource>(std::move(source), early,
                                                   options_.early_wait);
      }
    } else {
      LZ_LOG(kWarning, "layer ", spec.digest.ToString(), ": no blob reader (cached chunks only): ",
             blob.status().ToString());
    }
  }
  ASSIGN_OR_RETURN(std::shared_ptr<LayerCache> cache,
                   cache_->OpenLayer(spec.digest, layer, std::move(source)));
  const absl::Time t_cache = absl::Now();  // (after the key wait)
  // The trace replay starts first: its requests are under way while the FUSE mount is made
  // and the TOC stored (a few ms; tens on a busy machine). Nothing reads the cache but it
  // until the mount exists.
  if (prefetch_) {
    MountedLayerInfo info;
    info.id = dir;
    info.image = image_key;
    info.image_ref = spec.ref ? spec.ref->String() : "";
    info.digest = spec.digest;
    info.layer = layer;
    info.cache = cache;
    prefetch_->LayerMounted(info);
  }
  LayerFsOptions fs_options = options_.fs;
  fs_options.fsname = StrCat("lazysnap:", spec.digest.Hex().substr(0, 12));
  absl::StatusOr<std::unique_ptr<LayerFs>> fs = LayerFs::Mount(layer, cache, dir, fs_options);
  if (!fs.ok()) {
    if (prefetch_) prefetch_->LayerMountFailed(dir);  // containerd retries: no recording left
    return fs.status();
  }
  m->fs = *std::move(fs);
  const absl::Time t_fs = absl::Now();
  if (!fetched_toc.empty()) {
    const std::string layer_dir = cache_->LayerDir(spec.digest);
    std::error_code ec;
    std::filesystem::create_directories(layer_dir, ec);
    absl::Status saved =
        ec ? absl::InternalError(StrCat("mkdir ", layer_dir, ": ", ec.message()))
           : SaveToc(layer_dir, *layer, fetched_toc);
    if (!saved.ok()) {
      LZ_LOG(kWarning, "storing the TOC of ", spec.digest.ToString(), ": ", saved.ToString());
    }
    std::string().swap(fetched_toc);
    // Give the parse's freed heap back to the system: glibc keeps it otherwise (in the
    // arena of the gRPC thread that parsed), about 450 bytes per TOC entry (lazysnapd_bench).
    malloc_trim(0);
  }
  auto ms = [](absl::Duration d) { return absl::ToInt64Microseconds(d) / 1000.0; };
  LZ_LOG(kInfo, "remote layer ", spec.digest.ToString(), " mounted at ", dir,
         m->info.toc_from_cache ? " (TOC from the local cache)" : "", " in ", ms(t_fs - t0),
         " ms (index ", ms(t_index - t_key), ", then waiting for the image key ",
         ms(t_key_wait - t_index), ", cache ", ms(t_cache - t_key_wait), ", prefetch start and FUSE mount ",
         ms(t_fs - t_cache), "; TOC stored ", ms(absl::Now() - t_fs), " ms after)");
  {
    absl::MutexLock l(&mu_);
    mounts_.emplace(dir, std::move(m));  // `dir` was reserved in starting_
  }
  release_early.early.reset();  // mounted: released at Unmount
  if (cache_->size_limit() > 0) {
    auto gc = cache_->CollectGarbage();
    if (!gc.ok()) {
      LZ_LOG(kWarning, "cache GC: ", gc.status().ToString());
    } else if (!gc->evicted.empty()) {
      LZ_LOG(kInfo, "cache GC: evicted ", gc->evicted.size(), " layers, ", gc->bytes_freed, " bytes");
    }
  }
  return absl::OkStatus();
}

absl::Status RegistryLayerMounter::Check(const std::string& dir) {
  absl::MutexLock l(&mu_);
  auto it = mounts_.find(dir);
  if (it == mounts_.end()) return absl::UnavailableError(StrCat("no remote layer mounted at ", dir));
  return it->second->fs->Check();
}

absl::Status RegistryLayerMounter::Unmount(const std::string& dir) {
  std::unique_ptr<Mounted> m;
  {
    absl::MutexLock l(&mu_);
    auto it = mounts_.find(dir);
    if (it != mounts_.end()) {
      m = std::move(it->second);
      mounts_.erase(it);
    }
  }
  if (!m) {
    // Not ours (a mount left by an earlier process): detach whatever is there.
    if (umount2(dir.c_str(), MNT_DETACH) != 0) {
      int err = errno;
      if (err == EINVAL) return absl::NotFoundError(StrCat("not a mount point: ", dir));
      return ErrnoToStatus(err, StrCat("umount ", dir));
    }
    return absl::OkStatus();
  }
  if (prefetch_) prefetch_->LayerUnmounted(dir);
  LZ_LOG(kInfo, "remote layer unmounted: ",
         Describe(m->Stats()));
  if (m->early) m->early->Release();
  return m->fs->Unmount();
}

std::vector<RemoteLayerStats> RegistryLayerMounter::Stats() const {
  absl::MutexLock l(&mu_);
  std::vector<RemoteLayerStats> out;
  for (const auto& [dir, m] : mounts_) out.push_back(m->Stats());
  return out;
}

}  // namespace lazysnap

// RegistryLayerMounter: the production RemoteLayerMounter. It mounts a seekable layer
// (eStargz or zstd:chunked) of a registry image with FUSE, its file data fetched lazily:
//
//   labels -> image reference + layer digest (+ TOC digest)        remote/labels.h
//   TOC: from the layer's cache directory if stored there, else fetched from the registry
//        (footer, TOC, verified) and stored there                  remote/toc_store.h
//   blob reader: RegistryClient::OpenBlob (hosts.toml endpoints, retries, range requests)
//   cache: CacheManager::OpenLayer under <cache root>/layers/<hex>, pinned while mounted
//   filesystem: LayerFs::Mount at the snapshot's directory
//
// A layer whose TOC is stored locally mounts without the registry (restart, registry down):
// missing chunks are then fetched when read, and fail with EIO while the registry is away.
#ifndef LAZYSNAP_REMOTE_REGISTRY_MOUNTER_H_
#define LAZYSNAP_REMOTE_REGISTRY_MOUNTER_H_

#include <atomic>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cache/cache_manager.h"
#include "format/layer.h"
#include "fusefs/layer_fs.h"
#include "prefetch/manager.h"
#include "remote/early_source.h"
#include "registry/client.h"
#include "registry/credentials.h"
#include "registry/transport.h"
#include "remote/labels.h"
#include "snapshotter/remote_layer.h"

namespace lazysnap {

struct RegistryMounterOptions {
  std::string cache_root;        // the chunk cache (CacheManager root), e.g. <root>/cache
  uint64_t cache_max_bytes = 0;  // 0: unlimited
  std::string hosts_dir;         // containerd's certs.d ("" = default endpoints)
  std::string docker_config;     // a Docker config.json with credentials ("" = none)
  // lazysnap config.toml text: its [registry.auths."HOST"] tables add credentials, winning
  // over docker_config's for the same host ("" = none). Secrets: never logged.
  std::string auths_toml;
  // Retries end at these deadlines: reading the footer and TOC in Mount (the pull waits;
  // past it the layer falls back to a full pull), and each on-demand read of file data
  // (the reader waits; past it, EIO).
  absl::Duration mount_deadline = absl::Seconds(10);
  // Bytes read from the end of a blob with its size, in Mount's first request: the footer
  // and, when it fits, the TOC. Larger: fewer second requests, more file data read for naught.
  uint64_t tail_bytes = 64 << 10;
  // With the layer's toc-tail-size label (format/layer.h), the first request reads that many
  // bytes instead when more: footer and TOC in one round trip. A hint larger than this
  // is ignored (a label must not make lazysnapd read a whole blob into memory).
  uint64_t max_tail_hint_bytes = 32 << 20;
  absl::Duration read_deadline = absl::Seconds(60);
  // How long Mount waits for the image key (the tag resolved, when the labels lack the
  // manifest digest) once the TOC is read; past it the layer is mounted without one (no
  // trace replay or recording for it). A failed resolution is not tried again for
  // image_key_retry: with the registry down, restoring N layers costs N x image_key_wait at
  // most, not N x mount_deadline.
  absl::Duration image_key_wait = absl::Seconds(1);
  absl::Duration image_key_retry = absl::Seconds(30);
  // The replay before the TOC (docs/prefetch.md): when the image's trace is in the local store
  // with the layer's blob ranges and the TOC is read from the registry, up to early_bytes of
  // the replay's first requests are fetched on the warm-up connections while the TOC is read
  // and parsed, and served to the replay from memory; unread ones are dropped after
  // early_hold (at the next read) or at unmount. 0: off.
  uint64_t early_bytes = 16 << 20;
  absl::Duration early_hold = absl::Seconds(10);
  // How long a read waits for an early range still being fetched before it reads the range
  // from the registry itself.
  absl::Duration early_wait = absl::Seconds(2);
  LayerFsOptions fs;
  LayerLimits limits;
  // Access traces and prefetching (prefetch/manager.h, docs/prefetch.md): on when set and
  // trace_root (lazysnapd's root; traces go to <trace_root>/traces) is not empty.
  std::optional<PrefetchConfig> prefetch;
  std::string trace_root;
};

// One mounted layer's figures, a snapshot.
struct RemoteLayerStats {
  std::string dir;
  Sha256 digest;
  uint64_t blob_size = 0;
  bool toc_from_cache = false;  // mounted from the locally stored TOC
  uint64_t toc_requests = 0;    // reading the footer and TOC from the registry
  uint64_t toc_bytes = 0;
  LayerCacheStats cache;        // file data
  LayerFsStats fs;              // the FUSE mount's (passthrough opens among them)
  EarlyBytesStats early;        // fetched before the TOC was in (all 0: none)
};

class RegistryLayerMounter : public RemoteLayerMounter {
 public:
  static absl::StatusOr<std::unique_ptr<RegistryLayerMounter>> Create(
      const RegistryMounterOptions& options);
  // Unmounts everything still mounted (logging each layer's figures).
  ~RegistryLayerMounter() override;

  // Thread-safe (RemoteLayerMounter's contract). Errors of Mount: InvalidArgument (bad
  // labels), FailedPrecondition (not a seekable layer, or no reference and no stored TOC),
  // the registry's errors (Unavailable, NotFound...), DataLoss (TOC digest mismatch).
  absl::Status Mount(const std::string& digest, const Labels& labels,
                     const std::string& dir) override;
  absl::Status Check(const std::string& dir) override;
  absl::Status Unmount(const std::string& dir) override;

  // Thread-safe.
  std::vector<RemoteLayerStats> Stats() const;
  CacheManager& cache() { return *cache_; }
  // One line: "<digest> at <dir>: R requests, F of S blob bytes fetched, ..., prefetch: ...".
  static std::string Describe(const RemoteLayerStats& s);
  // Null when prefetching is off. Lives as long as this mounter.
  PrefetchManager* prefetch() { return prefetch_.get(); }
  // The client Mount reads footers and TOCs with (mount deadline), e.g. for a TraceSource.
  registry::RegistryClient& registry_client() { return *mount_client_; }
  // Blocks until the connection warm-up requests (WarmConnections) started so far, retries
  // included, have ended. For tests that count the registry's requests. Thread-safe.
  void WaitForWarmUp();

 private:
  struct Mounted;
  struct Slot;  // per layer digest: serializes opening, remembers the opened layer
  RegistryLayerMounter(const RegistryMounterOptions& options,
                       std::unique_ptr<registry::HttpTransport> transport,
                       std::unique_ptr<registry::CredentialStore> credentials,
                       std::unique_ptr<CacheManager> cache);
  // The layer's index: remembered, stored locally, or from the registry. Fills the TOC
  // fields of *stats. A TOC fetched from the registry is not stored yet: its JSON is moved
  // to *fetched_toc (else left empty) for Mount to store once the prefetch has started.
  absl::StatusOr<std::shared_ptr<const SeekableLayer>> OpenIndex(const RemoteLayerSpec& spec,
                                                                 const Labels& labels,
                                                                 RemoteLayerStats* stats,
                                                                 std::string* fetched_toc);
  std::shared_ptr<Slot> SlotFor(const Sha256& digest);
  // The image manifest digest keying the layer's access trace (prefetch/trace.md): from the
  // labels, else the reference resolved (ResolveImage) once per reference string, on its own
  // thread, so that the resolution overlaps the TOC read (a round trip or two at 20 ms RTT);
  // the prefetcher is hinted (HintImage) as soon as the key is known. Null if unknown (a
  // failed resolution is tried again by a mount of the reference image_key_retry after it
  // started). The future is ready at once when the labels give the key.
  // Only with prefetching on.
  std::shared_future<std::optional<Sha256>> ImageKey(const RemoteLayerSpec& spec);
  // When the layer's TOC is not stored locally (it is about to be read from the registry) and
  // prefetching is on: `workers - 1` HEAD requests of the blob, each on its own thread, beside
  // the TOC read, so that the replay's first requests find open connections in the pool (a new
  // one costs a round trip more: 3 of python's first 4 replay requests paid it, ~25 ms of the
  // link idle). Not waited for; skipped while an earlier warm-up still runs.
  // With `early` (its ranges of a blob of `blob_size` bytes): each warm-up thread then fetches
  // early ranges (EarlyBytes::Fetch, with mount_client_) until none is left; a HEAD that
  // fails or answers another size releases `early` instead.
  void WarmConnections(const RemoteLayerSpec& spec, std::shared_ptr<EarlyBytes> early,
                       uint64_t blob_size);

  const RegistryMounterOptions options_;
  const std::unique_ptr<registry::HttpTransport> transport_;
  const std::unique_ptr<registry::CredentialStore> credentials_;
  const std::unique_ptr<registry::RegistryClient> client_;        // file data
  const std::unique_ptr<registry::RegistryClient> mount_client_;  // footers and TOCs
  const std::unique_ptr<CacheManager> cache_;
  const std::unique_ptr<PrefetchManager> prefetch_;  // null: off; its jobs end before cache_

  absl::Mutex keys_mu_;
  // reference -> manifest digest, resolved or being resolved. Destroyed before the clients and
  // the prefetcher: a resolution still running is waited for (std::async's shared state).
  struct KeyResolution {
    std::shared_future<std::optional<Sha256>> key;
    absl::Time started;
  };
  std::map<std::string, KeyResolution> image_keys_ ABSL_GUARDED_BY(keys_mu_);
  // WarmConnections' requests (std::async: destroying one waits for it), before the clients.
  std::vector<std::future<void>> warmers_ ABSL_GUARDED_BY(keys_mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Slot>> slots_ ABSL_GUARDED_BY(mu_);  // by digest hex
  std::set<std::string> starting_ ABSL_GUARDED_BY(mu_);  // dirs a Mount is under way for
  // Declared last: destroyed (unmounted) before the client and cache they use.
  std::map<std::string, std::unique_ptr<Mounted>> mounts_ ABSL_GUARDED_BY(mu_);  // by dir
};

}  // namespace lazysnap

#endif  // LAZYSNAP_REMOTE_REGISTRY_MOUNTER_H_

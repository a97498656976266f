// LayerFs: one layer mounted read-only through FUSE (libfuse3 low-level API), serving the
// LayerView of its index with file bytes from its LayerCache. Each LayerFs runs its own
// session and multi-threaded loop, so one process can mount many layers.
//
// Layers are immutable, so entries, attributes and negative lookups are cached by the kernel
// for a long time, file pages are kept across opens (keep_cache; no open round trip at all
// where the kernel supports it and passthrough is off), directories use readdirplus and the
// kernel's readdir cache, and read replies are spliced from the cache's data file descriptor.
// Large files whose chunks are all cached are opened with FUSE passthrough where the kernel
// has it (fusefs/passthrough.h): their reads never reach the daemon. A read whose chunks
// cannot be fetched or fail verification gets EIO (and a log line); the mount stays up.
//
//   auto fs = LayerFs::Mount(layer, cache, "/mnt/x", {});
//   ...
//   fs.value()->Unmount();   // or just destroy it
#ifndef LAZYSNAP_FUSEFS_LAYER_FS_H_
#define LAZYSNAP_FUSEFS_LAYER_FS_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "cache/layer_cache.h"
#include "format/layer.h"
#include "fusefs/layer_view.h"
#include "fusefs/passthrough.h"

struct fuse_session;

namespace lazysnap {

struct LayerFsOptions {
  double entry_timeout_sec = 365.0 * 86400;   // names never change
  double attr_timeout_sec = 365.0 * 86400;
  double negative_timeout_sec = 365.0 * 86400;
  int max_threads = 16;                        // FUSE worker threads
  int max_idle_threads = 4;
  bool allow_other = true;
  bool default_permissions = true;             // the kernel checks modes and owners
  // Largest read request (and max_write); Mount() halves it while libfuse could not splice
  // replies that large (pipe size limit: 512 KiB in containers; layer_fs.cc).
  uint32_t max_read_bytes = 1u << 20;
  uint32_t read_ahead_kb = 1024;               // the mount's bdi readahead (kernel: 128); 0 keeps it
  std::string fsname = "lazysnap";             // shown in /proc/mounts (e.g. the layer digest)
  OpaqueXattr opaque_xattr = OpaqueXattr::kTrusted;
  // FUSE passthrough (docs/fusefs.md) for regular files of at least this many bytes whose
  // chunks are all cached: their reads bypass the daemon. 0: off (the kernel is then never
  // asked, and opens are skipped where it can). Needs kernel 6.9+ and root; falls back to
  // ordinary reads, logged, where the kernel or the cache's filesystem refuses it (not accepted
  // at all while the cache is on overlayfs or FUSE). Accepting it makes the mount's stack depth 1: an
  // overlay over the mount can have no further overlay on it (docs/fusefs.md).
  uint64_t passthrough_min_bytes = 1ull << 20;
  // Unmount(): how long to wait for users of a detached mount before aborting the connection.
  absl::Duration unmount_grace = absl::Seconds(2);
  bool debug = false;                          // libfuse request tracing to stderr
};

// Counters since mount; a snapshot.
struct LayerFsStats {
  uint64_t lookups = 0, negative_lookups = 0;
  uint64_t reads = 0, read_bytes = 0, read_errors = 0;
  uint64_t readdirs = 0, getattrs = 0, xattr_calls = 0;
  uint64_t passthrough_opens = 0;   // opens answered with a backing file (no reads follow)
  uint64_t passthrough_copies = 0;  // per-file copies written for passthrough
  uint64_t passthrough_copy_failures = 0;  // copies that failed (no room, I/O error)
};

class LayerFs {
 public:
  // Mounts `layer` at existing directory `mountpoint` (absolute or relative) with file data
  // from `cache` (opened over layer->index.chunks()). Both are kept alive by the LayerFs. The
  // loop threads are running when this returns. Needs root (or a fuse group + fusermount3:
  // not supported).
  static absl::StatusOr<std::unique_ptr<LayerFs>> Mount(std::shared_ptr<const SeekableLayer> layer,
                                                        std::shared_ptr<LayerCache> cache,
                                                        const std::string& mountpoint,
                                                        const LayerFsOptions& options);
  // Unmounts if still mounted (errors logged).
  ~LayerFs();
  LayerFs(const LayerFs&) = delete;
  LayerFs& operator=(const LayerFs&) = delete;

  // Thread-safe; must not be called from a FUSE request of this mount.
  //
  // Detaches the mount (lazy unmount), waits up to options.unmount_grace for its users to
  // let go, then aborts the connection if they have not, and stops the loop. Idempotent.
  absl::Status Unmount();
  // OK while the mount is alive: mounted at its path and its loop running. Unavailable
  // otherwise (unmounted from outside, connection aborted, loop failed). Never blocks on the
  // filesystem itself.
  absl::Status Check() const;

  const std::string& mountpoint() const { return mountpoint_; }
  const LayerView& view() const { return view_; }
  LayerCache& cache() const { return *cache_; }
  LayerFsStats stats() const;
  // True once the kernel took passthrough (INIT) and until a backing file was refused.
  bool passthrough_active() const { return passthrough_ != nullptr && passthrough_->active(); }

 private:
  friend struct FuseOps;
  LayerFs(std::shared_ptr<const SeekableLayer> layer, std::shared_ptr<LayerCache> cache,
          std::string mountpoint, const LayerFsOptions& options);
  void RunLoop();

  const std::shared_ptr<const SeekableLayer> layer_;
  const std::shared_ptr<LayerCache> cache_;
  const std::string mountpoint_;  // absolute, canonical
  const LayerFsOptions options_;
  const LayerView view_;
  fuse_session* session_ = nullptr;  // owned; destroyed after the loop ends
  std::thread loop_;
  absl::Notification loop_done_;
  dev_t dev_ = 0;     // the mount's st_dev (names the fuse connection); set before the loop
  std::atomic<bool> no_open_{false}, no_opendir_{false};  // the kernel can skip opens
  // With passthrough_min_bytes > 0: the session's custom I/O, and the open tracking (used
  // from INIT on if the kernel offered passthrough: `passthrough_used_`).
  PassthroughWire wire_;
  std::unique_ptr<Passthrough> passthrough_;
  std::atomic<bool> passthrough_used_{false};

  absl::Mutex unmount_mu_;
  bool unmounted_ ABSL_GUARDED_BY(unmount_mu_) = false;

  struct Counters {
    std::atomic<uint64_t> lookups{0}, negative_lookups{0}, reads{0}, read_bytes{0},
        read_errors{0}, readdirs{0}, getattrs{0}, xattr_calls{0};
  };
  mutable Counters counters_;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_FUSEFS_LAYER_FS_H_

// FUSE passthrough for LayerFs (docs/fusefs.md, "Passthrough"): reads of a large regular file
// whose chunks are all cached go from the kernel straight to a per-file copy in the cache
// (LayerCache::WriteFileCopy), with no request to the daemon, at local-disk speed.
//
// libfuse 3.14 cannot negotiate passthrough (its capability words are 32-bit), so
// PassthroughWire sits under it as its custom I/O (fuse_session_custom_io): it sees the INIT
// request (did the kernel offer passthrough?), and patches two kinds of replies on their way
// out: INIT (accept passthrough, max_stack_depth 1) and the OPEN replies an Open handler marks
// with ScopedOpenBackingId (FOPEN_PASSTHROUGH + the backing id). Internal to fusefs/.
//
// The cost: a mount that accepts passthrough has stack depth 1, so the container's overlay
// over it is at the kernel's limit (2) and an overlay nested on that one (buildkit, podman,
// docker inside the container) fails with EINVAL. passthrough_min_bytes = 0 avoids it.
#ifndef LAZYSNAP_FUSEFS_PASSTHROUGH_H_
#define LAZYSNAP_FUSEFS_PASSTHROUGH_H_

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cache/layer_cache.h"
#include "fusefs/layer_view.h"

namespace lazysnap {

// Whether a filesystem of statfs(2) type `f_type` is itself stacked (overlayfs, FUSE,
// ecryptfs): the kernel refuses backing files on it (ELOOP) once the mount's stack depth is 1,
// so a cache there must not accept passthrough at all.
bool IsStackedFsType(int64_t f_type);

// The message hooks of one session. Thread-safe; lives as long as the session.
class PassthroughWire {
 public:
  // Every message read from /dev/fuse: remembers an INIT request and whether it offered
  // passthrough.
  void NoteRequest(const void* buf, size_t len);
  // Whether the INIT request offered passthrough (meaningful from the init callback on).
  bool offered() const { return offered_.load(); }
  // Makes the INIT reply accept passthrough. Call from the init callback, before its reply.
  void Accept() { accept_.store(true); }
  // Patches in place, if it is one, the INIT reply (when accepted) or an OPEN reply given a
  // backing id > 0 (from ScopedOpenBackingId). `iov` is the reply as libfuse writes it:
  // header then arguments. Returns true if it patched something.
  bool PatchReply(struct iovec* iov, int count, int32_t open_backing_id);

  // The custom I/O's read and writev (fuse_ops.cc passes them to libfuse): the system calls
  // with NoteRequest / PatchReply (and ScopedOpenBackingId::Current()) applied.
  ssize_t Read(int fd, void* buf, size_t len);
  ssize_t Writev(int fd, struct iovec* iov, int count);

 private:
  std::atomic<bool> offered_{false}, accept_{false};
  std::atomic<uint64_t> init_unique_{0};
};

// Marks the OPEN reply sent by this thread within its scope (fuse_reply_open writes
// synchronously on the calling thread) for passthrough with `backing_id`.
class ScopedOpenBackingId {
 public:
  explicit ScopedOpenBackingId(int32_t backing_id);
  ~ScopedOpenBackingId();
  ScopedOpenBackingId(const ScopedOpenBackingId&) = delete;
  ScopedOpenBackingId& operator=(const ScopedOpenBackingId&) = delete;
  // The id marked on this thread, 0 if none.
  static int32_t Current();
};

// Which opens of a mount use passthrough, and their backing files. The kernel puts an inode
// in cached mode while any open of it is not passthrough, and fails (EIO to the opener,
// fuse_file_io_open) a passthrough open then, or a normal open while passthrough ones are
// open, or two different backing files: so this tracks every open handle of the large files
// under one lock, and keeps each inode's backing id until unmount. A copy that fails for
// want of room or an I/O error is not tried again for that inode for kCopyRetryDelay.
// Thread-safe.
class Passthrough {
 public:
  // `cache` and `view` must outlive it. Files smaller than `min_bytes` (> 0) are left alone.
  Passthrough(LayerCache* cache, const LayerView* view, uint64_t min_bytes,
              std::string mountpoint);
  // Stops the copier (a copy in progress stops within one copy piece; its temp file goes).
  ~Passthrough();
  Passthrough(const Passthrough&) = delete;
  Passthrough& operator=(const Passthrough&) = delete;

  // After INIT: opens may use passthrough, registering backing files on `session_fd`
  // (/dev/fuse of the mount). Starts the background copier.
  void Start(int session_fd);
  bool active() const { return active_.load(); }
  // Whether Open/Release must be called for `file`.
  bool Tracks(const Entry& file) const;

  // An open of regular file `ino` (Tracks() true). Returns the backing id to reply with (> 0)
  // or 0 for a normal open. Each call must be matched by one Release(ino, id > 0). A normal
  // open, its release, and NoteReadToEnd queue the copy of a file that has none (the copier
  // makes it if every chunk is present by then).
  int32_t Open(Ino ino);
  void Release(Ino ino, bool passthrough);
  // A read of `ino` reached its end: queue its copy if all its chunks may be present.
  void NoteReadToEnd(Ino ino);
  // Stops the copier, interrupting a copy in progress; later opens are normal. Idempotent.
  void Stop();

  uint64_t opens() const { return opens_.load(std::memory_order_relaxed); }
  uint64_t copies() const { return copies_.load(std::memory_order_relaxed); }
  // Copies that failed (no room, I/O error), each holding its inode back for kCopyRetryDelay.
  uint64_t copy_failures() const { return copy_failures_.load(std::memory_order_relaxed); }
  static constexpr absl::Duration kCopyRetryDelay = absl::Seconds(60);

 private:
  enum class CopyState : uint8_t { kUnknown, kQueued, kReady, kNone, kFailed };
  struct Inode {
    uint32_t normal_opens = 0, passthrough_opens = 0;
    int32_t backing_id = 0;  // registered with the kernel; kept until unmount
    CopyState copy = CopyState::kUnknown;
    absl::Time retry_after;  // kFailed: no copy is queued before then
  };
  // Registers the copy of `ino` as its backing file; 0 if there is none or it fails.
  int32_t OpenBacking(Ino ino, Inode& inode) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Queue(Ino ino, Inode& inode) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CopyLoop();

  LayerCache* const cache_;
  const LayerView* const view_;
  const uint64_t min_bytes_;
  const std::string mountpoint_;
  std::atomic<bool> active_{false};
  std::atomic<bool> stop_copy_{false};  // set by Stop: the copy in progress gives up
  std::atomic<uint64_t> opens_{0}, copies_{0}, copy_failures_{0};

  absl::Mutex mu_;
  int session_fd_ ABSL_GUARDED_BY(mu_) = -1;  // set by Start
  absl::CondVar queued_;
  std::unordered_map<Ino, Inode> inodes_ ABSL_GUARDED_BY(mu_);
  std::deque<Ino> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread copier_;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_FUSEFS_PASSTHROUGH_H_

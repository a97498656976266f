#include "fusefs/passthrough.h"

#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "base/log.h"
#include "base/strings.h"
#include "fusefs/passthrough_abi.h"

namespace lazysnap {
namespace {

thread_local int32_t open_backing_id = 0;

}  // namespace

bool IsStackedFsType(int64_t f_type) {
  constexpr int64_t kFuse = 0x65735546;  // FUSE_SUPER_MAGIC (not in linux/magic.h)
  return f_type == OVERLAYFS_SUPER_MAGIC || f_type == kFuse || f_type == ECRYPTFS_SUPER_MAGIC;
}

// ---- PassthroughWire ---------------------------------------------------------------------------

void PassthroughWire::NoteRequest(const void* buf, size_t len) {
  fuse_abi::InHeader h;
  if (len < sizeof(h) + 4 * sizeof(uint32_t)) return;  // INIT carries at least 4 words
  std::memcpy(&h, buf, sizeof(h));
  if (h.opcode != fuse_abi::kOpInit) return;
  fuse_abi::InitIn in = {};
  std::memcpy(&in, static_cast<const char*>(buf) + sizeof(h),
              std::min(sizeof(in), len - sizeof(h)));
  bool ext = (in.flags & fuse_abi::kInitExt) != 0 &&
             len >= sizeof(h) + offsetof(fuse_abi::InitIn, flags2) + sizeof(uint32_t);
  init_unique_.store(h.unique);
  offered_.store(ext && (in.flags2 & fuse_abi::kPassthroughFlags2) != 0);
}

bool PassthroughWire::PatchReply(struct iovec* iov, int count, int32_t open_backing_id) {
  if (count != 2 || iov[0].iov_len != sizeof(fuse_abi::OutHeader)) return false;
  fuse_abi::OutHeader h;
  std::memcpy(&h, iov[0].iov_base, sizeof(h));
  if (h.error != 0) return false;
  if (iov[1].iov_len == sizeof(fuse_abi::InitOut) && accept_.load() && offered_.load() &&
      h.unique == init_unique_.load()) {
    fuse_abi::InitOut out;
    std::memcpy(&out, iov[1].iov_base, sizeof(out));
    if (out.flags & fuse_abi::kWritebackCache) return false;  // the kernel would refuse
    out.flags |= fuse_abi::kInitExt;
    out.flags2 |= fuse_abi::kPassthroughFlags2;
    // The FUSE mount is then one level deep, so overlayfs over it (depth 2) stays within
    // the kernel's FILESYSTEM_MAX_STACK_DEPTH; backing files must be on a non-stacked fs.
    out.max_stack_depth = 1;
    std::memcpy(iov[1].iov_base, &out, sizeof(out));
    return true;
  }
  if (iov[1].iov_len == sizeof(fuse_abi::OpenOut) && open_backing_id > 0) {
    fuse_abi::OpenOut out;
    std::memcpy(&out, iov[1].iov_base, sizeof(out));
    out.open_flags = (out.open_flags | fuse_abi::kOpenPassthrough) & fuse_abi::kOpenPassthroughMask;
    out.backing_id = open_backing_id;
    std::memcpy(iov[1].iov_base, &out, sizeof(out));
    return true;
  }
  return false;
}

ssize_t PassthroughWire::Read(int fd, void* buf, size_t len) {
  ssize_t n = ::read(fd, buf, len);
  if (n > 0) NoteRequest(buf, static_cast<size_t>(n));
  return n;
}

ssize_t PassthroughWire::Writev(int fd, struct iovec* iov, int count) {
  PatchReply(iov, count, open_backing_id);
  return ::writev(fd, iov, count);
}

ScopedOpenBackingId::ScopedOpenBackingId(int32_t backing_id) { open_backing_id = backing_id; }
ScopedOpenBackingId::~ScopedOpenBackingId() { open_backing_id = 0; }
int32_t ScopedOpenBackingId::Current() { return open_backing_id; }

// ---- Passthrough -------------------------------------------------------------------------------

Passthrough::Passthrough(LayerCache* cache, const LayerView* view, uint64_t min_bytes,
                         std::string mountpoint)
    : cache_(cache), view_(view), min_bytes_(min_bytes), mountpoint_(std::move(mountpoint)) {}

Passthrough::~Passthrough() { Stop(); }

void Passthrough::Start(int session_fd) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || copier_.joinable()) return;
  session_fd_ = session_fd;
  copier_ = std::thread([this] { CopyLoop(); });
  active_.store(true);
}

void Passthrough::Stop() {
  stop_copy_.store(true);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    queued_.SignalAll();
  }
  active_.store(false);
  if (copier_.joinable()) copier_.join();
}

bool Passthrough::Tracks(const Entry& file) const {
  return S_ISREG(file.mode) && file.size >= min_bytes_;
}

int32_t Passthrough::OpenBacking(Ino ino, Inode& inode) {
  const Entry& file = view_->DataEntry(ino);
  absl::StatusOr<UniqueFd> fd = cache_->OpenFileCopy(file);
  if (!fd.ok()) {
    if (inode.copy == CopyState::kReady) inode.copy = CopyState::kNone;
    return 0;
  }
  inode.copy = CopyState::kReady;
  fuse_abi::BackingMap map = {};
  map.fd = fd->get();
  int r = ::ioctl(session_fd_, fuse_abi::kDevIocBackingOpen, &map);
  if (r <= 0) {
    // E.g. ELOOP: the cache is itself on a stacked filesystem (overlayfs, FUSE).
    LZ_LOG(kWarning, "fusefs ", mountpoint_, ": FUSE passthrough unavailable (backing open of ",
           cache_->FileCopyPath(file), ": ", std::strerror(errno), "); reads go through the daemon");
    active_.store(false);
    return 0;
  }
  return r;
}

void Passthrough::Queue(Ino ino, Inode& inode) {
  if (stopping_ || inode.copy == CopyState::kQueued || inode.copy == CopyState::kReady) return;
  if (inode.copy == CopyState::kFailed && absl::Now() < inode.retry_after) return;
  inode.copy = CopyState::kQueued;
  queue_.push_back(ino);
  queued_.Signal();
}

int32_t Passthrough::Open(Ino ino) {
  absl::MutexLock lock(&mu_);
  Inode& n = inodes_[ino];
  if (n.passthrough_opens > 0) {  // the kernel demands the same for every open now
    n.passthrough_opens++;
    opens_.fetch_add(1, std::memory_order_relaxed);
    return n.backing_id;
  }
  // While reads are recorded (an access trace), they must reach the daemon.
  std::shared_ptr<AccessLog> log = cache_->access_log();
  bool recording = log != nullptr && !log->stopped();
  if (active_.load() && n.normal_opens == 0 && !recording) {
    if (n.backing_id == 0 && n.copy != CopyState::kQueued) n.backing_id = OpenBacking(ino, n);
    if (n.backing_id > 0) {
      n.passthrough_opens++;
      opens_.fetch_add(1, std::memory_order_relaxed);
      return n.backing_id;
    }
  }
  n.normal_opens++;
  if (active_.load()) Queue(ino, n);
  return 0;
}

void Passthrough::Release(Ino ino, bool passthrough) {
  absl::MutexLock lock(&mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  uint32_t& count = passthrough ? it->second.passthrough_opens : it->second.normal_opens;
  if (count > 0) count--;
  // Its reads are over (those of readahead too, which may finish out of order, after the
  // read of the file's end): maybe it is all cached now.
  if (!passthrough && active_.load()) Queue(ino, it->second);
}

void Passthrough::NoteReadToEnd(Ino ino) {
  if (!active_.load()) return;
  absl::MutexLock lock(&mu_);
  Queue(ino, inodes_[ino]);
}

void Passthrough::CopyLoop() {
  for (;;) {
    Ino ino;
    {
      absl::MutexLock lock(&mu_);
      while (!stopping_ && queue_.empty()) queued_.Wait(&mu_);
      if (stopping_) return;
      ino = queue_.front();
      queue_.pop_front();
      Inode& n = inodes_[ino];
      if (n.copy != CopyState::kQueued) continue;  // settled since it was queued
      n.copy = CopyState::kNone;  // a trigger from now on queues it again
    }
    const Entry& file = view_->DataEntry(ino);
    absl::Status s = cache_->OpenFileCopy(file).status();  // left by an earlier mount?
    if (!s.ok()) {
      s = cache_->WriteFileCopy(file, &stop_copy_);
      if (s.ok()) copies_.fetch_add(1, std::memory_order_relaxed);
    }
    // Not fully cached yet (the usual case) or stopped: no failure.
    bool failed = !s.ok() && !absl::IsFailedPrecondition(s) && !absl::IsCancelled(s);
    if (failed) {
      copy_failures_.fetch_add(1, std::memory_order_relaxed);
      LZ_LOG(kWarning, "fusefs ", mountpoint_, ": copy for passthrough: ", s.ToString(),
             " (not tried again for this file for ", absl::FormatDuration(kCopyRetryDelay), ")");
    }
    absl::MutexLock lock(&mu_);
    Inode& n = inodes_[ino];
    if (s.ok()) {
      n.copy = CopyState::kReady;
    } else if (failed) {
      n.copy = CopyState::kFailed;
      n.retry_after = absl::Now() + kCopyRetryDelay;
    }
  }
}

}  // namespace lazysnap

#include "fusefs/layer_fs.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <vector>

#include "base/errors.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "fusefs/fuse_ops.h"
#include "fusefs/mountinfo.h"

namespace lazysnap {
namespace {

// A mount option value: commas and backslashes would split or escape the option list.
std::string OptionValue(std::string_view s) {
  std::string out;
  for (char c : s) out += (c == ',' || c == '\\' || c == ' ') ? '_' : c;
  return out;
}

constexpr char kFuseCtl[] = "/sys/fs/fuse/connections";

// Writes `data` to an existing (sysfs) file in place.
absl::Status WriteInPlace(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", path));
  ssize_t n = ::write(fd, data.data(), data.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(data.size())) return ErrnoToStatus(err, StrCat("write ", path));
  return absl::OkStatus();
}

// Tells the kernel to fail every pending and future request of fuse connection `dev`. Mounts
// the fuse control filesystem first if the system has not (systemd does; containers may not).
absl::Status AbortConnection(dev_t dev) {
  std::string path = StrCat(kFuseCtl, "/",
                            (static_cast<uint64_t>(major(dev)) << 20) | minor(dev), "/abort");
  absl::Status s = WriteInPlace(path, "1");
  if (absl::IsNotFound(s) && ::mount("fusectl", kFuseCtl, "fusectl", 0, nullptr) == 0) {
    LZ_LOG(kInfo, "fusefs: mounted fusectl at ", kFuseCtl);
    s = WriteInPlace(path, "1");
  }
  return s;
}

// The largest read size, at most `max_read`, whose replies libfuse can splice. libfuse
// splices a reply from the cache file only through a pipe of the reply plus two pages
// (header, slack) and otherwise falls back to pread + write: a second copy of every byte in
// the daemon (~10 % more of its CPU on a sequential read; docs/fusefs.md). Growing a pipe past
// /proc/sys/fs/pipe-max-size (1 MiB by default; the kernel rounds pipe sizes up to a power
// of two) needs CAP_SYS_RESOURCE in the initial user namespace, which containers lack: there
// 1 MiB requests are never spliced. So: halve the size until such a pipe can be had, as
// libfuse will try, down to the kernel's own default of 128 KiB.
uint32_t SpliceableReadSize(uint32_t max_read) {
  constexpr uint32_t kFloor = 128 << 10;
  const long page = ::sysconf(_SC_PAGESIZE);
  int p[2];
  if (page <= 0 || ::pipe2(p, O_CLOEXEC) != 0) return max_read;
  uint32_t size = max_read;
  while (size > kFloor && ::fcntl(p[0], F_SETPIPE_SZ, static_cast<long>(size) + 2 * page) < 0) {
    size = std::max(kFloor, size / 2);
  }
  ::close(p[0]);
  ::close(p[1]);
  return size;
}

}  // namespace

LayerFs::LayerFs(std::shared_ptr<const SeekableLayer> layer, std::shared_ptr<LayerCache> cache,
                 std::string mountpoint, const LayerFsOptions& options)
    : layer_(std::move(layer)),
      cache_(std::move(cache)),
      mountpoint_(std::move(mountpoint)),
      options_(options),
      view_(&layer_->index, options.opaque_xattr) {}

absl::StatusOr<std::unique_ptr<LayerFs>> LayerFs::Mount(std::shared_ptr<const SeekableLayer> layer,
                                                        std::shared_ptr<LayerCache> cache,
                                                        const std::string& mountpoint,
                                                        const LayerFsOptions& options) {
  if (layer == nullptr || cache == nullptr) {
    return absl::InvalidArgumentError("LayerFs::Mount needs a layer and its cache");
  }
  char resolved[PATH_MAX];
  if (::realpath(mountpoint.c_str(), resolved) == nullptr) {
    return ErrnoToStatus(errno, StrCat("mountpoint ", mountpoint));
  }
  struct stat st;
  if (::stat(resolved, &st) != 0) return ErrnoToStatus(errno, StrCat("stat ", resolved));
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(StrCat("mountpoint ", resolved, " is not a directory"));
  }
  LayerFsOptions effective = options;
  effective.max_read_bytes = SpliceableReadSize(options.max_read_bytes);
  if (effective.max_read_bytes != options.max_read_bytes) {
    LZ_LOG(kInfo, "fusefs: reads of at most ", effective.max_read_bytes, " bytes, not ",
           options.max_read_bytes, ": larger replies would not fit a splice pipe");
  }
  std::unique_ptr<LayerFs> fs(
      new LayerFs(std::move(layer), std::move(cache), resolved, effective));

  std::string opts = StrCat("ro,subtype=lazysnap,fsname=", OptionValue(options.fsname),
                            ",max_read=", effective.max_read_bytes);
  if (options.allow_other) opts += ",allow_other";
  if (options.default_permissions) opts += ",default_permissions";
  std::vector<std::string> argv_strings = {"lazysnap", "-o", opts};
  if (options.debug) argv_strings.push_back("-d");
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fs->session_ = fuse_session_new(&args, &LayerFsOps(), sizeof(fuse_lowlevel_ops), fs.get());
  fuse_opt_free_args(&args);
  if (fs->session_ == nullptr) {
    return absl::InternalError(StrCat("fuse_session_new failed (options '", opts, "')"));
  }
  if (fuse_session_mount(fs->session_, fs->mountpoint_.c_str()) != 0) {
    fuse_session_destroy(fs->session_);
    fs->session_ = nullptr;
    return absl::UnavailableError(
        StrCat("mounting FUSE at ", fs->mountpoint_, " failed (libfuse logged why)"));
  }
  if (options.passthrough_min_bytes > 0) {
    fs->passthrough_ = std::make_unique<Passthrough>(fs->cache_.get(), &fs->view_,
                                                     options.passthrough_min_bytes,
                                                     fs->mountpoint_);
    if (int r = fuse_session_custom_io(fs->session_, &LayerFsIo(), fuse_session_fd(fs->session_));
        r != 0) {
      LZ_LOG(kWarning, "fusefs: no custom session I/O (", r, "): no passthrough");
      fs->passthrough_.reset();
    }
  }
  absl::StatusOr<MountInfo> top = TopMountAt(fs->mountpoint_);
  if (!top.ok() || top->fstype != "fuse.lazysnap") {
    LZ_LOG(kWarning, "fusefs: mounted ", fs->mountpoint_, " but cannot find it in mountinfo");
  } else {
    fs->dev_ = top->dev;
  }
  fs->loop_ = std::thread([raw = fs.get()] { raw->RunLoop(); });
  if (options.read_ahead_kb > 0 && fs->dev_ != 0) {
    // The kernel caps FUSE readahead at the bdi's setting (128 KiB by default) when it
    // handles INIT, whatever max_readahead says; raise it after INIT (a stat of the root waits
    // for it).
    struct stat root;
    ::stat(fs->mountpoint_.c_str(), &root);
    std::string path = StrCat("/sys/class/bdi/", major(fs->dev_), ":", minor(fs->dev_),
                              "/read_ahead_kb");
    if (absl::Status s = WriteInPlace(path, StrCat(options.read_ahead_kb)); !s.ok()) {
      LZ_LOG(kDebug, "fusefs: ", s.ToString());
    }
  }
  LZ_LOG(kInfo, "fusefs: mounted ", options.fsname, " at ", fs->mountpoint_, " (",
         fs->view_.index().size(), " entries)");
  return fs;
}

void LayerFs::RunLoop() {
  // Signals are for the process's own threads to handle; the loop's workers inherit this.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, static_cast<unsigned>(options_.max_threads));
  fuse_loop_cfg_set_idle_threads(cfg, static_cast<unsigned>(options_.max_idle_threads));
  fuse_loop_cfg_set_clone_fd(cfg, 0);
  int r = fuse_session_loop_mt(session_, cfg);
  fuse_loop_cfg_destroy(cfg);
  if (r != 0) LZ_LOG(kWarning, "fusefs ", mountpoint_, ": session loop ended with ", r);
  loop_done_.Notify();
}

absl::Status LayerFs::Unmount() {
  absl::MutexLock lock(&unmount_mu_);
  if (unmounted_ || session_ == nullptr) return absl::OkStatus();
  unmounted_ = true;
  absl::Status status;
  if (!loop_done_.HasBeenNotified()) {
    // Detach only if the mount at our path is ours: never unmount what was mounted over it.
    absl::StatusOr<MountInfo> top = TopMountAt(mountpoint_);
    if (top.ok() && dev_ != 0 && top->dev == dev_) {
      if (::umount2(mountpoint_.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
        status = ErrnoToStatus(errno, StrCat("umount ", mountpoint_));
      }
    }
    // Without users the connection ends with the detach and the loop sees ENODEV.
    if (!loop_done_.WaitForNotificationWithTimeout(options_.unmount_grace)) {
      LZ_LOG(kInfo, "fusefs ", mountpoint_, ": still in use after unmount; aborting it");
      absl::Status abort = dev_ != 0 ? AbortConnection(dev_)
                                     : absl::FailedPreconditionError("connection unknown");
      if (!abort.ok()) LZ_LOG(kWarning, "fusefs ", mountpoint_, ": ", abort.ToString());
      while (!loop_done_.WaitForNotificationWithTimeout(absl::Seconds(10))) {
        LZ_LOG(kWarning, "fusefs ", mountpoint_, ": waiting for the session to end");
      }
    }
  }
  loop_.join();
  if (passthrough_ != nullptr) passthrough_->Stop();
  fuse_session_destroy(session_);  // closes /dev/fuse; never unmounts (done above)
  session_ = nullptr;
  LZ_LOG(kInfo, "fusefs: unmounted ", mountpoint_);
  return status;
}

absl::Status LayerFs::Check() const {
  if (loop_done_.HasBeenNotified()) {
    return absl::UnavailableError(StrCat("FUSE session of ", mountpoint_, " has ended"));
  }
  ASSIGN_OR_RETURN(std::vector<MountInfo> mounts, ReadMountInfo());
  for (const MountInfo& m : mounts) {
    if (m.dev == dev_ && m.mountpoint == mountpoint_) return absl::OkStatus();
  }
  return absl::UnavailableError(StrCat(mountpoint_, " is no longer mounted"));
}

LayerFsStats LayerFs::stats() const {
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  LayerFsStats s;
  s.lookups = get(counters_.lookups);
  s.negative_lookups = get(counters_.negative_lookups);
  s.reads = get(counters_.reads);
  s.read_bytes = get(counters_.read_bytes);
  s.read_errors = get(counters_.read_errors);
  s.readdirs = get(counters_.readdirs);
  s.getattrs = get(counters_.getattrs);
  s.xattr_calls = get(counters_.xattr_calls);
  if (passthrough_ != nullptr) {
    s.passthrough_opens = passthrough_->opens();
    s.passthrough_copies = passthrough_->copies();
    s.passthrough_copy_failures = passthrough_->copy_failures();
  }
  return s;
}

LayerFs::~LayerFs() {
  absl::Status s = Unmount();
  if (!s.ok()) LZ_LOG(kWarning, "fusefs: unmounting ", mountpoint_, ": ", s.ToString());
}

}  // namespace lazysnap

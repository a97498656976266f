#include "image/workload.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/fanotify.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <grp.h>
#include <unordered_set>

#include "base/errors.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "image/workload_user.h"

namespace lazysnap {
namespace {

constexpr char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Detaches the bind mount of the root (and /proc, /dev, /sys below it) when the run ends.
class MountGuard {
 public:
  explicit MountGuard(std::string target) : target_(std::move(target)) {}
  ~MountGuard() {
    if (!target_.empty() && ::umount2(target_.c_str(), MNT_DETACH) != 0) {
      LZ_LOG(kWarning, "umount ", target_, ": ", std::strerror(errno));
    }
  }

 private:
  std::string target_;
};

absl::Status Mount(const char* src, const std::string& target, const char* type,
                   unsigned long flags) {
  if (::mount(src, target.c_str(), type, flags, nullptr) != 0) {
    return ErrnoToStatus(errno, StrCat("mount ", src, " on ", target));
  }
  return absl::OkStatus();
}

// Everything the child needs, allocated before the clone (the child calls only system calls).
struct ChildPlan {
  std::vector<std::string> candidates;  // executable paths to try, in order
  std::vector<std::string> argv_storage, env_storage;
  std::vector<char*> argv, envp;
  std::string proc, root, workdir;
  int out_fd = -1;
  bool set_user = false;  // drop to uid/gid/groups after chroot and chdir
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

ChildPlan Plan(const std::string& rootfs, const WorkloadOptions& o, const WorkloadUser& user,
               int out_fd) {
  ChildPlan p;
  p.argv_storage = o.argv;
  p.env_storage = o.env;
  if (!o.user.empty()) {
    p.set_user = true;
    p.uid = user.uid;
    p.gid = user.gid;
    p.groups.assign(user.groups.begin(), user.groups.end());
    bool has_home = std::any_of(o.env.begin(), o.env.end(),
                                [](const std::string& e) { return e.rfind("HOME=", 0) == 0; });
    if (!has_home && !user.home.empty()) p.env_storage.push_back(StrCat("HOME=", user.home));
  }
  for (auto& a : p.argv_storage) p.argv.push_back(a.data());
  p.argv.push_back(nullptr);
  for (auto& e : p.env_storage) p.envp.push_back(e.data());
  p.envp.push_back(nullptr);
  const std::string& cmd = o.argv[0];
  if (cmd.find('/') != std::string::npos) {
    p.candidates.push_back(cmd);
  } else {
    std::string path = kDefaultPath;
    for (const auto& e : o.env) {
      if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
    }
    size_t start = 0;
    while (start <= path.size()) {
      size_t end = path.find(':', start);
      if (end == std::string::npos) end = path.size();
      std::string dir = path.substr(start, end - start);
      p.candidates.push_back(StrCat(dir.empty() ? "." : dir, "/", cmd));
      start = end + 1;
    }
  }
  p.proc = rootfs + "/proc";
  p.root = rootfs;
  p.workdir = o.workdir.empty() ? "/" : o.workdir;
  p.out_fd = out_fd;
  return p;
}

void ChildFail(const char* what) {
  const char* err = std::strerror(errno);
  // Best effort: the message goes to the output pipe.
  (void)!::write(2, "lazysnap: workload: ", 20);
  (void)!::write(2, what, std::strlen(what));
  (void)!::write(2, ": ", 2);
  (void)!::write(2, err, std::strlen(err));
  (void)!::write(2, "\n", 1);
}

// Runs in the child (PID 1 of a new PID namespace): system calls only.
[[noreturn]] void RunChild(const ChildPlan& p) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null >= 0) ::dup2(null, 0);
  ::dup2(p.out_fd, 1);
  ::dup2(p.out_fd, 2);
  if (::mount("proc", p.proc.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    ChildFail("mount /proc");
    ::_exit(126);
  }
  if (::chroot(p.root.c_str()) != 0) {
    ChildFail("chroot");
    ::_exit(126);
  }
  if (::chdir(p.workdir.c_str()) != 0) {
    ChildFail(p.workdir.c_str());
    ::_exit(126);
  }
  if (p.set_user && (::setgroups(p.groups.size(), p.groups.data()) != 0 ||
                     ::setgid(p.gid) != 0 || ::setuid(p.uid) != 0)) {
    ChildFail("setting the user");
    ::_exit(126);
  }
  int err = ENOENT;
  for (const auto& c : p.candidates) {
    ::execve(c.c_str(), p.argv.data(), p.envp.data());
    if (errno != ENOENT) err = errno;
  }
  errno = err;
  ChildFail(p.argv[0]);
  ::_exit(err == ENOENT ? 127 : 126);
}

// Reads the queued fanotify events; records regular files below `prefix` ("ROOT/").
class Recorder {
 public:
  Recorder(int fan, std::string prefix) : fan_(fan), prefix_(std::move(prefix)) {}

  absl::Status Drain(WorkloadResult* r) {
    alignas(fanotify_event_metadata) char buf[64 << 10];
    while (true) {
      ssize_t n = ::read(fan_, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return absl::OkStatus();
      if (n < 0) return ErrnoToStatus(errno, "read fanotify");
      if (n == 0) return absl::OkStatus();
      auto* m = reinterpret_cast<fanotify_event_metadata*>(buf);
      for (; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
        ++r->events;
        if (m->mask & FAN_Q_OVERFLOW) r->overflow = true;
        if (m->fd < 0) continue;
        Record(m->fd, r);
        ::close(m->fd);
      }
    }
  }

 private:
  void Record(int fd, WorkloadResult* r) {
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
    char link[64];
    std::snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    char path[PATH_MAX + 1];
    ssize_t len = ::readlink(link, path, PATH_MAX);
    if (len <= 0) return;
    std::string_view p(path, static_cast<size_t>(len));
    if (p.size() <= prefix_.size() || p.substr(0, prefix_.size()) != prefix_) return;
    if (p.size() > 10 && p.substr(p.size() - 10) == " (deleted)") return;
    std::string rel(p.substr(prefix_.size()));
    if (seen_.insert(rel).second) r->files.push_back(std::move(rel));
  }

  int fan_;
  std::string prefix_;
  std::unordered_set<std::string> seen_;
};

// Copies the workload's output and looks for `needle` across reads.
class OutputWatch {
 public:
  OutputWatch(int out_fd, std::string needle) : out_fd_(out_fd), needle_(std::move(needle)) {}
  // Reads what is there; false at EOF.
  bool Pump(int fd, bool* seen) {
    char buf[16 << 10];
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) return errno == EINTR || errno == EAGAIN;
    if (n == 0) return false;
    if (out_fd_ >= 0) (void)!::write(out_fd_, buf, static_cast<size_t>(n));
    if (!needle_.empty() && !*seen) {
      window_.append(buf, static_cast<size_t>(n));
      if (window_.find(needle_) != std::string::npos) {
        *seen = true;
      } else if (window_.size() >= needle_.size()) {
        window_.erase(0, window_.size() - needle_.size() + 1);
      }
    }
    return true;
  }

 private:
  int out_fd_;
  std::string needle_;
  std::string window_;
};

}  // namespace

absl::Status EnterPrivateMountNamespace() {
  if (::unshare(CLONE_NEWNS) != 0) return ErrnoToStatus(errno, "unshare(CLONE_NEWNS)");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return ErrnoToStatus(errno, "making / private");
  }
  return absl::OkStatus();
}

absl::StatusOr<WorkloadResult> RunRecordedWorkload(const std::string& rootfs_arg,
                                                   const WorkloadOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("no workload command");
  std::error_code ec;
  std::string rootfs = std::filesystem::canonical(rootfs_arg, ec).string();
  if (ec) return absl::NotFoundError(StrCat(rootfs_arg, ": ", ec.message()));
  ASSIGN_OR_RETURN(WorkloadUser user, ResolveWorkloadUserInRoot(rootfs, options.user));
  for (const char* d : {"proc", "dev", "sys"}) {
    std::string p = StrCat(rootfs, "/", d);
    struct stat st;
    if (::lstat(p.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) ::unlink(p.c_str());
    if (::mkdir(p.c_str(), 0555) != 0 && errno != EEXIST) return ErrnoToStatus(errno, p);
  }
  Fd fan(::fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK,
                         O_RDONLY | O_LARGEFILE | O_CLOEXEC | O_NONBLOCK));
  if (fan.get() < 0) return ErrnoToStatus(errno, "fanotify_init (needs CAP_SYS_ADMIN)");
  RETURN_IF_ERROR(Mount(rootfs.c_str(), rootfs, nullptr, MS_BIND));
  MountGuard guard(rootfs);
  RETURN_IF_ERROR(Mount("/dev", rootfs + "/dev", nullptr, MS_BIND | MS_REC));
  RETURN_IF_ERROR(Mount("/sys", rootfs + "/sys", nullptr, MS_BIND | MS_REC));
  // Only the root's own mount: /proc, /dev and /sys below are other mounts.
  if (::fanotify_mark(fan.get(), FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN | FAN_OPEN_EXEC, AT_FDCWD,
                      rootfs.c_str()) != 0) {
    return ErrnoToStatus(errno, StrCat("fanotify_mark ", rootfs));
  }
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  Fd out_r(pipefd[0]), out_w(pipefd[1]);
  ChildPlan plan = Plan(rootfs, options, user, out_w.get());

  // A raw clone (no stack: fork semantics) so that the child is PID 1 of a new PID namespace.
  long pid = ::syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid < 0) return ErrnoToStatus(errno, "clone(CLONE_NEWPID)");
  if (pid == 0) RunChild(plan);
  out_w.Reset();
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0)));

  WorkloadResult result;
  Recorder recorder(fan.get(), rootfs + "/");
  OutputWatch watch(options.output_fd, options.wait_for);
  const absl::Time deadline = absl::Now() + options.timeout;
  bool exited = false, out_open = true, stopped = false;
  absl::Status status;
  while (!exited || out_open) {
    pollfd fds[3] = {{fan.get(), POLLIN, 0}, {out_r.get(), POLLIN, 0}, {pidfd.get(), POLLIN, 0}};
    int timeout_ms = 100;
    if (!stopped && options.timeout != absl::InfiniteDuration()) {
      absl::Duration left = deadline - absl::Now();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(left), 0, 100));
    }
    fds[1].fd = out_open ? out_r.get() : -1;
    fds[2].fd = exited ? -1 : pidfd.get();
    if (::poll(fds, 3, timeout_ms) < 0 && errno != EINTR) {
      status = ErrnoToStatus(errno, "poll");
      break;
    }
    if (!stopped) {
      status = recorder.Drain(&result);
      if (!status.ok()) break;
    }
    if (out_open && (fds[1].revents & (POLLIN | POLLHUP))) {
      out_open = watch.Pump(out_r.get(), &result.saw_wait_for);
    }
    if (!exited && (pidfd.get() < 0 || (fds[2].revents & POLLIN))) {
      int ws;
      pid_t w = ::waitpid(static_cast<pid_t>(pid), &ws, pidfd.get() < 0 ? WNOHANG : 0);
      if (w == static_cast<pid_t>(pid)) {
        exited = true;
        if (WIFEXITED(ws)) result.exit_code = WEXITSTATUS(ws);
        if (WIFSIGNALED(ws)) result.signal = WTERMSIG(ws);
        if (!stopped) status = recorder.Drain(&result);  // what it opened before exiting
        stopped = true;
      }
    }
    if (!stopped && result.saw_wait_for) {
      stopped = true;
      ::kill(static_cast<pid_t>(pid), SIGKILL);
    }
    if (!stopped && options.timeout != absl::InfiniteDuration() && absl::Now() >= deadline) {
      result.timed_out = true;
      stopped = true;
      ::kill(static_cast<pid_t>(pid), SIGKILL);
    }
  }
  if (!exited) {
    ::kill(static_cast<pid_t>(pid), SIGKILL);
    ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
  }
  RETURN_IF_ERROR(status);
  return result;
}

}  // namespace lazysnap

#include "image/rootfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <optional>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/errors.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "format/tar.h"

namespace lazysnap {
namespace {

// A file descriptor closed on destruction.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

std::string Join(std::string_view dir, std::string_view name) {
  return dir.empty() ? std::string(name) : StrCat(dir, "/", name);
}

// `path` (relative, may be "") opened below `root` as if `root` were "/".
int OpenInRoot(int root, const std::string& path, int flags) {
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  return static_cast<int>(
      ::syscall(SYS_openat2, root, path.empty() ? "." : path.c_str(), &how, sizeof(how)));
}

bool NotPermitted(int err) { return err == EPERM || err == ENOTSUP || err == EOPNOTSUPP; }

// The names in directory `fd` (not "." or "..").
absl::StatusOr<std::vector<std::string>> ListDir(int dirfd, const std::string& what) {
  int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, what);
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    int err = errno;
    ::close(fd);
    return ErrnoToStatus(err, what);
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(dir)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(dir);
  return names;
}

}  // namespace

// The state of one ApplyLayer call.
class RootfsBuilder::Layer {
 public:
  Layer(RootfsBuilder* b, TarReader* tar) : b_(b), tar_(tar) {}

  absl::Status Apply(const TarEntry& e) {
    ASSIGN_OR_RETURN(std::string path, CleanEntryName(e.name));
    ++b_->stats_.entries;
    size_t slash = path.rfind('/');
    std::string parent = slash == std::string::npos ? "" : path.substr(0, slash);
    std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    if (base.rfind(".wh.", 0) == 0) return Whiteout(parent, base);
    ASSIGN_OR_RETURN(Fd dir, OpenDir(parent, /*create=*/true));
    mine_.insert(path);
    if (path.empty()) {  // the root itself
      if (e.typeflag == '5') RETURN_IF_ERROR(SetDirMeta(dir.get(), "", e));
      return absl::OkStatus();
    }
    switch (e.typeflag) {
      case '5':
        return Directory(dir.get(), base, path, e);
      case '0':
        RETURN_IF_ERROR(Replace(dir.get(), base, path));
        return Regular(dir.get(), base, path, e);
      case '1':
        RETURN_IF_ERROR(Replace(dir.get(), base, path));
        return HardLink(dir.get(), base, path, e);
      case '2':
        RETURN_IF_ERROR(Replace(dir.get(), base, path));
        if (::symlinkat(e.linkname.c_str(), dir.get(), base.c_str()) != 0) {
          return ErrnoToStatus(errno, StrCat("symlink ", path));
        }
        return Meta(dir.get(), base, path, e, /*chmod=*/false);
      case '3':
      case '4':
      case '6': {
        RETURN_IF_ERROR(Replace(dir.get(), base, path));
        mode_t type = e.typeflag == '3' ? S_IFCHR : e.typeflag == '4' ? S_IFBLK : S_IFIFO;
        if (::mknodat(dir.get(), base.c_str(), type | 0600, makedev(e.devmajor, e.devminor)) != 0) {
          if (NotPermitted(errno)) {
            ++b_->stats_.skipped;
            return absl::OkStatus();
          }
          return ErrnoToStatus(errno, StrCat("mknod ", path));
        }
        return Meta(dir.get(), base, path, e, /*chmod=*/true);
      }
      default:
        ++b_->stats_.skipped;
        return absl::OkStatus();
    }
  }

  // Directory times last: creating entries inside changes them.
  absl::Status Finish() {
    for (const auto& [path, ts] : dir_times_) {
      Fd fd(OpenInRoot(b_->root_fd_, path, O_PATH | O_DIRECTORY | O_NOFOLLOW));
      if (!fd.ok()) continue;  // removed by a later entry
      if (::utimensat(fd.get(), "", ts.data(), AT_EMPTY_PATH) != 0) {
        return ErrnoToStatus(errno, StrCat("utimensat ", path));
      }
    }
    return absl::OkStatus();
  }

 private:
  static std::array<timespec, 2> Times(const TarEntry& e) {
    timespec t = {static_cast<time_t>(e.mtime_sec), static_cast<long>(e.mtime_nsec)};
    return {t, t};
  }

  // Directory `path` below the root, created (0755) with its parents when `create`.
  absl::StatusOr<Fd> OpenDir(const std::string& path, bool create) {
    Fd fd(OpenInRoot(b_->root_fd_, path, O_PATH | O_DIRECTORY));
    if (fd.ok() || errno != ENOENT || !create) {
      if (!fd.ok()) return ErrnoToStatus(errno, StrCat("open ", path.empty() ? "/" : path));
      return fd;
    }
    Fd cur(OpenInRoot(b_->root_fd_, "", O_PATH | O_DIRECTORY));
    std::string prefix;
    size_t start = 0;
    while (start <= path.size()) {
      size_t end = path.find('/', start);
      if (end == std::string::npos) end = path.size();
      std::string comp = path.substr(start, end - start);
      prefix = Join(prefix, comp);
      Fd next(OpenInRoot(b_->root_fd_, prefix, O_PATH | O_DIRECTORY));
      if (!next.ok() && errno == ENOENT) {
        if (::mkdirat(cur.get(), comp.c_str(), 0755) != 0 && errno != EEXIST) {
          return ErrnoToStatus(errno, StrCat("mkdir ", prefix));
        }
        next = Fd(OpenInRoot(b_->root_fd_, prefix, O_PATH | O_DIRECTORY));
      }
      if (!next.ok()) return ErrnoToStatus(errno, StrCat("open ", prefix));
      cur = std::move(next);
      start = end + 1;
    }
    return cur;
  }

  // Removes `name` in `dir`, recursively.
  absl::Status Remove(int dir, const std::string& name, const std::string& path) {
    struct stat st;
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return errno == ENOENT ? absl::OkStatus() : ErrnoToStatus(errno, StrCat("stat ", path));
    }
    if (S_ISDIR(st.st_mode)) {
      Fd sub(::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub.ok()) return ErrnoToStatus(errno, StrCat("open ", path));
      ASSIGN_OR_RETURN(auto names, ListDir(sub.get(), path));
      for (const auto& n : names) RETURN_IF_ERROR(Remove(sub.get(), n, Join(path, n)));
      if (::unlinkat(dir, name.c_str(), AT_REMOVEDIR) != 0) {
        return ErrnoToStatus(errno, StrCat("rmdir ", path));
      }
    } else if (::unlinkat(dir, name.c_str(), 0) != 0) {
      return ErrnoToStatus(errno, StrCat("unlink ", path));
    }
    b_->files_.erase(path);
    ++b_->stats_.removed;
    return absl::OkStatus();
  }

  // Makes room for a new non-directory entry.
  absl::Status Replace(int dir, const std::string& name, const std::string& path) {
    b_->files_.erase(path);
    return Remove(dir, name, path);
  }

  // Removes everything below `dir` that this layer did not put there.
  absl::Status RemoveLower(int dir, const std::string& path) {
    ASSIGN_OR_RETURN(auto names, ListDir(dir, path));
    for (const auto& n : names) {
      std::string child = Join(path, n);
      if (!mine_.count(child)) {
        RETURN_IF_ERROR(Remove(dir, n, child));
        continue;
      }
      Fd sub(::openat(dir, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (sub.ok()) RETURN_IF_ERROR(RemoveLower(sub.get(), child));
    }
    return absl::OkStatus();
  }

  absl::Status Whiteout(const std::string& parent, const std::string& base) {
    if (base.rfind(".wh..wh.", 0) == 0 && base != ".wh..wh..opq") return absl::OkStatus();
    Fd dir(OpenInRoot(b_->root_fd_, parent, O_RDONLY | O_DIRECTORY));
    if (!dir.ok()) {
      return errno == ENOENT || errno == ENOTDIR ? absl::OkStatus()
                                                 : ErrnoToStatus(errno, StrCat("open ", parent));
    }
    if (base == ".wh..wh..opq") return RemoveLower(dir.get(), parent);
    std::string name = base.substr(4);
    std::string path = Join(parent, name);
    if (name.empty() || name == "." || name == ".." || mine_.count(path)) return absl::OkStatus();
    return Remove(dir.get(), name, path);
  }

  absl::Status SetXattrs(int fd, const std::string& path, const TarEntry& e) {
    for (const auto& [k, v] : e.xattrs) {
      if (::fsetxattr(fd, k.c_str(), v.data(), v.size(), 0) != 0) {
        if (!NotPermitted(errno)) return ErrnoToStatus(errno, StrCat("setxattr ", k, " ", path));
        ++b_->stats_.skipped;
      }
    }
    return absl::OkStatus();
  }

  // Owner, then mode (chown clears setuid bits), then xattrs (chown clears capabilities).
  absl::Status SetFdMeta(int fd, const std::string& path, const TarEntry& e) {
    if (::fchown(fd, e.uid, e.gid) != 0) {
      if (!NotPermitted(errno)) return ErrnoToStatus(errno, StrCat("chown ", path));
      ++b_->stats_.skipped;
    }
    if (::fchmod(fd, e.mode & 07777) != 0) return ErrnoToStatus(errno, StrCat("chmod ", path));
    return SetXattrs(fd, path, e);
  }

  absl::Status SetDirMeta(int fd, const std::string& path, const TarEntry& e) {
    Fd d(::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d.ok()) return ErrnoToStatus(errno, StrCat("open ", path));
    RETURN_IF_ERROR(SetFdMeta(d.get(), path, e));
    dir_times_.emplace_back(path, Times(e));
    return absl::OkStatus();
  }

  absl::Status Directory(int dir, const std::string& name, const std::string& path,
                         const TarEntry& e) {
    struct stat st;
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) {
      RETURN_IF_ERROR(Replace(dir, name, path));
      if (::mkdirat(dir, name.c_str(), 0700) != 0) {
        return ErrnoToStatus(errno, StrCat("mkdir ", path));
      }
    }
    Fd d(::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!d.ok()) return ErrnoToStatus(errno, StrCat("open ", path));
    return SetDirMeta(d.get(), path, e);
  }

  absl::Status Regular(int dir, const std::string& name, const std::string& path,
                       const TarEntry& e) {
    Fd f(::openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!f.ok()) return ErrnoToStatus(errno, StrCat("create ", path));
    buf_.resize(1 << 20);
    while (true) {
      ASSIGN_OR_RETURN(size_t n, tar_->ReadData(absl::MakeSpan(buf_)));
      if (n == 0) break;
      for (size_t off = 0; off < n;) {
        ssize_t w = ::write(f.get(), buf_.data() + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return ErrnoToStatus(w < 0 ? errno : EIO, StrCat("write ", path));
        off += static_cast<size_t>(w);
      }
      b_->stats_.bytes += n;
    }
    RETURN_IF_ERROR(SetFdMeta(f.get(), path, e));
    auto ts = Times(e);
    if (::futimens(f.get(), ts.data()) != 0) return ErrnoToStatus(errno, StrCat("utimes ", path));
    ++b_->stats_.files;
    b_->files_.insert(path);
    return absl::OkStatus();
  }

  absl::Status HardLink(int dir, const std::string& name, const std::string& path,
                        const TarEntry& e) {
    ASSIGN_OR_RETURN(std::string target, CleanEntryName(e.linkname));
    size_t slash = target.rfind('/');
    std::string tparent = slash == std::string::npos ? "" : target.substr(0, slash);
    std::string tbase = slash == std::string::npos ? target : target.substr(slash + 1);
    ASSIGN_OR_RETURN(Fd tdir, OpenDir(tparent, /*create=*/false));
    if (target.empty() || ::linkat(tdir.get(), tbase.c_str(), dir, name.c_str(), 0) != 0) {
      return ErrnoToStatus(target.empty() ? EINVAL : errno,
                           StrCat("link ", path, " to ", e.linkname));
    }
    if (b_->files_.count(target)) b_->files_.insert(path);
    return absl::OkStatus();
  }

  // Owner, mode and times of a non-directory, non-regular entry, by name.
  absl::Status Meta(int dir, const std::string& name, const std::string& path, const TarEntry& e,
                    bool chmod) {
    if (::fchownat(dir, name.c_str(), e.uid, e.gid, AT_SYMLINK_NOFOLLOW) != 0) {
      if (!NotPermitted(errno)) return ErrnoToStatus(errno, StrCat("chown ", path));
      ++b_->stats_.skipped;
    }
    if (chmod && ::fchmodat(dir, name.c_str(), e.mode & 07777, 0) != 0) {
      return ErrnoToStatus(errno, StrCat("chmod ", path));
    }
    auto ts = Times(e);
    if (::utimensat(dir, name.c_str(), ts.data(), AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoToStatus(errno, StrCat("utimes ", path));
    }
    return absl::OkStatus();
  }

  RootfsBuilder* b_;
  TarReader* tar_;
  std::unordered_set<std::string> mine_;  // paths this layer wrote
  std::vector<std::pair<std::string, std::array<timespec, 2>>> dir_times_;
  std::vector<char> buf_;
};

RootfsBuilder::~RootfsBuilder() { ::close(root_fd_); }

absl::StatusOr<std::unique_ptr<RootfsBuilder>> RootfsBuilder::Open(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", dir));
  return std::unique_ptr<RootfsBuilder>(new RootfsBuilder(fd));
}

absl::Status RootfsBuilder::ApplyLayer(InputStream& tar) {
  TarReader reader(&tar);
  Layer layer(this, &reader);
  while (true) {
    ASSIGN_OR_RETURN(std::optional<TarEntry> e, reader.Next());
    if (!e) break;
    RETURN_IF_ERROR(layer.Apply(*e));
  }
  return layer.Finish();
}

namespace {

// Removes the contents of directory `fd` (device `dev`); false in `*crossed` if a mount was
// found below (left in place).
absl::Status RemoveContents(int fd, dev_t dev, const std::string& path, bool* crossed) {
  ASSIGN_OR_RETURN(auto names, ListDir(fd, path));
  for (const auto& n : names) {
    std::string child = StrCat(path, "/", n);
    struct statx stx;
    if (::statx(fd, n.c_str(), AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx) != 0) {
      return ErrnoToStatus(errno, StrCat("stat ", child));
    }
    if (S_ISDIR(stx.stx_mode)) {
      if ((stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0 ||
          makedev(stx.stx_dev_major, stx.stx_dev_minor) != dev) {
        *crossed = true;
        continue;
      }
      Fd sub(::openat(fd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub.ok()) return ErrnoToStatus(errno, StrCat("open ", child));
      RETURN_IF_ERROR(RemoveContents(sub.get(), dev, child, crossed));
      if (::unlinkat(fd, n.c_str(), AT_REMOVEDIR) != 0 && !*crossed) {
        return ErrnoToStatus(errno, StrCat("rmdir ", child));
      }
    } else if (::unlinkat(fd, n.c_str(), 0) != 0) {
      return ErrnoToStatus(errno, StrCat("unlink ", child));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RemoveTree(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.ok()) return errno == ENOENT ? absl::OkStatus() : ErrnoToStatus(errno, dir);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, dir);
  bool crossed = false;
  RETURN_IF_ERROR(RemoveContents(fd.get(), st.st_dev, dir, &crossed));
  if (crossed) return absl::FailedPreconditionError(StrCat(dir, ": a mount below was kept"));
  if (::rmdir(dir.c_str()) != 0) return ErrnoToStatus(errno, StrCat("rmdir ", dir));
  return absl::OkStatus();
}

}  // namespace lazysnap

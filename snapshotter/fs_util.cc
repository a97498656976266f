#include "snapshotter/fs_util.h"

#include <fts.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <utility>

#include "base/errors.h"
#include "base/strings.h"

namespace lazysnap {
namespace {

// Owns an FTS handle.
struct FtsCloser {
  void operator()(FTS* f) const { fts_close(f); }
};
using FtsPtr = std::unique_ptr<FTS, FtsCloser>;

absl::StatusOr<FtsPtr> OpenFts(const std::string& path, int options) {
  char* argv[] = {const_cast<char*>(path.c_str()), nullptr};
  FTS* f = fts_open(argv, options, nullptr);
  if (f == nullptr) return ErrnoToStatus(errno, StrCat("fts_open ", path));
  return FtsPtr(f);
}

}  // namespace

absl::StatusOr<Usage> DiskUsage(const std::string& dir) {
  auto fts = OpenFts(dir, FTS_PHYSICAL | FTS_NOCHDIR);
  if (!fts.ok()) return fts.status();
  std::set<std::pair<dev_t, ino_t>> seen;
  Usage usage;
  while (true) {
    errno = 0;
    FTSENT* e = fts_read(fts->get());
    if (e == nullptr) {
      if (errno != 0) return ErrnoToStatus(errno, StrCat("disk usage of ", dir));
      break;
    }
    switch (e->fts_info) {
      case FTS_DP:
        continue;  // directories are counted on the way down
      case FTS_ERR:
      case FTS_DNR:
      case FTS_NS:
        return ErrnoToStatus(e->fts_errno, StrCat("disk usage of ", e->fts_path));
      default:
        break;
    }
    const struct stat* st = e->fts_statp;
    if (seen.emplace(st->st_dev, st->st_ino).second) {
      usage.size += static_cast<int64_t>(st->st_blocks) * 512;
    }
  }
  usage.inodes = static_cast<int64_t>(seen.size());
  return usage;
}

absl::Status RemoveTree(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoToStatus(errno, StrCat("stat ", path));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoToStatus(errno, StrCat("unlink ", path));
    return absl::OkStatus();
  }
  auto fts = OpenFts(path, FTS_PHYSICAL | FTS_NOCHDIR | FTS_XDEV);
  if (!fts.ok()) return fts.status();
  absl::Status first;
  errno = 0;
  while (FTSENT* e = fts_read(fts->get())) {
    switch (e->fts_info) {
      case FTS_D:
        if (e->fts_statp->st_dev != st.st_dev) {
          fts_set(fts->get(), e, FTS_SKIP);
          if (first.ok()) first = absl::FailedPreconditionError(StrCat("mount point inside: ", e->fts_path));
        } else {
          chmod(e->fts_accpath, 0700);  // a read-only directory must not stop the removal
        }
        break;
      case FTS_DP:
        if (e->fts_statp->st_dev == st.st_dev && rmdir(e->fts_accpath) != 0 && first.ok()) {
          first = ErrnoToStatus(errno, StrCat("rmdir ", e->fts_path));
        }
        break;
      case FTS_ERR:
      case FTS_DNR:
      case FTS_NS:
        if (first.ok()) first = ErrnoToStatus(e->fts_errno, StrCat("remove ", e->fts_path));
        break;
      default:
        if (unlink(e->fts_accpath) != 0 && errno != ENOENT && first.ok()) {
          first = ErrnoToStatus(errno, StrCat("unlink ", e->fts_path));
        }
        break;
    }
  }
  return first;
}

absl::StatusOr<bool> IsMountPoint(const std::string& path) {
  struct stat st, parent;
  if (lstat(path.c_str(), &st) != 0) return ErrnoToStatus(errno, StrCat("stat ", path));
  if (lstat(StrCat(path, "/..").c_str(), &parent) != 0) {
    return ErrnoToStatus(errno, StrCat("stat ", path, "/.."));
  }
  return S_ISDIR(st.st_mode) && (st.st_dev != parent.st_dev || st.st_ino == parent.st_ino);
}

}  // namespace lazysnap

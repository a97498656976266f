// LayerCache's per-file copies (the backing files of FUSE passthrough; docs/cache.md).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "base/errors.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "cache/layer_cache.h"

namespace lazysnap {
namespace {

constexpr char kTempPrefix[] = ".tmp-";

}  // namespace

std::string LayerCache::FileCopyPath(const Entry& file) const {
  uint64_t offset = file.chunks_count == 0 || file.chunks_begin >= chunks_.size()
                        ? 0
                        : data_offset(file.chunks_begin);
  return StrCat(dir_, "/files/", offset, "-", file.size);
}

void LayerCache::RemoveCopies(bool all) const {
  std::string files = StrCat(dir_, "/files");
  DIR* d = ::opendir(files.c_str());
  if (d == nullptr) return;  // none yet
  int removed = 0;
  while (dirent* e = ::readdir(d)) {
    std::string_view name(e->d_name);
    if (name == "." || name == "..") continue;
    bool temp = name.rfind(kTempPrefix, 0) == 0;
    if (!temp && !all) continue;
    if (temp) LZ_LOG(kInfo, "cache: removing ", files, "/", name, " (an interrupted copy)");
    if (::unlinkat(::dirfd(d), e->d_name, 0) == 0 && !temp) removed++;
  }
  ::closedir(d);
  if (removed > 0) {
    LZ_LOG(kInfo, "cache: removed ", removed, " per-file copies in ", files,
           " (the layer's data was reset)");
  }
}

absl::Status LayerCache::WriteFileCopy(const Entry& file, const std::atomic<bool>* stop) {
  RETURN_IF_ERROR(CheckFileChunks(file));
  std::vector<uint32_t> chunks = ChunksOfRange(file, 0, file.size);
  if (!Missing(chunks).empty()) {
    return absl::FailedPreconditionError(StrCat(FileCopyPath(file), ": not fully cached"));
  }
  std::string files = StrCat(dir_, "/files");
  if (::mkdir(files.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, StrCat("mkdir ", files));
  }
  struct statvfs vfs;
  if (::statvfs(files.c_str(), &vfs) != 0) return ErrnoToStatus(errno, StrCat("statvfs ", files));
  uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  if (free_bytes < 2 * file.size + options_.copy_min_free_bytes) {
    return absl::ResourceExhaustedError(StrCat("copy of ", file.size, " bytes: ", free_bytes,
                                               " bytes free in ", files));
  }
  if (options_.copy_allowed && !options_.copy_allowed(file.size)) {
    return absl::ResourceExhaustedError(
        StrCat("copy of ", file.size, " bytes: the cache is at its size limit"));
  }
  // Unique to the thread: two mounts of one layer may copy the same file at once.
  std::string name = FileCopyPath(file).substr(files.size() + 1);
  std::string tmp = StrCat(files, "/", kTempPrefix, name, "-", ::getpid(), "-", ::gettid());
  UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out.valid()) return ErrnoToStatus(errno, StrCat("create ", tmp));
  auto fail = [&tmp](absl::Status s) {
    ::unlink(tmp.c_str());
    return s;
  };
  // The file's bytes are one contiguous range of the data file (see the class comment).
  loff_t in_off = file.chunks_count == 0 ? 0 : static_cast<loff_t>(data_offset(file.chunks_begin));
  const uint64_t piece = std::max<uint64_t>(options_.copy_piece_bytes, 1);
  uint64_t left = file.size, written = 0, synced = 0;
  while (left > 0) {
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) {
      return fail(absl::CancelledError(StrCat("copy into ", tmp, " stopped")));
    }
    ssize_t n = ::copy_file_range(data_fd_.get(), &in_off, out.get(), nullptr,
                                  std::min(left, piece), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(ErrnoToStatus(errno, StrCat("copy_file_range into ", tmp)));
    if (n == 0) return fail(absl::DataLossError(StrCat(data_path_, " ends early")));
    left -= static_cast<uint64_t>(n);
    written += static_cast<uint64_t>(n);
    // Write back as we go (at most ~2 pieces dirty), so neither the final fdatasync nor a
    // stop waits for gigabytes; best effort (the fdatasync below is what counts).
    ::sync_file_range(out.get(), static_cast<off_t>(synced), static_cast<off_t>(written - synced),
                      SYNC_FILE_RANGE_WRITE);
    if (written - synced >= 2 * piece) {
      ::sync_file_range(out.get(), static_cast<off_t>(synced), static_cast<off_t>(piece),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER);
      synced += piece;
    }
  }
  if (absl::Status s = DataSync(out.get(), tmp); !s.ok()) return fail(s);
  std::string path = FileCopyPath(file);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return fail(ErrnoToStatus(errno, StrCat("rename ", tmp)));
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> LayerCache::OpenFileCopy(const Entry& file) const {
  RETURN_IF_ERROR(CheckFileChunks(file));
  std::string path = FileCopyPath(file);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoToStatus(errno, StrCat("open ", path));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, StrCat("stat ", path));
  if (static_cast<uint64_t>(st.st_size) != file.size) {
    LZ_LOG(kWarning, "cache: ", path, " is ", st.st_size, " bytes, expected ", file.size,
           "; removing it");
    ::unlink(path.c_str());
    return absl::NotFoundError(StrCat(path, " has the wrong size"));
  }
  return fd;
}

}  // namespace lazysnap

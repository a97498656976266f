// LayerCache's per-file copies (the backing files of FUSE passthrough; docs/cache.md).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

std::string LayerCache::FileCopyPath(EntryId id) const { return StrCat(dir_, "/files/", id); }

void LayerCache::RemoveTempCopies() const {
  std::string files = StrCat(dir_, "/files");
  DIR* d = ::opendir(files.c_str());
  if (d == nullptr) return;  // none yet
  while (dirent* e = ::readdir(d)) {
    if (std::string_view(e->d_name).rfind(kTempPrefix, 0) == 0) {
      LZ_LOG(kInfo, "cache: removing ", files, "/", e->d_name, " (an interrupted copy)");
      ::unlinkat(::dirfd(d), e->d_name, 0);
    }
  }
  ::closedir(d);
}

absl::Status LayerCache::WriteFileCopy(const Entry& file, EntryId id) {
  if (uint64_t{file.chunks_begin} + file.chunks_count > chunks_.size()) {
    return absl::InvalidArgumentError("file's chunks are outside the chunk table");
  }
  std::vector<uint32_t> chunks = ChunksOfRange(file, 0, file.size);
  if (!Missing(chunks).empty()) {
    return absl::FailedPreconditionError(StrCat("entry ", id, " is not fully cached"));
  }
  std::string files = StrCat(dir_, "/files");
  if (::mkdir(files.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, StrCat("mkdir ", files));
  }
  // Unique to the thread: two mounts of one layer may copy the same file at once.
  std::string tmp = StrCat(files, "/", kTempPrefix, id, "-", ::getpid(), "-", ::gettid());
  UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out.valid()) return ErrnoToStatus(errno, StrCat("create ", tmp));
  auto fail = [&tmp](absl::Status s) {
    ::unlink(tmp.c_str());
    return s;
  };
  // The file's bytes are one contiguous range of the data file (see the class comment).
  loff_t in_off = file.chunks_count == 0 ? 0 : static_cast<loff_t>(data_offset(file.chunks_begin));
  uint64_t left = file.size;
  while (left > 0) {
    ssize_t n = ::copy_file_range(data_fd_.get(), &in_off, out.get(), nullptr, left, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(ErrnoToStatus(errno, StrCat("copy_file_range into ", tmp)));
    if (n == 0) return fail(absl::DataLossError(StrCat(data_path_, " ends early")));
    left -= static_cast<uint64_t>(n);
  }
  if (absl::Status s = DataSync(out.get(), tmp); !s.ok()) return fail(s);
  std::string path = FileCopyPath(id);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return fail(ErrnoToStatus(errno, StrCat("rename ", tmp)));
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> LayerCache::OpenFileCopy(const Entry& file, EntryId id) const {
  std::string path = FileCopyPath(id);
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

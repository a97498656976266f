#include "cache/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "base/errors.h"
#include "base/strings.h"

namespace lazysnap {

absl::Status PreadFull(int fd, uint64_t offset, absl::Span<char> buf, std::string_view path) {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::pread(fd, buf.data() + done, buf.size() - done, offset + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, StrCat("read ", path));
    }
    if (n == 0) {
      return absl::DataLossError(StrCat(path, ": unexpected end of file at ", offset + done));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status PwriteFull(int fd, uint64_t offset, std::string_view data, std::string_view path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, offset + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, StrCat("write ", path));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status DataSync(int fd, std::string_view path) {
  if (::fdatasync(fd) != 0) return ErrnoToStatus(errno, StrCat("fdatasync ", path));
  return absl::OkStatus();
}

absl::Status SyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoToStatus(errno, StrCat("open ", dir));
  if (::fsync(fd.get()) != 0) return ErrnoToStatus(errno, StrCat("fsync ", dir));
  return absl::OkStatus();
}

}  // namespace lazysnap

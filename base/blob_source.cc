#include "base/blob_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/strings.h"
#include "base/errors.h"

namespace lazysnap {
namespace {
absl::Status CheckRange(uint64_t offset, size_t n, uint64_t size) {
  if (offset > size || n > size - offset) {
    return absl::OutOfRangeError(StrCat("read of ", n, " bytes at ", offset,
                                              " runs past the end of a ", size, "-byte blob"));
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<std::unique_ptr<FileBlobSource>> FileBlobSource::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", path));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return ErrnoToStatus(e, StrCat("stat ", path));
  }
  return std::unique_ptr<FileBlobSource>(
      new FileBlobSource(fd, static_cast<uint64_t>(st.st_size), path));
}

FileBlobSource::~FileBlobSource() { ::close(fd_); }

absl::Status FileBlobSource::ReadAt(uint64_t offset, absl::Span<char> buf) {
  if (auto s = CheckRange(offset, buf.size(), size_); !s.ok()) return s;
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::pread(fd_, buf.data() + done, buf.size() - done, offset + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, StrCat("read ", path_));
    }
    if (n == 0) return absl::DataLossError(StrCat(path_, ": file shrank while reading"));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status MemoryBlobSource::ReadAt(uint64_t offset, absl::Span<char> buf) {
  if (auto s = CheckRange(offset, buf.size(), data_.size()); !s.ok()) return s;
  std::memcpy(buf.data(), data_.data() + offset, buf.size());
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadRange(BlobSource& source, uint64_t offset, uint64_t n) {
  if (offset > source.Size() || n > source.Size() - offset) {
    return absl::OutOfRangeError(StrCat("range [", offset, ", +", n,
                                              ") runs past the end of a ", source.Size(),
                                              "-byte blob"));
  }
  std::string out(n, '\0');
  if (auto s = source.ReadAt(offset, absl::MakeSpan(out)); !s.ok()) return s;
  return out;
}

}  // namespace lazysnap

#include "format/convert_spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/errors.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace lazysnap {

absl::StatusOr<std::unique_ptr<SpoolFile>> SpoolFile::Create(const std::string& dir_in) {
  std::string dir = dir_in;
  if (dir.empty()) {
    const char* t = std::getenv("TMPDIR");
    dir = (t != nullptr && *t != '\0') ? t : "/tmp";
  }
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    // Filesystems without O_TMPFILE: a named file, unlinked at once.
    std::string tmpl = StrCat(dir, "/lazysnap-spool-XXXXXX");
    fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd < 0) return ErrnoToStatus(errno, StrCat("create spool file in ", dir));
    ::unlink(tmpl.c_str());
  }
  return std::unique_ptr<SpoolFile>(new SpoolFile(fd, dir));
}

SpoolFile::~SpoolFile() { ::close(fd_); }

absl::Status SpoolFile::Append(std::string_view data) {
  // Written through, so appended bytes are readable at once (streaming conversion).
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(size_));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, StrCat("write spool file in ", path_));
    }
    data.remove_prefix(static_cast<size_t>(n));
    size_ += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status SpoolFile::Flush() { return absl::OkStatus(); }

absl::Status SpoolFile::ReadAt(uint64_t offset, absl::Span<char> buf) const {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::pread(fd_, buf.data() + done, buf.size() - done,
                        static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, StrCat("read spool file in ", path_));
    }
    if (n == 0) return absl::InternalError("spool file shorter than written");
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> SpoolingInputStream::Read(absl::Span<char> buf) {
  if (pos_ == end_) {
    ASSIGN_OR_RETURN(size_t n, in_->Read(absl::MakeSpan(block_)));
    if (n == 0) return size_t{0};
    RETURN_IF_ERROR(spool_->Append(std::string_view(block_.data(), n)));
    pos_ = 0;
    end_ = n;
    total_ += n;
    if (progress_ && total_ - last_report_ >= (8u << 20)) {
      last_report_ = total_;
      progress_(total_);
    }
  }
  size_t n = std::min(buf.size(), end_ - pos_);
  std::memcpy(buf.data(), block_.data() + pos_, n);
  pos_ += n;
  return n;
}

}  // namespace lazysnap

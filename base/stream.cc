#include "base/stream.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/strings.h"
#include "base/errors.h"

namespace lazysnap {

absl::Status ReadFull(InputStream& in, absl::Span<char> buf) {
  size_t done = 0;
  while (done < buf.size()) {
    auto n = in.Read(buf.subspan(done));
    if (!n.ok()) return n.status();
    if (*n == 0) {
      return absl::DataLossError(
          StrCat("truncated: stream ended ", buf.size() - done, " bytes early"));
    }
    done += *n;
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> StringInputStream::Read(absl::Span<char> buf) {
  size_t n = std::min(buf.size(), data_.size() - pos_);
  std::memcpy(buf.data(), data_.data() + pos_, n);
  pos_ += n;
  return n;
}

absl::StatusOr<std::unique_ptr<FileInputStream>> FileInputStream::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", path));
  return std::unique_ptr<FileInputStream>(new FileInputStream(fd, path));
}

FileInputStream::~FileInputStream() { ::close(fd_); }

absl::StatusOr<size_t> FileInputStream::Read(absl::Span<char> buf) {
  for (;;) {
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return ErrnoToStatus(errno, StrCat("read ", path_));
  }
}

absl::StatusOr<std::unique_ptr<FileOutputStream>> FileOutputStream::Create(
    const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("create ", path));
  return std::unique_ptr<FileOutputStream>(new FileOutputStream(fd, path));
}

FileOutputStream::~FileOutputStream() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status FileOutputStream::Write(std::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError(StrCat(path_, ": already closed"));
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, StrCat("write ", path_));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status FileOutputStream::Close() {
  if (fd_ < 0) return absl::OkStatus();
  int fd = fd_;
  fd_ = -1;
  if (::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    return ErrnoToStatus(e, StrCat("fsync ", path_));
  }
  if (::close(fd) != 0) return ErrnoToStatus(errno, StrCat("close ", path_));
  return absl::OkStatus();
}

absl::Status DigestingOutputStream::Write(std::string_view data) {
  hasher_.Update(data);
  bytes_ += data.size();
  return out_->Write(data);
}

absl::StatusOr<size_t> DigestingInputStream::Read(absl::Span<char> buf) {
  auto n = in_->Read(buf);
  if (n.ok() && *n > 0) {
    hasher_.Update(buf.data(), *n);
    bytes_ += *n;
  }
  return n;
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  auto in = FileInputStream::Open(path);
  if (!in.ok()) return in.status();
  std::string out;
  char buf[65536];
  for (;;) {
    auto n = (*in)->Read(absl::MakeSpan(buf));
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    out.append(buf, *n);
  }
  return out;
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view data) {
  std::string tmp = StrCat(path, ".tmp.", ::getpid());
  auto out = FileOutputStream::Create(tmp);
  if (!out.ok()) return out.status();
  absl::Status s = (*out)->Write(data);
  if (s.ok()) s = (*out)->Close();
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = ErrnoToStatus(errno, StrCat("rename ", tmp, " to ", path));
  }
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}

}  // namespace lazysnap

// Sequential byte streams: the narrow interfaces the converter reads layers from and writes
// layers to. Implementations for files (fd), memory and hashing/counting wrappers.
#ifndef LAZYSNAP_BASE_STREAM_H_
#define LAZYSNAP_BASE_STREAM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/digest.h"

namespace lazysnap {

// A source of bytes read front to back. Not thread-safe.
class InputStream {
 public:
  virtual ~InputStream() = default;
  // Reads up to buf.size() bytes; returns how many (0 only at end of stream).
  virtual absl::StatusOr<size_t> Read(absl::Span<char> buf) = 0;
};

// A sink of bytes written front to back. Not thread-safe.
class OutputStream {
 public:
  virtual ~OutputStream() = default;
  virtual absl::Status Write(std::string_view data) = 0;
  // Makes everything written durable / visible (fsync for files). Default: nothing to do.
  virtual absl::Status Close() { return absl::OkStatus(); }
};

// Reads exactly buf.size() bytes, or fails (a premature end is DataLoss "truncated").
absl::Status ReadFull(InputStream& in, absl::Span<char> buf);

class StringInputStream : public InputStream {
 public:
  explicit StringInputStream(std::string data) : data_(std::move(data)) {}
  absl::StatusOr<size_t> Read(absl::Span<char> buf) override;

 private:
  std::string data_;
  size_t pos_ = 0;
};

class StringOutputStream : public OutputStream {
 public:
  absl::Status Write(std::string_view data) override {
    data_.append(data);
    return absl::OkStatus();
  }
  std::string& data() { return data_; }

 private:
  std::string data_;
};

// Reads a file; owns the descriptor.
class FileInputStream : public InputStream {
 public:
  static absl::StatusOr<std::unique_ptr<FileInputStream>> Open(const std::string& path);
  ~FileInputStream() override;
  absl::StatusOr<size_t> Read(absl::Span<char> buf) override;

 private:
  FileInputStream(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
};

// Writes a new file (created or truncated, mode 0644); Close() fsyncs and closes it.
class FileOutputStream : public OutputStream {
 public:
  static absl::StatusOr<std::unique_ptr<FileOutputStream>> Create(const std::string& path);
  ~FileOutputStream() override;
  absl::Status Write(std::string_view data) override;
  absl::Status Close() override;

 private:
  FileOutputStream(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
};

// Passes bytes through to `out` (not owned, must outlive this) while counting and hashing them.
class DigestingOutputStream : public OutputStream {
 public:
  explicit DigestingOutputStream(OutputStream* out) : out_(out) {}
  absl::Status Write(std::string_view data) override;
  absl::Status Close() override { return out_->Close(); }
  uint64_t bytes() const { return bytes_; }
  Sha256 Finish() { return hasher_.Finish(); }

 private:
  OutputStream* out_;
  Sha256Hasher hasher_;
  uint64_t bytes_ = 0;
};

// Passes bytes through from `in` (not owned) while counting and hashing them.
class DigestingInputStream : public InputStream {
 public:
  explicit DigestingInputStream(InputStream* in) : in_(in) {}
  absl::StatusOr<size_t> Read(absl::Span<char> buf) override;
  uint64_t bytes() const { return bytes_; }
  Sha256 Finish() { return hasher_.Finish(); }

 private:
  InputStream* in_;
  Sha256Hasher hasher_;
  uint64_t bytes_ = 0;
};

// Whole-file helpers.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);
// Writes `data` to a temporary file beside `path`, fsyncs it and renames it over `path`.
absl::Status WriteFileAtomically(const std::string& path, std::string_view data);

}  // namespace lazysnap

#endif  // LAZYSNAP_BASE_STREAM_H_

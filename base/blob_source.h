// BlobSource: random read access to one immutable blob (a layer), wherever it lives: a local
// file, a registry (registry/), a cache (cache/). The narrow interface every layer reader
// stands on; tests fake it (see base/testing.h for forwarding and counting doubles).
#ifndef LAZYSNAP_BASE_BLOB_SOURCE_H_
#define LAZYSNAP_BASE_BLOB_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace lazysnap {

class BlobSource {
 public:
  virtual ~BlobSource() = default;

  // Size of the blob in bytes. Fixed for the source's lifetime.
  virtual uint64_t Size() const = 0;

  // Fills all of `buf` with the bytes at [offset, offset + buf.size()). A range that runs past
  // Size() is OutOfRange; a short read is an error, never partial data. Thread-safe: any
  // number of concurrent calls.
  virtual absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) = 0;
};

// A BlobSource over a local file, read with pread(2). Thread-safe.
class FileBlobSource : public BlobSource {
 public:
  // Opens `path` read-only. NotFound / PermissionDenied etc. as errno says.
  static absl::StatusOr<std::unique_ptr<FileBlobSource>> Open(const std::string& path);
  ~FileBlobSource() override;

  uint64_t Size() const override { return size_; }
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override;

 private:
  FileBlobSource(int fd, uint64_t size, std::string path)
      : fd_(fd), size_(size), path_(std::move(path)) {}
  const int fd_;
  const uint64_t size_;
  const std::string path_;
};

// A BlobSource over bytes held in memory (tests, small blobs). Thread-safe.
class MemoryBlobSource : public BlobSource {
 public:
  explicit MemoryBlobSource(std::string data) : data_(std::move(data)) {}
  uint64_t Size() const override { return data_.size(); }
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override;
  const std::string& data() const { return data_; }

 private:
  const std::string data_;
};

// Reads [offset, offset + n) into a new string.
absl::StatusOr<std::string> ReadRange(BlobSource& source, uint64_t offset, uint64_t n);

}  // namespace lazysnap

#endif  // LAZYSNAP_BASE_BLOB_SOURCE_H_

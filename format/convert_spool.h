// The converter's spool: an anonymous temporary file holding the uncompressed input tar, so
// members can be written in a different order than they were read and compressed in
// parallel (random reads from many threads).
#ifndef LAZYSNAP_FORMAT_CONVERT_SPOOL_H_
#define LAZYSNAP_FORMAT_CONVERT_SPOOL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/stream.h"

namespace lazysnap {

class SpoolFile {
 public:
  // Creates an unlinked file in `dir` ("" = $TMPDIR or /tmp); it vanishes when closed.
  static absl::StatusOr<std::unique_ptr<SpoolFile>> Create(const std::string& dir);
  ~SpoolFile();
  SpoolFile(const SpoolFile&) = delete;
  SpoolFile& operator=(const SpoolFile&) = delete;

  // Appends (written through: readable by ReadAt once this returns). Single writer.
  absl::Status Append(std::string_view data);
  absl::Status Flush();
  // Reads exactly buf.size() bytes at `offset` (pread) of what was appended. Thread-safe,
  // also concurrently with Append.
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) const;
  uint64_t size() const { return size_; }

 private:
  SpoolFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
  uint64_t size_ = 0;
};

// Adapts a SpoolFile (not owned) as an OutputStream.
class SpoolOutputStream : public OutputStream {
 public:
  explicit SpoolOutputStream(SpoolFile* spool) : spool_(spool) {}
  absl::Status Write(std::string_view data) override { return spool_->Append(data); }

 private:
  SpoolFile* spool_;
};

// Reads `in` (not owned) in large blocks, appends every byte to `spool` (not owned) and
// serves reads from the block. `progress` (may be empty) gets the bytes read so far now and
// then. Not thread-safe.
class SpoolingInputStream : public InputStream {
 public:
  SpoolingInputStream(InputStream* in, SpoolFile* spool, std::function<void(uint64_t)> progress)
      : in_(in), spool_(spool), progress_(std::move(progress)), block_(1 << 20, '\0') {}
  absl::StatusOr<size_t> Read(absl::Span<char> buf) override;

 private:
  InputStream* in_;
  SpoolFile* spool_;
  std::function<void(uint64_t)> progress_;
  std::string block_;
  size_t pos_ = 0, end_ = 0;
  uint64_t total_ = 0, last_report_ = 0;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_CONVERT_SPOOL_H_

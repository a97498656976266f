// Encoding the TOC JSON of the layers lazysnap writes, in the exact dialect of the Go
// writers: eStargz as containerd/stargz-snapshotter's estargz package (json.MarshalIndent
// with tabs), zstd:chunked as containers/storage's (compact json, RFC 3339 nano times), and
// tar-split JSON lines as vbatts/tar-split's storage packer. Used by format/convert.cc.
#ifndef LAZYSNAP_FORMAT_TOC_WRITER_H_
#define LAZYSNAP_FORMAT_TOC_WRITER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/types/span.h"
#include "base/digest.h"
#include "format/tar.h"

namespace lazysnap {

// Appends `s` as a JSON string the way Go's encoding/json does: HTML-safe (<, >, & as
// \u003c...), control characters escaped, invalid UTF-8 replaced by U+FFFD. Returns false
// if `s` was not valid UTF-8 (the output is then lossy).
bool AppendJsonString(std::string* out, std::string_view s);

// Formats seconds since the epoch as RFC 3339 in UTC: "2006-01-02T15:04:05Z", with a
// ".999999999" fraction (trailing zeros trimmed) when `nanos` is true and nsec != 0.
std::string FormatRfc3339(int64_t sec, uint32_t nsec, bool nanos);

// One written chunk of a regular file.
struct WrittenChunk {
  uint64_t offset = 0;       // blob offset of the member/frame holding the chunk
  uint64_t end_offset = 0;   // blob offset just past it (zstd:chunked)
  uint64_t file_offset = 0;  // where the chunk starts in the file
  uint64_t size = 0;         // uncompressed bytes
  Sha256 digest;             // sha256 of those bytes
};

// Builds an eStargz TOC ("version": 1) entry by entry. Not thread-safe.
class EstargzTocWriter {
 public:
  // `chunk_size` is the writer's chunk size: a chunk of exactly that size records it in
  // "chunkSize" (shorter last chunks leave it out, meaning "to the end of the file").
  explicit EstargzTocWriter(uint64_t chunk_size);
  // Adds `e` (name as in the tar). Regular files pass their digest and chunks (none when
  // empty); other types pass nullptr / {}.
  void Add(const TarEntry& e, const Sha256* digest, absl::Span<const WrittenChunk> chunks);
  std::string Finish();

 private:
  uint64_t chunk_size_;
  std::string out_;
  bool first_ = true;
  std::map<uint32_t, std::string> last_uname_, last_gname_;
};

// Builds a zstd:chunked TOC ("manifest") the way containers/storage does. Not thread-safe.
class ZstdChunkedTocWriter {
 public:
  ZstdChunkedTocWriter();
  // Regular files with data pass their digest and chunks (the entry's offset/endOffset
  // come from them; more than one chunk also writes "chunk" entries).
  void Add(const TarEntry& e, const Sha256* digest, absl::Span<const WrittenChunk> chunks);
  std::string Finish(const Sha256& tar_split_digest);

 private:
  std::string out_;
  bool first_ = true;
};

// CRC-64 (ISO polynomial, as Go's hash/crc64 with crc64.ISO), continuing from `crc`
// (0 to start).
uint64_t Crc64Iso(uint64_t crc, std::string_view data);

// Appends tar-split JSON lines ({"type":2,"payload":...,"position":N} for raw segments,
// {"type":1,"name":...,"size":N,"payload":<crc64>,"position":N} for files). Not thread-safe.
class TarSplitWriter {
 public:
  void Segment(std::string_view raw);
  void File(std::string_view name, uint64_t size, uint64_t crc64);
  std::string& data() { return out_; }

 private:
  std::string out_;
  uint64_t position_ = 0;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_TOC_WRITER_H_

// Tar headers: a streaming reader of ustar / GNU / PAX archives (the layer formats in the wild)
// and a header writer (PAX where ustar cannot say it). Untrusted input: every field is bounded
// and checked, and a malformed header is an InvalidArgument/DataLoss error naming the field.
#ifndef LAZYSNAP_FORMAT_TAR_H_
#define LAZYSNAP_FORMAT_TAR_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "absl/status/statusor.h"
#include "base/stream.h"

namespace lazysnap {

// One archive member, with long names, PAX records and GNU extensions already applied.
struct TarEntry {
  char typeflag = '0';   // '0' reg, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir,
                         // '6' fifo ('\0' and '7' are normalized to '0')
  std::string name;      // as in the archive (may have "./" prefix or trailing '/')
  std::string linkname;
  uint32_t mode = 0;     // permission bits incl. setuid/setgid/sticky (no S_IFMT bits)
  uint32_t uid = 0, gid = 0;
  std::string uname, gname;
  uint64_t size = 0;     // data bytes that follow the header
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint32_t devmajor = 0, devminor = 0;
  std::map<std::string, std::string> xattrs;  // from PAX SCHILY.xattr.* (raw bytes)
  std::map<std::string, std::string> pax;     // all other PAX records, kept for re-encoding
};

// Reads members from an uncompressed tar stream (`in` not owned; must outlive the reader).
// Usage: while ((e = Next()) has a value) { ReadData(...) up to e->size }. Data not read
// before the next Next() is skipped. Not thread-safe.
class TarReader {
 public:
  explicit TarReader(InputStream* in) : in_(in) {}

  // The next member, std::nullopt at the end of the archive (two zero blocks or a clean EOF).
  absl::StatusOr<std::optional<TarEntry>> Next();
  // Reads up to buf.size() bytes of the current member's data; 0 when it is exhausted.
  absl::StatusOr<size_t> ReadData(absl::Span<char> buf);
  // Total bytes of the tar stream consumed so far.
  uint64_t offset() const { return offset_; }
  // Stream offset of the first header block (extension headers included) of the member the
  // last Next() returned; after Next() returned std::nullopt, where the end-of-archive
  // marker starts (or the stream ended). The member's raw header bytes are
  // [header_offset(), data offset) where the data offset is offset() right after Next().
  uint64_t header_offset() const { return header_offset_; }

 private:
  absl::Status Skip(uint64_t n);
  absl::Status ReadBlock(char* block, bool* eof);
  absl::StatusOr<std::string> ReadExtension(uint64_t size, uint64_t cap, std::string_view what);
  InputStream* in_;
  uint64_t remaining_ = 0;  // data bytes left in the current member
  uint64_t padding_ = 0;    // padding after it
  uint64_t offset_ = 0;
  uint64_t header_offset_ = 0;
  bool done_ = false;
  std::map<std::string, std::string> global_pax_;  // from 'g' headers, applied to all
};

// Bounds on untrusted archives.
inline constexpr uint64_t kTarMaxPaxHeaderSize = 1u << 20;  // one 'x' or 'g' header
inline constexpr uint64_t kTarMaxNameLength = 64u << 10;    // paths and link targets
inline constexpr int kTarMaxExtensionHeaders = 32;           // 'x'/'g'/'L'/'K' per member

// Encodes the header block(s) for `e`: a PAX extended header first when a field does not fit
// ustar (long names, big ids/sizes, sub-second mtimes, xattrs, non-ASCII names), then the
// ustar header. Deterministic. The data and its padding (PaddingFor) are the caller's.
std::string EncodeTarHeader(const TarEntry& e);
inline uint64_t TarPaddingFor(uint64_t size) { return (512 - size % 512) % 512; }
// Two zero blocks: the end-of-archive marker.
std::string TarTrailer();

// Parses a PAX time value "SEC[.FRAC]" (SEC may be negative; -1.25 gives sec -2, nsec
// 750000000). False if malformed.
bool ParsePaxTime(std::string_view s, int64_t* sec, uint32_t* nsec);

// Validates and normalizes a member name from untrusted input: strips "./" and leading '/',
// collapses duplicate slashes, drops a trailing '/'; rejects "..", NUL bytes and empty names
// with InvalidArgument. "" and "." become "" (the root).
absl::StatusOr<std::string> CleanEntryName(std::string_view name);

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_TAR_H_

// Detecting a layer's compression (gzip, zstd or none) from its magic bytes and reading it
// back as the uncompressed tar stream.
#ifndef LAZYSNAP_FORMAT_DECOMPRESS_H_
#define LAZYSNAP_FORMAT_DECOMPRESS_H_

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/stream.h"

namespace lazysnap {

enum class Compression { kNone, kGzip, kZstd };

std::string_view CompressionName(Compression c);

// Bounds for untrusted compressed input.
struct DecompressLimits {
  // Uncompressed bytes after which reading fails with ResourceExhausted (bomb guard).
  uint64_t max_output_bytes = 1ull << 42;  // 4 TiB
};

// Wraps `in` (not owned; must outlive the result): peeks at its first bytes, picks the
// decoder (gzip: 1f 8b 08, zstd: 28 b5 2f fd, anything else: passed through unchanged) and
// returns a stream of the uncompressed bytes. Concatenated gzip members and zstd frames are
// decoded in sequence (zstd skippable frames are skipped). A corrupt or truncated stream, a
// CRC mismatch or trailing garbage after a gzip member is DataLoss when read. `detected`, if
// given, receives the compression found. Not thread-safe (one reader).
absl::StatusOr<std::unique_ptr<InputStream>> NewDecompressingStream(
    InputStream* in, Compression* detected = nullptr, const DecompressLimits& limits = {});

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_DECOMPRESS_H_

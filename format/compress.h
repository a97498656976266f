// Compressing one independent unit of a seekable layer: a complete gzip member (libdeflate)
// or a complete zstd frame (libzstd), plus zstd skippable frames. Deterministic: the same
// input and level give the same bytes.
#ifndef LAZYSNAP_FORMAT_COMPRESS_H_
#define LAZYSNAP_FORMAT_COMPRESS_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lazysnap {

// Default levels: see format/writer.md for the measurements behind them.
inline constexpr int kDefaultGzipLevel = 6;   // libdeflate 1..12
inline constexpr int kDefaultZstdLevel = 3;   // libzstd 1..19

// Compresses whole buffers into single gzip members or zstd frames. Holds per-thread
// compressor state: not thread-safe, use one per thread.
class Compressor {
 public:
  virtual ~Compressor() = default;
  // Appends to `out` one complete member/frame holding `in` (possibly empty).
  virtual absl::Status Compress(std::string_view in, std::string* out) = 0;
};

// `level` 0 picks the default; out-of-range levels are InvalidArgument.
absl::StatusOr<std::unique_ptr<Compressor>> NewGzipCompressor(int level);
absl::StatusOr<std::unique_ptr<Compressor>> NewZstdCompressor(int level);

// A zstd skippable frame (magic 0x184D2A50, u32 LE size) carrying `payload`.
std::string ZstdSkippableFrame(std::string_view payload);

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_COMPRESS_H_

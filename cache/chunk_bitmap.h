// ChunkBitmap: the persistent record of which chunks of one layer are present in its cache
// data file (the idea of nydus' storage/src/cache/state/persist_map.rs).
//
// File format (little-endian):
//   [0, 8)    magic "LZBITMAP"
//   [8, 12)   version (1)
//   [12, 16)  reserved, 0
//   [16, 24)  chunk count
//   [24, 32)  data file size in bytes (sum of the chunks' sizes)
//   [32, 64)  layer identity (the layer's TOC digest)
//   [64, 72)  first 8 bytes of sha256 over [0, 64): header checksum
//   [72, 128) reserved, 0
//   [128, ..) one bit per chunk, bit i%8 of byte i/8; file size exactly 128 + ceil(count/8)
//
// A bit is only ever set after the chunk's bytes are durable in the data file (LayerCache
// orders this), so a set bit is trusted. A file whose header, checksum, identity or size does
// not match is never trusted: Open() resets it to all-clear (the layer re-fetches) and says so
// through reset_reason().
#ifndef LAZYSNAP_CACHE_CHUNK_BITMAP_H_
#define LAZYSNAP_CACHE_CHUNK_BITMAP_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "base/digest.h"
#include "cache/file_io.h"

namespace lazysnap {

// What a bitmap file must match to be trusted.
struct BitmapIdentity {
  Sha256 layer_id;  // e.g. the TOC digest
  uint64_t chunk_count = 0;
  uint64_t data_size = 0;  // size of the data file the bits describe
};

class ChunkBitmap {
 public:
  static constexpr uint32_t kVersion = 1;
  static constexpr uint64_t kHeaderSize = 128;

  // Opens the bitmap at `path`, creating it (all clear) if absent. An existing file that does
  // not match `identity` (or is corrupt) is rewritten all clear; reset_reason() then says why.
  // I/O errors are returned. The result owns its file descriptor.
  static absl::StatusOr<std::unique_ptr<ChunkBitmap>> Open(const std::string& path,
                                                           const BitmapIdentity& identity);
  ~ChunkBitmap();
  ChunkBitmap(const ChunkBitmap&) = delete;
  ChunkBitmap& operator=(const ChunkBitmap&) = delete;

  // All methods are thread-safe.
  uint64_t size() const { return identity_.chunk_count; }
  bool Test(uint64_t chunk) const;
  uint64_t CountSet() const;
  // A copy of the bits, one bool per chunk.
  std::vector<bool> Snapshot() const;

  // Sets the bits of `chunks` in memory and writes the bytes holding them (pwrite). Does not
  // fsync: losing a bit in a crash only means a re-fetch. Out-of-range index: InvalidArgument.
  absl::Status Set(absl::Span<const uint32_t> chunks);
  // Clears every bit, in memory and on disk.
  absl::Status Reset();
  // fdatasync of the bitmap file.
  absl::Status Sync();

  // OK if the file was trusted as found (or newly created); otherwise why it was reset.
  const absl::Status& reset_reason() const { return reset_reason_; }

 private:
  ChunkBitmap(UniqueFd fd, std::string path, const BitmapIdentity& identity);
  absl::Status WriteFresh() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads and checks the file; OK only if it is trustworthy (bits then loaded).
  absl::Status Load() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const UniqueFd fd_;
  const std::string path_;
  const BitmapIdentity identity_;
  absl::Status reset_reason_;
  mutable absl::Mutex mu_;
  std::vector<uint8_t> bits_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lazysnap

#endif  // LAZYSNAP_CACHE_CHUNK_BITMAP_H_

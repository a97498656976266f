// ChunkDecoder: the narrow seam between the cache and the layer formats. The cache fetches a
// chunk's compressed bytes and hands them to a decoder, which must decompress AND verify them
// (against Chunk::digest) before the cache writes a single byte to disk.
#ifndef LAZYSNAP_CACHE_CHUNK_DECODER_H_
#define LAZYSNAP_CACHE_CHUNK_DECODER_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "format/index.h"

namespace lazysnap {

class ChunkDecoder {
 public:
  virtual ~ChunkDecoder() = default;

  // Decodes `chunk` from exactly chunk.compressed_size bytes of blob (`compressed`) into
  // `out` (exactly chunk.size bytes) and verifies it. Any mismatch or broken stream is
  // DataLoss, and `out` is then garbage. Must be thread-safe: the cache calls it from any
  // number of threads at once.
  virtual absl::Status Decode(const Chunk& chunk, std::string_view compressed,
                              absl::Span<char> out) = 0;
};

// The production decoder: format/layer.h's DecodeChunk for one layer's format and chunk
// fingerprint key (copied from `index`, which need not outlive the decoder). Thread-safe;
// immutable.
class FormatChunkDecoder : public ChunkDecoder {
 public:
  explicit FormatChunkDecoder(const LayerIndex& index)
      : format_(index.format()), key_(index.digest_key()) {}
  absl::Status Decode(const Chunk& chunk, std::string_view compressed,
                      absl::Span<char> out) override;

 private:
  const LayerFormat format_;
  const DigestKey key_;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_CACHE_CHUNK_DECODER_H_

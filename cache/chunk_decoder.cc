#include "cache/chunk_decoder.h"

#include "format/layer.h"

namespace lazysnap {

absl::Status FormatChunkDecoder::Decode(const Chunk& chunk, std::string_view compressed,
                                        absl::Span<char> out) {
  return DecodeChunk(format_, key_, chunk, compressed, out);
}

}  // namespace lazysnap

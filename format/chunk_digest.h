// Chunk digest fingerprints: what the in-memory index keeps of each chunk's chunkDigest
// (format/index.md explains why 16 keyed bytes verify as strongly as the 32-byte digest).
#ifndef LAZYSNAP_FORMAT_CHUNK_DIGEST_H_
#define LAZYSNAP_FORMAT_CHUNK_DIGEST_H_

#include <array>
#include <cstdint>
#include <string>

#include "base/digest.h"

namespace lazysnap {

// A per-index random secret keying the chunk fingerprints (LayerIndex::digest_key()). It never
// leaves the process. Value type.
struct DigestKey {
  std::array<uint8_t, 16> bytes{};
};

// What a Chunk keeps of its chunkDigest: the first 16 bytes of SHA-256(key || digest) under
// the index's DigestKey. Data is accepted if the fingerprint of its SHA-256 matches; finding
// other data that matches needs a SHA-256 collision or the key. Value type.
struct ChunkDigest {
  std::array<uint8_t, 16> bytes{};

  // The fingerprint of `digest` under `key`. Thread-safe.
  static ChunkDigest Of(const DigestKey& key, const Sha256& digest);
  std::string Hex() const;  // 32 lowercase hex digits
  bool operator==(const ChunkDigest&) const = default;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_CHUNK_DIGEST_H_

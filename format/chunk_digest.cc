#include "format/chunk_digest.h"

#include <openssl/sha.h>

#include <cstring>

namespace lazysnap {

ChunkDigest ChunkDigest::Of(const DigestKey& key, const Sha256& digest) {
  // One SHA-256 block, once per chunk of a TOC: OpenSSL's one-shot SHA256() (SHA-NI where the
  // CPU has it) is faster here than an EVP context.
  uint8_t in[sizeof key.bytes + sizeof digest.bytes];
  memcpy(in, key.bytes.data(), sizeof key.bytes);
  memcpy(in + sizeof key.bytes, digest.bytes.data(), sizeof digest.bytes);
  uint8_t full[SHA256_DIGEST_LENGTH];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  SHA256(in, sizeof in, full);
#pragma GCC diagnostic pop
  ChunkDigest out;
  memcpy(out.bytes.data(), full, out.bytes.size());
  return out;
}

std::string ChunkDigest::Hex() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : bytes) {
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 15]);
  }
  return s;
}

}  // namespace lazysnap

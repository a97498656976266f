#include "format/chunk_digest.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace lazysnap {
namespace {

TEST(ChunkDigest, IsTheKeyedSha256Prefix) {
  DigestKey key;
  for (size_t i = 0; i < key.bytes.size(); ++i) key.bytes[i] = static_cast<uint8_t>(i * 7 + 1);
  const Sha256 d = Sha256::Of("chunk bytes");
  std::string in(reinterpret_cast<const char*>(key.bytes.data()), key.bytes.size());
  in.append(reinterpret_cast<const char*>(d.bytes.data()), d.bytes.size());
  EXPECT_EQ(ChunkDigest::Of(key, d).Hex(), Sha256::Of(in).Hex().substr(0, 32));
}

TEST(ChunkDigest, DependsOnTheKeyAndTheDigest) {
  DigestKey k1, k2;
  k2.bytes[15] = 1;
  const Sha256 a = Sha256::Of("a"), b = Sha256::Of("b");
  EXPECT_EQ(ChunkDigest::Of(k1, a), ChunkDigest::Of(k1, a));
  EXPECT_NE(ChunkDigest::Of(k1, a), ChunkDigest::Of(k2, a));
  EXPECT_NE(ChunkDigest::Of(k1, a), ChunkDigest::Of(k1, b));
  // Not the digest's own prefix: a fingerprint says nothing to whoever lacks the key.
  ChunkDigest prefix;
  std::copy_n(a.bytes.begin(), 16, prefix.bytes.begin());
  EXPECT_NE(ChunkDigest::Of(k1, a), prefix);
}

}  // namespace
}  // namespace lazysnap

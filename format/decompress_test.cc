#include "format/decompress.h"

#include <zlib.h>
#include <zstd.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lazysnap {
namespace {

using ::testing::HasSubstr;

std::string Gzip(const std::string& data) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, data.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = data.size();
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = out.size();
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string Zstd(const std::string& data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3));
  return out;
}

absl::StatusOr<std::string> Decode(std::string in, Compression* c = nullptr,
                                   DecompressLimits limits = {}) {
  StringInputStream src(std::move(in));
  auto s = NewDecompressingStream(&src, c, limits);
  if (!s.ok()) return s.status();
  std::string out;
  char buf[1000];
  for (;;) {
    auto n = (*s)->Read(absl::MakeSpan(buf));
    if (!n.ok()) return n.status();
    if (*n == 0) return out;
    out.append(buf, *n);
  }
}

std::string Payload() {
  std::string s;
  for (uint32_t i = 0; i < 300000; ++i) s += static_cast<char>('a' + (i * 7919u % 26));
  return s;
}

TEST(DecompressTest, DetectsAndDecodes) {
  const std::string data = Payload();
  Compression c;
  EXPECT_EQ(*Decode(Gzip(data), &c), data);
  EXPECT_EQ(c, Compression::kGzip);
  EXPECT_EQ(*Decode(Zstd(data), &c), data);
  EXPECT_EQ(c, Compression::kZstd);
  EXPECT_EQ(*Decode(data, &c), data);
  EXPECT_EQ(c, Compression::kNone);
  EXPECT_EQ(*Decode("", &c), "");
  EXPECT_EQ(*Decode("ab", &c), "ab");
}

TEST(DecompressTest, ConcatenatedMembersAndFrames) {
  EXPECT_EQ(*Decode(Gzip("hello ") + Gzip("") + Gzip("world")), "hello world");
  std::string skippable("\x50\x2a\x4d\x18\x03\x00\x00\x00xyz", 11);
  EXPECT_EQ(*Decode(Zstd("hello ") + skippable + Zstd("world")), "hello world");
}

TEST(DecompressTest, CorruptInputIsDataLoss) {
  const std::string data = Payload();
  std::string gz = Gzip(data);
  auto truncated = Decode(gz.substr(0, gz.size() / 2));
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(truncated.status().message(), HasSubstr("truncated"));

  std::string bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0x55;
  EXPECT_EQ(Decode(bad_crc).status().code(), absl::StatusCode::kDataLoss);

  EXPECT_EQ(Decode(gz + "garbage").status().code(), absl::StatusCode::kDataLoss);

  std::string zs = Zstd(data);
  EXPECT_EQ(Decode(zs.substr(0, zs.size() - 3)).status().code(), absl::StatusCode::kDataLoss);
  std::string bad_zs = zs;
  bad_zs[6] ^= 0x7f;
  bad_zs[zs.size() / 2] ^= 0x7f;
  EXPECT_EQ(Decode(bad_zs).status().code(), absl::StatusCode::kDataLoss);
}

TEST(DecompressTest, OutputIsBounded) {
  DecompressLimits limits;
  limits.max_output_bytes = 1000;
  std::string zeros(1 << 20, '\0');
  EXPECT_EQ(Decode(Gzip(zeros), nullptr, limits).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Decode(zeros, nullptr, limits).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(Decode(std::string(1000, 'x'), nullptr, limits).ok());
}

}  // namespace
}  // namespace lazysnap

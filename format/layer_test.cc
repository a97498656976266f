#include "format/layer.h"

#include <zstd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/testing.h"
#include "format/estargz_testutil.h"
#include "format/testdata_estargz_golden.h"
#include "format/zstd_chunked.h"

namespace lazysnap {
namespace {

using ::testing::HasSubstr;
using testing::EstargzBuilder;

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  uint32_t x = 2463534242u + seed;
  for (auto& c : s) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    c = static_cast<char>('a' + x % 7);
  }
  return s;
}

EstargzBuilder SampleLayer() {
  EstargzBuilder b;
  b.AddDir("etc");
  b.AddFile("etc/hosts", "127.0.0.1 localhost\n");
  b.AddFile("bin/big", Pattern(10000, 1), /*chunk_size=*/4096, 0755);  // implicit dir bin
  b.AddFile("empty", "");
  b.AddSymlink("bin/sh", "big");
  b.AddHardlink("hosts", "etc/hosts");
  return b;
}

TEST(OpenLayer, ReadsWhatTheReferenceWriterWrote) {
  MemoryBlobSource mem(testing::FromHex(testdata::kGoldenEstargzHex));
  CountingBlobSource blob(&mem);
  OpenOptions options;
  options.annotations[kEstargzTocDigestAnnotation] = testdata::kGoldenEstargzTocDigest;
  auto layer = OpenLayer(blob, options);
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ(blob.reads(), 1u);  // footer and TOC in one read
  const LayerIndex& idx = (*layer)->index;
  EXPECT_EQ((*layer)->toc_digest.ToString(), testdata::kGoldenEstargzTocDigest);
  EXPECT_EQ((*layer)->blob_size, mem.Size());
  std::string hello;
  for (int i = 0; i < 1000; ++i) hello += "hello world ";
  auto file = ReadFile(blob, **layer, idx.LookupPath("dir/file.txt"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(*file, hello);
  EXPECT_EQ(ReadFile(blob, **layer, idx.LookupPath("small")).value_or(""), "abc");
  EXPECT_EQ(ReadFile(blob, **layer, idx.LookupPath("hard")).value_or(""), "abc");
  EXPECT_EQ(ReadFile(blob, **layer, idx.LookupPath(".prefetch.landmark")).value_or(""), "\x0f");
  EXPECT_TRUE(idx.prefetch_landmark_offset().has_value());
  EXPECT_EQ(idx.link(idx.LookupPath("link")), "dir/file.txt");
}

TEST(OpenLayer, RoundTripsBuiltLayerWithBothFooters) {
  for (bool legacy : {false, true}) {
    EstargzBuilder b = SampleLayer();
    MemoryBlobSource blob(b.Finish(legacy));
    auto layer = OpenLayer(blob, OpenOptions{});
    ASSERT_TRUE(layer.ok()) << layer.status();
    const LayerIndex& idx = (*layer)->index;
    EXPECT_EQ(ReadFile(blob, **layer, idx.LookupPath("etc/hosts")).value_or(""),
              "127.0.0.1 localhost\n");
    EXPECT_EQ(ReadFile(blob, **layer, idx.LookupPath("hosts")).value_or(""),
              "127.0.0.1 localhost\n");
    EXPECT_EQ(ReadFile(blob, **layer, idx.LookupPath("bin/big")).value_or(""), Pattern(10000, 1));
    EXPECT_EQ(ReadFile(blob, **layer, idx.LookupPath("empty")).value_or("x"), "");
    EXPECT_EQ(idx.ChunksOf(idx.LookupPath("bin/big")).size(), 3u);
    EXPECT_EQ((*layer)->toc_digest, Sha256::Of(b.TocJson()));
    EXPECT_EQ((*layer)->toc_json, b.TocJson());
    EXPECT_FALSE(ReadFile(blob, **layer, idx.LookupPath("bin/sh")).ok());  // a symlink
  }
}

TEST(OpenLayer, FromCachedTocGivesTheSameIndex) {
  EstargzBuilder b = SampleLayer();
  std::string bytes = b.Finish();
  MemoryBlobSource blob(bytes);
  auto layer = OpenLayer(blob, OpenOptions{});
  ASSERT_TRUE(layer.ok()) << layer.status();
  auto again = OpenLayerFromToc((*layer)->toc_json, LayerFormat::kEstargz,
                                (*layer)->index.toc_offset(), bytes.size(), LayerLimits{});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->toc_digest, (*layer)->toc_digest);
  ASSERT_EQ((*again)->index.size(), (*layer)->index.size());
  for (EntryId id = 0; id < (*layer)->index.size(); ++id) {
    EXPECT_EQ((*again)->index.Path(id), (*layer)->index.Path(id));
  }
  EXPECT_EQ(ReadFile(blob, **again, (*again)->index.LookupPath("bin/big")).value_or(""),
            Pattern(10000, 1));
}

TEST(OpenLayer, VerifiesTocDigest) {
  EstargzBuilder b = SampleLayer();
  MemoryBlobSource blob(b.Finish());
  OpenOptions options;
  options.annotations[kEstargzTocDigestAnnotation] = Sha256::Of(b.TocJson()).ToString();
  EXPECT_TRUE(OpenLayer(blob, options).ok());
  options.expected_toc_digest = Sha256::Of(b.TocJson());
  EXPECT_TRUE(OpenLayer(blob, options).ok());

  // A TOC that differs in one byte (still valid JSON) against the original annotation.
  std::string tampered = b.TocJson();
  size_t pos = tampered.find("\"mode\":493");
  ASSERT_NE(pos, std::string::npos);
  tampered.replace(pos, 10, "\"mode\":511");
  MemoryBlobSource tampered_blob(b.FinishWithToc(tampered));
  auto layer = OpenLayer(tampered_blob, options);
  EXPECT_TRUE(absl::IsDataLoss(layer.status())) << layer.status();
  EXPECT_THAT(layer.status().message(), HasSubstr("TOC digest mismatch"));
  options.annotations.clear();
  layer = OpenLayer(tampered_blob, options);  // expected_toc_digest alone
  EXPECT_TRUE(absl::IsDataLoss(layer.status())) << layer.status();

  OpenOptions bad;
  bad.annotations[kEstargzTocDigestAnnotation] = "sha256:nothex";
  EXPECT_TRUE(absl::IsInvalidArgument(OpenLayer(blob, bad).status()));
}

TEST(OpenLayer, FlippedTocBytesAreAnError) {
  EstargzBuilder b = SampleLayer();
  std::string bytes = b.Finish();
  OpenOptions options;
  options.annotations[kEstargzTocDigestAnnotation] = Sha256::Of(b.TocJson()).ToString();
  for (size_t at = b.size() + 20; at < bytes.size() - kEstargzFooterSize; at += 37) {
    std::string corrupt = bytes;
    corrupt[at] ^= 0x20;
    MemoryBlobSource blob(corrupt);
    EXPECT_FALSE(OpenLayer(blob, options).ok()) << "flip at " << at;
  }
}

TEST(OpenLayer, NotSeekableAndTruncated) {
  MemoryBlobSource plain(testing::GzipMember(std::string(5000, 'q')));
  auto layer = OpenLayer(plain, OpenOptions{});
  EXPECT_TRUE(absl::IsFailedPrecondition(layer.status())) << layer.status();
  EXPECT_THAT(layer.status().message(), HasSubstr("not a seekable layer"));
  MemoryBlobSource empty("");
  EXPECT_TRUE(absl::IsFailedPrecondition(OpenLayer(empty, OpenOptions{}).status()));

  std::string bytes = SampleLayer().Finish();
  MemoryBlobSource cut(bytes.substr(0, bytes.size() - 1));
  EXPECT_TRUE(absl::IsFailedPrecondition(OpenLayer(cut, OpenOptions{}).status()));
  // Cut from the front: the footer's TOC offset now points into the wrong bytes.
  MemoryBlobSource front(bytes.substr(100));
  EXPECT_FALSE(OpenLayer(front, OpenOptions{}).ok());
}

TEST(OpenLayer, AppliesLimits) {
  EstargzBuilder b = SampleLayer();
  MemoryBlobSource blob(b.Finish());
  OpenOptions options;
  options.limits.max_entries = 3;
  auto layer = OpenLayer(blob, options);
  EXPECT_TRUE(absl::IsInvalidArgument(layer.status())) << layer.status();
  options.limits = LayerLimits{};
  options.limits.max_toc_bytes = 100;
  layer = OpenLayer(blob, options);
  EXPECT_TRUE(absl::IsInvalidArgument(layer.status())) << layer.status();
}

TEST(OpenLayer, RejectsPathTraversal) {
  EstargzBuilder b;
  b.AddFile("../../etc/shadow", "x");
  MemoryBlobSource blob(b.Finish());
  auto layer = OpenLayer(blob, OpenOptions{});
  EXPECT_TRUE(absl::IsInvalidArgument(layer.status())) << layer.status();
  EXPECT_THAT(layer.status().message(), HasSubstr(".."));
}

TEST(ReadChunk, FlippedChunkBytesAreDataLoss) {
  EstargzBuilder b = SampleLayer();
  std::string bytes = b.Finish();
  MemoryBlobSource clean(bytes);
  auto layer = OpenLayer(clean, OpenOptions{});
  ASSERT_TRUE(layer.ok()) << layer.status();
  const LayerIndex& idx = (*layer)->index;
  const Chunk& c = idx.ChunksOf(idx.LookupPath("bin/big"))[1];
  std::string out(c.size, '\0');
  ASSERT_TRUE(ReadChunk(clean, idx, c, absl::MakeSpan(out)).ok());
  // Bytes carrying data: past the gzip header, well before the end of the deflate stream
  // (its last bits and the CRC trailer are not needed once the chunk's bytes are out;
  // the data is checked by its sha256 instead).
  for (uint32_t k = 12; k < c.compressed_size * 3 / 4; k += 5) {
    std::string corrupt = bytes;
    corrupt[c.compressed_offset + k] ^= 0x01;
    MemoryBlobSource blob(corrupt);
    absl::Status s = ReadChunk(blob, idx, c, absl::MakeSpan(out));
    EXPECT_TRUE(absl::IsDataLoss(s)) << "flip at " << k << ": " << s;
  }
}

const DigestKey kKey = [] {
  DigestKey k;
  k.bytes[0] = 42;
  return k;
}();

TEST(DecodeChunk, VerifiesDigestAndSizes) {
  std::string data = Pattern(1000, 7);
  std::string member = testing::GzipMember(StrCat("HEADER", data, "trailing tar bytes"));
  Chunk c;
  c.size = data.size();
  c.inner_offset = 6;
  c.compressed_size = member.size();
  c.digest = ChunkDigest::Of(kKey, Sha256::Of(data));
  c.has_digest = true;
  std::string out(data.size(), '\0');
  ASSERT_TRUE(DecodeChunk(LayerFormat::kEstargz, kKey, c, member, absl::MakeSpan(out)).ok());
  EXPECT_EQ(out, data);
  c.digest = ChunkDigest::Of(kKey, Sha256::Of("something else"));
  absl::Status s = DecodeChunk(LayerFormat::kEstargz, kKey, c, member, absl::MakeSpan(out));
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("digest mismatch"));
  c.has_digest = false;
  c.compressed_size = member.size() - 1;
  EXPECT_TRUE(absl::IsInvalidArgument(
      DecodeChunk(LayerFormat::kEstargz, kKey, c, member, absl::MakeSpan(out))));
  c.compressed_size = member.size() / 2;  // truncated stream
  EXPECT_TRUE(absl::IsDataLoss(DecodeChunk(LayerFormat::kEstargz, kKey, c,
                                           std::string_view(member).substr(0, member.size() / 2),
                                           absl::MakeSpan(out))));
  std::string small(10, '\0');
  EXPECT_TRUE(absl::IsInvalidArgument(
      DecodeChunk(LayerFormat::kEstargz, kKey, c, member, absl::MakeSpan(small))));
}

std::string Zstd(std::string_view data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3));
  return out;
}

TEST(DecodeChunk, ZstdExactSizeAndZeros) {
  std::string data = Pattern(5000, 3);
  std::string frames = Zstd(data.substr(0, 2000)) + Zstd(data.substr(2000));
  Chunk c;
  c.size = data.size();
  c.compressed_size = frames.size();
  c.digest = ChunkDigest::Of(kKey, Sha256::Of(data));
  c.has_digest = true;
  std::string out(data.size(), '\0');
  ASSERT_TRUE(DecodeChunk(LayerFormat::kZstdChunked, kKey, c, frames, absl::MakeSpan(out)).ok());
  EXPECT_EQ(out, data);

  std::string longer = frames + Zstd("x");  // more output than declared
  c.compressed_size = longer.size();
  absl::Status s = DecodeChunk(LayerFormat::kZstdChunked, kKey, c, longer, absl::MakeSpan(out));
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  std::string shorter = Zstd(data.substr(0, 4999));
  c.compressed_size = shorter.size();
  std::string out2(data.size(), '\0');
  s = DecodeChunk(LayerFormat::kZstdChunked, kKey, c, shorter, absl::MakeSpan(out2));
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;

  Chunk z;
  z.zeros = true;
  z.size = 4096;
  z.digest = ChunkDigest::Of(kKey, Sha256::Of(std::string(4096, '\0')));
  z.has_digest = true;
  std::string zout(4096, 'x');
  ASSERT_TRUE(DecodeChunk(LayerFormat::kZstdChunked, kKey, z, {}, absl::MakeSpan(zout)).ok());
  EXPECT_EQ(zout, std::string(4096, '\0'));
}

std::string Skippable(std::string_view payload) {
  std::string h("\x50\x2a\x4d\x18", 4);
  uint32_t n = payload.size();
  for (int i = 0; i < 4; ++i) h.push_back(static_cast<char>(n >> (8 * i)));
  return h + std::string(payload);
}

TEST(OpenLayer, ZstdChunkedLayer) {
  std::string data = Pattern(3000, 9);
  std::string blob = Zstd(std::string(512, '\0'));  // stands for the tar header frame
  uint64_t off = blob.size();
  blob += Zstd(data);
  uint64_t end = blob.size();
  std::string json = StrCat(
      R"({"version":1,"entries":[{"type":"reg","name":"f","size":3000,"offset":)", off,
      R"(,"endOffset":)", end, R"(,"digest":")", Sha256::Of(data).ToString(), R"("}]})");
  std::string manifest = Zstd(json);
  ZstdChunkedLocation loc;
  loc.manifest_offset = blob.size() + 8;
  loc.manifest_length = manifest.size();
  loc.manifest_uncompressed_length = json.size();
  blob += Skippable(manifest);
  blob += Skippable(EncodeZstdChunkedFooter(loc));
  MemoryBlobSource source(blob);
  auto layer = OpenLayer(source, OpenOptions{});
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ((*layer)->index.format(), LayerFormat::kZstdChunked);
  EXPECT_EQ((*layer)->toc_digest, Sha256::Of(json));
  EXPECT_EQ(ReadFile(source, **layer, (*layer)->index.LookupPath("f")).value_or(""), data);

  // With the manifest position annotated, OpenLayer reads the manifest and nothing else.
  OpenOptions annotated;
  annotated.annotations[kZstdChunkedManifestPositionAnnotation] =
      StrCat(loc.manifest_offset, ":", loc.manifest_length, ":", loc.manifest_uncompressed_length,
             ":1");
  CountingBlobSource counting(&source);
  ASSERT_TRUE(OpenLayer(counting, annotated).ok());
  EXPECT_EQ(counting.reads(), 1u);  // no eStargz footer probe

  // stargz-snapshotter puts the JSON's digest in the toc.digest annotation for zstd:chunked too.
  OpenOptions options;
  options.annotations[kEstargzTocDigestAnnotation] = Sha256::Of(json).ToString();
  EXPECT_TRUE(OpenLayer(source, options).ok());
  options.annotations[kEstargzTocDigestAnnotation] = Sha256::Of("other").ToString();
  auto bad = OpenLayer(source, options);
  EXPECT_TRUE(absl::IsDataLoss(bad.status())) << bad.status();
}

}  // namespace
}  // namespace lazysnap

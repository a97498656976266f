#include "format/zstd_chunked.h"

#include <zstd.h>

#include <atomic>
#include <vector>

#include "absl/strings/escaping.h"
#include "base/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lazysnap {
namespace {

using ::testing::HasSubstr;

std::string Zstd(std::string_view data, int level = 3) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

std::string LE32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}
std::string Skippable(std::string_view payload) {
  return LE32(kZstdSkippableFrameMagic) + LE32(payload.size()) + std::string(payload);
}

// A zstd:chunked blob built the way containers/storage lays it out.
struct TestLayer {
  std::string blob;
  std::string json;
  std::string tar_split;
  std::string compressed_manifest;
  std::string compressed_tar_split;
  ZstdChunkedLocation loc;
  std::map<std::string, std::string> annotations;  // current-generation keys
};

const char kJson[] =
    R"({"version":1,"entries":[{"type":"dir","name":"etc/","mode":493},)"
    R"({"type":"reg","name":"etc/hosts","size":5,"offset":9,"endOffset":30}]})";

TestLayer MakeLayer(bool legacy, std::string json = kJson,
                    std::string compressed_manifest = "") {
  TestLayer l;
  l.json = std::move(json);
  l.tar_split =
      "{\"type\":2,\"payload\":\"" + absl::Base64Escape("hdr") + "\",\"position\":0}\n"
      "{\"type\":1,\"name\":\"etc/hosts\",\"size\":5,\"payload\":\"AAAAAAAAAAA=\",\"position\":1}\n";
  l.blob = Zstd("tar header bytes") + Zstd("hello") + Zstd(std::string(1024, '\0'));
  l.compressed_manifest =
      compressed_manifest.empty() ? Zstd(l.json) : std::move(compressed_manifest);
  l.loc.manifest_offset = l.blob.size() + kZstdSkippableHeaderSize;
  l.loc.manifest_length = l.compressed_manifest.size();
  l.loc.manifest_uncompressed_length = l.json.size();
  l.blob += Skippable(l.compressed_manifest);
  if (!legacy) {
    l.compressed_tar_split = Zstd(l.tar_split);
    l.loc.tar_split_offset = l.blob.size() + kZstdSkippableHeaderSize;
    l.loc.tar_split_length = l.compressed_tar_split.size();
    l.loc.tar_split_uncompressed_length = l.tar_split.size();
    l.blob += Skippable(l.compressed_tar_split);
    l.blob += Skippable(EncodeZstdChunkedFooter(l.loc));
  } else {
    l.blob += Skippable(EncodeZstdChunkedFooter(l.loc).substr(0, 32) +
                        kZstdChunkedLegacyFooterMagic);
  }
  const std::string p = "io.github.containers.zstd-chunked.";
  l.annotations[p + "manifest-checksum"] = Sha256::Of(l.compressed_manifest).ToString();
  l.annotations[p + "manifest-position"] =
      StrCat(l.loc.manifest_offset, ":", l.loc.manifest_length, ":",
             l.loc.manifest_uncompressed_length, ":1");
  if (!legacy) {
    l.annotations[p + "tarsplit-position"] =
        StrCat(l.loc.tar_split_offset, ":", l.loc.tar_split_length, ":",
               l.loc.tar_split_uncompressed_length);
  }
  return l;
}

// Counts reads, to show which paths touch the blob.
class CountingBlob : public MemoryBlobSource {
 public:
  using MemoryBlobSource::MemoryBlobSource;
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override {
    ++reads;
    last_offset = offset;
    return MemoryBlobSource::ReadAt(offset, buf);
  }
  std::atomic<int> reads{0};
  uint64_t last_offset = 0;
};

absl::StatusOr<RawToc> Read(const std::string& blob,
                            std::map<std::string, std::string> annotations = {},
                            LayerLimits limits = {}) {
  MemoryBlobSource src(blob);
  OpenOptions o;
  o.annotations = std::move(annotations);
  o.limits = limits;
  return ReadZstdChunkedToc(src, o);
}

TEST(ZstdChunkedFooter, EncodeParseRoundTrip) {
  ZstdChunkedLocation loc;
  loc.manifest_offset = 0x0102030405060708ull;
  loc.manifest_length = 2;
  loc.manifest_uncompressed_length = 3;
  loc.tar_split_offset = 5;
  loc.tar_split_length = 6;
  loc.tar_split_uncompressed_length = 7;
  std::string tail = Skippable(EncodeZstdChunkedFooter(loc));
  ASSERT_EQ(tail.size(), kZstdChunkedTailSize);
  EXPECT_EQ(tail.substr(tail.size() - 8), "GNUlInUx");
  auto got = ParseZstdChunkedFooter(tail);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->manifest_offset, loc.manifest_offset);
  EXPECT_EQ(got->manifest_length, 2u);
  EXPECT_EQ(got->manifest_uncompressed_length, 3u);
  EXPECT_EQ(got->manifest_type, 1u);
  EXPECT_EQ(got->tar_split_offset, 5u);
  EXPECT_EQ(got->tar_split_length, 6u);
  EXPECT_EQ(got->tar_split_uncompressed_length, 7u);
  EXPECT_FALSE(got->legacy_footer);
}

TEST(ZstdChunkedFooter, ParsesHandWrittenBytes) {
  // The values of containers/storage's TestGenerateAndReadFooter (type 1, offset 2, lengths 3
  // and 4, tar-split 5/6/7), laid out by hand as its footerDataToBlob does: not through
  // EncodeZstdChunkedFooter, so a symmetric encode/decode mistake cannot hide.
  std::string bytes = absl::HexStringToBytes(
      "502a4d18" "40000000"                  // skippable frame, 64-byte payload
      "0200000000000000" "0300000000000000"  // manifest offset, compressed length
      "0400000000000000" "0100000000000000"  // uncompressed length, manifest type
      "0500000000000000" "0600000000000000"  // tar-split offset, compressed length
      "0700000000000000" "474e556c496e5578"  // tar-split uncompressed length, "GNUlInUx"
  );
  auto got = ParseZstdChunkedFooter(bytes);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->manifest_offset, 2u);
  EXPECT_EQ(got->manifest_length, 3u);
  EXPECT_EQ(got->manifest_uncompressed_length, 4u);
  EXPECT_EQ(got->manifest_type, 1u);
  EXPECT_EQ(got->tar_split_offset, 5u);
  EXPECT_EQ(got->tar_split_length, 6u);
  EXPECT_EQ(got->tar_split_uncompressed_length, 7u);
  EXPECT_EQ(bytes.substr(8), EncodeZstdChunkedFooter(*got));

  // The legacy 40-byte footer, magic "GnUlInUx".
  std::string legacy = absl::HexStringToBytes(
      "502a4d18" "28000000"
      "0200000000000000" "0300000000000000" "0400000000000000" "0100000000000000"
      "476e556c496e5578");
  auto old = ParseZstdChunkedFooter(legacy);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_TRUE(old->legacy_footer);
  EXPECT_EQ(old->manifest_offset, 2u);
  EXPECT_EQ(old->manifest_length, 3u);
  EXPECT_EQ(old->manifest_uncompressed_length, 4u);
  EXPECT_EQ(old->tar_split_offset, 0u);
}

TEST(ZstdChunkedFooter, NotZstdChunkedIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(ParseZstdChunkedFooter("").status()));
  EXPECT_TRUE(absl::IsNotFound(ParseZstdChunkedFooter("GNUlInU").status()));
  EXPECT_TRUE(absl::IsNotFound(ParseZstdChunkedFooter(std::string(72, 'x')).status()));
}

TEST(ZstdChunkedFooter, MagicWithoutFrameIsDataLoss) {
  std::string tail = std::string(64, '\0') + "GNUlInUx";  // no skippable header
  auto got = ParseZstdChunkedFooter(tail);
  EXPECT_TRUE(absl::IsDataLoss(got.status())) << got.status();
  // Right magic, wrong size in the frame header (a legacy footer size with the new magic).
  std::string wrong = LE32(kZstdSkippableFrameMagic) + LE32(40) + std::string(56, '\0') +
                      "GNUlInUx";
  EXPECT_TRUE(absl::IsDataLoss(ParseZstdChunkedFooter(wrong).status()));
  // Too short to hold the whole footer.
  EXPECT_TRUE(absl::IsDataLoss(ParseZstdChunkedFooter("abcGNUlInUx").status()));
}

TEST(ZstdChunkedToc, ReadsCurrentFooterWithoutAnnotations) {
  TestLayer l = MakeLayer(/*legacy=*/false);
  auto toc = Read(l.blob);
  ASSERT_TRUE(toc.ok()) << toc.status();
  EXPECT_EQ(toc->json, l.json);
  EXPECT_EQ(toc->format, LayerFormat::kZstdChunked);
  EXPECT_EQ(toc->toc_offset, l.loc.manifest_offset);
}

TEST(ZstdChunkedToc, ReadsLegacyFooter) {
  TestLayer l = MakeLayer(/*legacy=*/true);
  auto toc = Read(l.blob);
  ASSERT_TRUE(toc.ok()) << toc.status();
  EXPECT_EQ(toc->json, l.json);
  MemoryBlobSource src(l.blob);
  auto loc = LocateZstdChunked(src, {});
  ASSERT_TRUE(loc.ok());
  EXPECT_TRUE(loc->legacy_footer);
  EXPECT_EQ(loc->tar_split_offset, 0u);
}

TEST(ZstdChunkedToc, UsesPositionAnnotationWithoutReadingFooter) {
  TestLayer l = MakeLayer(/*legacy=*/false);
  std::string blob = l.blob;
  blob.back() = 'X';  // footer magic destroyed: only the annotation can find the TOC
  CountingBlob src(blob);
  OpenOptions o;
  o.annotations = l.annotations;
  auto toc = ReadZstdChunkedToc(src, o);
  ASSERT_TRUE(toc.ok()) << toc.status();
  EXPECT_EQ(toc->json, l.json);
  EXPECT_EQ(src.reads, 1);  // just the manifest frame
  EXPECT_EQ(src.last_offset, l.loc.manifest_offset - kZstdSkippableHeaderSize);
}

TEST(ZstdChunkedToc, FooterPathReadsOnceWhenTheManifestIsNearTheEnd) {
  TestLayer l = MakeLayer(/*legacy=*/false);
  CountingBlob src(l.blob);
  auto toc = ReadZstdChunkedToc(src, {});
  ASSERT_TRUE(toc.ok()) << toc.status();
  EXPECT_EQ(toc->json, l.json);
  EXPECT_EQ(src.reads, 1);
}

TEST(ZstdChunkedToc, FooterPathReadsTheManifestSeparatelyWhenItIsFarFromTheEnd) {
  // An incompressible manifest bigger than the speculative tail read.
  std::string json = "{\"version\":1,\"entries\":[],\"pad\":\"";
  uint64_t x = 88172645463325252ull;
  while (json.size() < 4 * kZstdChunkedSpeculativeTailSize) {  // hex digits: ~2:1
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    json += "0123456789abcdef"[x & 15];
  }
  json += "\"}";
  TestLayer l = MakeLayer(/*legacy=*/false, json);
  ASSERT_GT(l.compressed_manifest.size(), kZstdChunkedSpeculativeTailSize);
  CountingBlob src(l.blob);
  auto toc = ReadZstdChunkedToc(src, {});
  ASSERT_TRUE(toc.ok()) << toc.status();
  EXPECT_EQ(toc->json, json);
  EXPECT_EQ(src.reads, 2);
  EXPECT_EQ(src.last_offset, l.loc.manifest_offset - kZstdSkippableHeaderSize);
}

TEST(ZstdChunkedToc, AcceptsLegacyAnnotationPrefix) {
  TestLayer l = MakeLayer(/*legacy=*/true);
  std::string blob = l.blob;
  blob.back() = 'X';
  std::map<std::string, std::string> legacy;
  for (const auto& [k, v] : l.annotations) {
    legacy["io.containers.zstd-chunked." + k.substr(k.rfind('.') + 1)] = v;
  }
  auto toc = Read(blob, legacy);
  ASSERT_TRUE(toc.ok()) << toc.status();
  EXPECT_EQ(toc->json, l.json);
}

TEST(ZstdChunkedToc, ChecksumMismatchIsDataLoss) {
  TestLayer l = MakeLayer(false);
  auto a = l.annotations;
  a["io.github.containers.zstd-chunked.manifest-checksum"] = Sha256::Of("other").ToString();
  auto toc = Read(l.blob, a);
  EXPECT_TRUE(absl::IsDataLoss(toc.status())) << toc.status();
  EXPECT_THAT(toc.status().message(), HasSubstr("checksum"));
  // The checksum is verified when the position comes from the footer, too.
  a.erase("io.github.containers.zstd-chunked.manifest-position");
  EXPECT_TRUE(absl::IsDataLoss(Read(l.blob, a).status()));
  // And the right one passes in both cases.
  a["io.github.containers.zstd-chunked.manifest-checksum"] =
      Sha256::Of(l.compressed_manifest).ToString();
  EXPECT_TRUE(Read(l.blob, a).ok());
}

TEST(ZstdChunkedToc, ModifiedManifestByteIsCaughtByChecksum) {
  TestLayer l = MakeLayer(false);
  std::string blob = l.blob;
  blob[l.loc.manifest_offset + l.loc.manifest_length / 2] ^= 1;
  EXPECT_TRUE(absl::IsDataLoss(Read(blob, l.annotations).status()));
}

TEST(ZstdChunkedToc, MalformedAnnotationsAreInvalidArgument) {
  TestLayer l = MakeLayer(false);
  const std::string pos = "io.github.containers.zstd-chunked.manifest-position";
  for (const char* bad : {"1:2:3", "1:2:3:4:5", "a:b:c:d", "-1:2:3:1", "1::3:1", "",
                          "99999999999999999999999:1:1:1", " 1:2:3:1"}) {
    auto a = l.annotations;
    a[pos] = bad;
    EXPECT_TRUE(absl::IsInvalidArgument(Read(l.blob, a).status())) << bad;
  }
  auto a = l.annotations;
  a["io.github.containers.zstd-chunked.manifest-checksum"] = "sha256:xyz";
  EXPECT_TRUE(absl::IsInvalidArgument(Read(l.blob, a).status()));
  a = l.annotations;
  a["io.github.containers.zstd-chunked.tarsplit-position"] = "1:2";
  EXPECT_TRUE(absl::IsInvalidArgument(Read(l.blob, a).status()));
}

TEST(ZstdChunkedToc, NotZstdChunkedIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(Read("").status()));
  EXPECT_TRUE(absl::IsNotFound(Read("abc").status()));
  EXPECT_TRUE(absl::IsNotFound(Read(Zstd("a plain zstd layer")).status()));
  EXPECT_TRUE(absl::IsNotFound(Read(std::string(4096, '\x1f')).status()));
}

// Writes `loc` as the footer of `l`'s blob in place of the real one.
std::string WithFooter(const TestLayer& l, const ZstdChunkedLocation& loc) {
  std::string blob = l.blob.substr(0, l.blob.size() - kZstdChunkedTailSize);
  return blob + Skippable(EncodeZstdChunkedFooter(loc));
}

TEST(ZstdChunkedToc, PositionsOutsideTheBlobAreDataLoss) {
  TestLayer l = MakeLayer(false);
  struct Case {
    uint64_t offset, length;
  };
  for (Case c : std::vector<Case>{{l.blob.size(), 10},
                                  {l.loc.manifest_offset, l.blob.size()},
                                  {~0ull - 2, 10},                 // offset + length overflows
                                  {l.loc.manifest_offset, ~0ull},  // length alone overflows
                                  {4, l.loc.manifest_length}}) {   // no room for the header
    ZstdChunkedLocation loc = l.loc;
    loc.manifest_offset = c.offset;
    loc.manifest_length = c.length;
    LayerLimits huge;
    huge.max_toc_bytes = ~0ull >> 8;
    auto toc = Read(WithFooter(l, loc), {}, huge);
    EXPECT_TRUE(absl::IsDataLoss(toc.status()) || absl::IsInvalidArgument(toc.status()))
        << c.offset << " " << c.length << " " << toc.status();
  }
  // Tar-split out of range is caught while locating, too.
  ZstdChunkedLocation loc = l.loc;
  loc.tar_split_offset = l.blob.size() + 100;
  EXPECT_TRUE(absl::IsDataLoss(Read(WithFooter(l, loc)).status()));
}

TEST(ZstdChunkedToc, PositionNotAtASkippableFrameIsDataLoss) {
  TestLayer l = MakeLayer(false);
  ZstdChunkedLocation loc = l.loc;
  loc.manifest_offset = 8;  // inside the first data frame
  auto toc = Read(WithFooter(l, loc));
  EXPECT_TRUE(absl::IsDataLoss(toc.status())) << toc.status();
  EXPECT_THAT(toc.status().message(), HasSubstr("skippable frame"));
}

TEST(ZstdChunkedToc, UnsupportedManifestTypeIsInvalidArgument) {
  TestLayer l = MakeLayer(false);
  ZstdChunkedLocation loc = l.loc;
  loc.manifest_type = 2;
  auto toc = Read(WithFooter(l, loc));
  EXPECT_TRUE(absl::IsInvalidArgument(toc.status())) << toc.status();
}

TEST(ZstdChunkedToc, ManifestLargerThanLimitIsInvalidArgument) {
  TestLayer l = MakeLayer(false);
  LayerLimits limits;
  limits.max_toc_bytes = l.json.size() - 1;
  auto toc = Read(l.blob, {}, limits);
  EXPECT_TRUE(absl::IsInvalidArgument(toc.status())) << toc.status();
  limits.max_toc_bytes = l.json.size();
  EXPECT_TRUE(Read(l.blob, {}, limits).ok());
}

TEST(ZstdChunkedToc, DeclaredSizeMustMatch) {
  TestLayer l = MakeLayer(false);
  for (uint64_t declared : {l.json.size() - 1, l.json.size() + 1, uint64_t{0}}) {
    ZstdChunkedLocation loc = l.loc;
    loc.manifest_uncompressed_length = declared;
    auto toc = Read(WithFooter(l, loc));
    EXPECT_TRUE(absl::IsDataLoss(toc.status())) << declared << " " << toc.status();
  }
}

TEST(ZstdChunkedToc, DecompressionBombStopsAtDeclaredSize) {
  // 64 MiB of zeros compress to a few KiB; the footer declares 1000 bytes.
  std::string zeros(64u << 20, '\0');
  std::string bomb = Zstd(zeros, 1);
  zeros.clear();
  zeros.shrink_to_fit();
  TestLayer l = MakeLayer(false, std::string(1000, ' '), bomb);
  auto toc = Read(l.blob, l.annotations);
  EXPECT_TRUE(absl::IsDataLoss(toc.status())) << toc.status();
  EXPECT_THAT(toc.status().message(), HasSubstr("more than the declared 1000"));
}

TEST(ZstdChunkedToc, TruncatedOrCorruptFrameIsDataLoss) {
  std::string good = Zstd(kJson);
  TestLayer t = MakeLayer(false, kJson, good.substr(0, good.size() - 3));
  auto toc = Read(t.blob);
  EXPECT_TRUE(absl::IsDataLoss(toc.status())) << toc.status();
  EXPECT_THAT(toc.status().message(), HasSubstr("truncated"));

  std::string corrupt = good;
  corrupt[corrupt.size() / 2] ^= 0x55;
  corrupt[corrupt.size() / 2 + 1] ^= 0x55;
  TestLayer c = MakeLayer(false, kJson, corrupt);
  EXPECT_TRUE(absl::IsDataLoss(Read(c.blob).status()));

  TestLayer g = MakeLayer(false, kJson, "not zstd at all");
  EXPECT_TRUE(absl::IsDataLoss(Read(g.blob).status()));
}

TEST(ZstdChunkedDecompress, ExactSizeAndAbsurdDeclarations) {
  std::string z = Zstd("0123456789");
  auto ok = DecompressZstdExact(z, 10, "x");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, "0123456789");
  EXPECT_TRUE(absl::IsDataLoss(DecompressZstdExact(z, 9, "x").status()));
  EXPECT_TRUE(absl::IsDataLoss(DecompressZstdExact(z, 11, "x").status()));
  EXPECT_TRUE(absl::IsDataLoss(DecompressZstdExact("", 0, "x").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(DecompressZstdExact(z, ~0ull, "x").status()));
  // A big declared size allocates with the real output, not up front.
  auto big = DecompressZstdExact(z, uint64_t{1} << 39, "x");
  EXPECT_TRUE(absl::IsDataLoss(big.status())) << big.status();
}

TEST(ZstdChunkedToc, ManifestOfSeveralFramesIsConcatenated) {
  std::string json = kJson;
  std::string two = Zstd(json.substr(0, 10)) + Skippable("pad") + Zstd(json.substr(10));
  TestLayer l = MakeLayer(false, json, two);
  auto toc = Read(l.blob, l.annotations);
  ASSERT_TRUE(toc.ok()) << toc.status();
  EXPECT_EQ(toc->json, json);
}

TEST(ZstdChunkedTarSplit, ReadsAndVerifies) {
  TestLayer l = MakeLayer(false);
  MemoryBlobSource src(l.blob);
  auto loc = LocateZstdChunked(src, {});
  ASSERT_TRUE(loc.ok()) << loc.status();
  Sha256 digest = Sha256::Of(l.compressed_tar_split);
  auto ts = ReadZstdChunkedTarSplit(src, *loc, digest, 1 << 20);
  ASSERT_TRUE(ts.ok()) << ts.status();
  EXPECT_EQ(*ts, l.tar_split);
  EXPECT_TRUE(ReadZstdChunkedTarSplit(src, *loc, std::nullopt, 1 << 20).ok());
  EXPECT_TRUE(
      absl::IsDataLoss(ReadZstdChunkedTarSplit(src, *loc, Sha256::Of("x"), 1 << 20).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ReadZstdChunkedTarSplit(src, *loc, digest, l.tar_split.size() - 1).status()));
  // The deprecated annotation checksum is honoured too.
  auto a = l.annotations;
  a[kZstdChunkedTarsplitChecksumAnnotation] = Sha256::Of("y").ToString();
  OpenOptions o;
  o.annotations = a;
  auto loc2 = LocateZstdChunked(src, o);
  ASSERT_TRUE(loc2.ok()) << loc2.status();
  EXPECT_TRUE(absl::IsDataLoss(ReadZstdChunkedTarSplit(src, *loc2, digest, 1 << 20).status()));
}

TEST(ZstdChunkedTarSplit, LegacyLayerHasNone) {
  TestLayer l = MakeLayer(true);
  MemoryBlobSource src(l.blob);
  auto loc = LocateZstdChunked(src, {});
  ASSERT_TRUE(loc.ok());
  EXPECT_TRUE(absl::IsNotFound(ReadZstdChunkedTarSplit(src, *loc, std::nullopt, 1 << 20).status()));
}

TEST(ZstdChunkedTarSplit, ParsesEntries) {
  TestLayer l = MakeLayer(false);
  std::string ts = l.tar_split + "\n{\"type\":1,\"name_raw\":\"" + absl::Base64Escape("\xff\xfe") +
                   "\",\"size\":0,\"payload\":null,\"position\":2}\n";
  std::vector<TarSplitEntry> got;
  ASSERT_TRUE(ForEachTarSplitEntry(ts, [&](const TarSplitEntry& e) {
                got.push_back(e);
                return absl::OkStatus();
              }).ok());
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].type, TarSplitEntry::kSegment);
  EXPECT_EQ(got[0].payload, "hdr");
  EXPECT_EQ(got[1].type, TarSplitEntry::kFile);
  EXPECT_EQ(got[1].name, "etc/hosts");
  EXPECT_EQ(got[1].size, 5u);
  EXPECT_EQ(got[1].payload, std::string(8, '\0'));
  EXPECT_EQ(got[1].position, 1u);
  EXPECT_EQ(got[2].name, "\xff\xfe");
  // The callback's error stops the walk and is returned.
  int calls = 0;
  auto st = ForEachTarSplitEntry(ts, [&](const TarSplitEntry&) {
    ++calls;
    return absl::CancelledError("stop");
  });
  EXPECT_TRUE(absl::IsCancelled(st));
  EXPECT_EQ(calls, 1);
}

TEST(ZstdChunkedTarSplit, MalformedLinesAreInvalidArgument) {
  auto ok = [](const TarSplitEntry&) { return absl::OkStatus(); };
  for (const char* bad : {"{", "[]", "{\"type\":3}", "{\"type\":\"1\"}", "{}",
                          "{\"type\":2,\"payload\":\"!!\"}", "{\"type\":1,\"size\":-1}",
                          "{\"type\":1,\"name\":5}"}) {
    auto st = ForEachTarSplitEntry(StrCat("{\"type\":2,\"payload\":\"\"}\n", bad), ok);
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << bad;
    EXPECT_THAT(st.message(), HasSubstr("line 2")) << bad;
  }
}


}  // namespace
}  // namespace lazysnap

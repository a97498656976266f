#include "format/zstd_chunked.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <zstd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

#include "absl/strings/escaping.h"
#include "base/stream.h"
#include "base/strings.h"
#include "format/convert.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

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


bool FindChecksumForTest(const std::map<std::string, std::string>& a) {
  return a.count("io.github.containers.zstd-chunked.manifest-checksum") > 0 ||
         a.count("io.containers.zstd-chunked.manifest-checksum") > 0;
}

// ---------------------------------------------------------------------------------------
// Interop with containers/storage (test/interop/zstd_chunked/run.sh sets these variables):
//   LAZYSNAP_INTEROP_ZSTD_CHUNKED_BLOB         a layer written by containers/storage
//   LAZYSNAP_INTEROP_ZSTD_CHUNKED_ANNOTATIONS  JSON object: the descriptor annotations it made
//   LAZYSNAP_INTEROP_ZSTD_CHUNKED_ROOT         the original tar, extracted
// Every regular file is rebuilt from its chunks, each chunk verified, and compared with the
// original.

std::string ReadLocalFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string CleanName(std::string name) {
  while (name.rfind("./", 0) == 0) name.erase(0, 2);
  while (!name.empty() && name.front() == '/') name.erase(0, 1);
  while (!name.empty() && name.back() == '/') name.pop_back();
  return name;
}

TEST(ZstdChunkedInterop, ReadsContainersStorageLayer) {
  const char* blob_path = std::getenv("LAZYSNAP_INTEROP_ZSTD_CHUNKED_BLOB");
  const char* ann_path = std::getenv("LAZYSNAP_INTEROP_ZSTD_CHUNKED_ANNOTATIONS");
  const char* root_env = std::getenv("LAZYSNAP_INTEROP_ZSTD_CHUNKED_ROOT");
  if (blob_path == nullptr || ann_path == nullptr || root_env == nullptr) {
    GTEST_SKIP() << "run test/interop/zstd_chunked/run.sh";
  }
  const std::filesystem::path root(root_env);
  auto blob = FileBlobSource::Open(blob_path);
  ASSERT_TRUE(blob.ok()) << blob.status();
  nlohmann::json ann = nlohmann::json::parse(ReadLocalFile(ann_path));
  OpenOptions with;
  for (auto& [k, v] : ann.items()) with.annotations[k] = v.get<std::string>();
  ASSERT_TRUE(FindChecksumForTest(with.annotations)) << "writer made no manifest-checksum";

  // Found by the annotations (checksum verified) and by the footer alone: same TOC.
  auto toc = ReadZstdChunkedToc(**blob, with);
  ASSERT_TRUE(toc.ok()) << toc.status();
  auto by_footer = ReadZstdChunkedToc(**blob, OpenOptions());
  ASSERT_TRUE(by_footer.ok()) << by_footer.status();
  EXPECT_EQ(toc->json, by_footer->json);
  EXPECT_EQ(toc->toc_offset, by_footer->toc_offset);

  nlohmann::json j = nlohmann::json::parse(toc->json);
  const auto& entries = j.at("entries");
  size_t regular = 0, chunks_checked = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    const std::string type = e.at("type");
    const std::string name = CleanName(e.at("name"));
    SCOPED_TRACE(name);
    const std::filesystem::path local = root / name;
    if (type == "dir") {
      EXPECT_TRUE(std::filesystem::is_directory(std::filesystem::symlink_status(local)));
      continue;
    }
    if (type == "symlink") {
      EXPECT_EQ(std::filesystem::read_symlink(local).string(), e.value("linkName", ""));
      continue;
    }
    if (type == "hardlink") {
      ++regular;
      EXPECT_TRUE(ReadLocalFile(local) ==
                  ReadLocalFile(root / CleanName(e.value("linkName", ""))));
      continue;
    }
    if (type != "reg") continue;
    ++regular;
    // The file's chunks: this entry, then any "chunk" entries right after it.
    struct Piece {
      uint64_t offset, end, size;
      std::string digest;
      bool zeros;
    };
    std::vector<Piece> pieces;
    const uint64_t size = e.value("size", uint64_t{0});
    if (!e.contains("chunkSize")) {
      pieces.push_back({e.value("offset", uint64_t{0}), e.value("endOffset", uint64_t{0}), size,
                        e.value("digest", ""), false});
    } else {
      pieces.push_back({e.value("offset", uint64_t{0}), 0, e.at("chunkSize"),
                        e.value("chunkDigest", ""), e.value("chunkType", "") == "zeros"});
      while (i + 1 < entries.size() && entries[i + 1].at("type") == "chunk") {
        const auto& c = entries[++i];
        pieces.back().end = c.at("offset");
        pieces.push_back({c.at("offset"), 0, c.at("chunkSize"), c.value("chunkDigest", ""),
                          c.value("chunkType", "") == "zeros"});
      }
      pieces.back().end = e.value("endOffset", uint64_t{0});
    }
    std::string data;
    for (const Piece& p : pieces) {
      if (size == 0) break;
      ASSERT_LE(p.offset, p.end);
      auto compressed = ReadRange(**blob, p.offset, p.end - p.offset);
      ASSERT_TRUE(compressed.ok()) << compressed.status();
      auto plain = DecompressZstdExact(*compressed, p.size, name);
      ASSERT_TRUE(plain.ok()) << plain.status();
      if (p.zeros) {
        EXPECT_EQ(*plain, std::string(p.size, '\0'));
      }
      ASSERT_FALSE(p.digest.empty());
      EXPECT_EQ(Sha256::Of(*plain).ToString(), p.digest);
      data += *plain;
      ++chunks_checked;
    }
    EXPECT_EQ(data.size(), size);
    const std::string original = ReadLocalFile(local);
    EXPECT_TRUE(data == original) << "content differs from the original: " << data.size()
                                  << " bytes vs " << original.size();
  }
  // Every regular file of the original is in the TOC.
  size_t local_regular = 0;
  for (const auto& f : std::filesystem::recursive_directory_iterator(root)) {
    if (f.is_regular_file() && !f.is_symlink()) ++local_regular;
  }
  EXPECT_EQ(regular, local_regular);
  EXPECT_GT(chunks_checked, 0u);

  // And through the reader the snapshotter uses: OpenLayer (format detection, TOC parsing into
  // a LayerIndex) and ReadFile (chunk reads, each verified) give every file as in the original.
  auto layer = OpenLayer(**blob, with);
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ((*layer)->index.format(), LayerFormat::kZstdChunked);
  size_t read_through_layer = 0;
  for (EntryId id = 0; id < (*layer)->index.size(); ++id) {
    const Entry& e = (*layer)->index.entry(id);
    const std::string path = (*layer)->index.Path(id);
    SCOPED_TRACE(path);
    const std::filesystem::path local = root / path;
    if (S_ISREG(e.mode)) {
      auto data = ReadFile(**blob, **layer, id);
      ASSERT_TRUE(data.ok()) << data.status();
      const std::string original = ReadLocalFile(local);
      EXPECT_TRUE(*data == original) << "OpenLayer/ReadFile: content differs, " << data->size()
                                     << " bytes vs " << original.size();
      ++read_through_layer;
    } else if (S_ISLNK(e.mode)) {
      EXPECT_EQ(std::filesystem::read_symlink(local).string(),
                (*layer)->index.str(e.link));
    } else if (S_ISDIR(e.mode)) {
      EXPECT_TRUE(std::filesystem::is_directory(std::filesystem::symlink_status(local)));
    }
    if (id == kRootEntry) continue;  // may be synthesized
    struct stat st;
    ASSERT_EQ(lstat(local.c_str(), &st), 0);
    EXPECT_EQ(e.mode & S_IFMT, st.st_mode & S_IFMT);
    if (!S_ISLNK(e.mode)) EXPECT_EQ(e.mode & 07777, st.st_mode & 07777);
    EXPECT_EQ(e.uid, st.st_uid);
    EXPECT_EQ(e.gid, st.st_gid);
    if (!S_ISDIR(e.mode)) EXPECT_EQ(e.mtime_sec, st.st_mtim.tv_sec);
    if (S_ISCHR(e.mode) || S_ISBLK(e.mode)) {
      EXPECT_EQ(e.dev_major, major(st.st_rdev));
      EXPECT_EQ(e.dev_minor, minor(st.st_rdev));
    }
    if (S_ISREG(e.mode) || S_ISDIR(e.mode)) {
      std::map<std::string, std::string> want, got;
      std::string names(65536, '\0');
      ssize_t n = llistxattr(local.c_str(), names.data(), names.size());
      ASSERT_GE(n, 0);
      for (size_t at = 0; at < static_cast<size_t>(n); at += strlen(names.data() + at) + 1) {
        std::string name(names.data() + at);
        std::string value(65536, '\0');
        ssize_t vn = lgetxattr(local.c_str(), name.c_str(), value.data(), value.size());
        ASSERT_GE(vn, 0) << name;
        want[name] = value.substr(0, vn);
      }
      for (const Xattr& x : (*layer)->index.xattrs().subspan(e.xattrs_begin, e.xattrs_count)) {
        got[std::string((*layer)->index.str(x.name))] = std::string((*layer)->index.str(x.value));
      }
      EXPECT_EQ(got, want);
    }
  }
  EXPECT_EQ(read_through_layer, local_regular);
  std::cout << "interop: " << entries.size() << " TOC entries, " << regular
            << " regular files, " << chunks_checked << " chunks verified\n";
}

// The other direction (run.sh, then containers/storage's reader checks the result):
//   LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_TAR          input tar
//   LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_OUT          where lazysnap writes the zstd:chunked layer
//   LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_ANNOTATIONS  where its descriptor annotations go (JSON)
TEST(ZstdChunkedInterop, WritesLayerForContainersStorage) {
  const char* tar = std::getenv("LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_TAR");
  const char* out_path = std::getenv("LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_OUT");
  const char* ann_path = std::getenv("LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_ANNOTATIONS");
  if (tar == nullptr || out_path == nullptr || ann_path == nullptr) {
    GTEST_SKIP() << "run test/interop/zstd_chunked/run.sh";
  }
  auto in = FileInputStream::Open(tar);
  ASSERT_TRUE(in.ok()) << in.status();
  auto out = FileOutputStream::Create(out_path);
  ASSERT_TRUE(out.ok()) << out.status();
  ConvertOptions options;
  options.format = LayerFormat::kZstdChunked;
  options.chunk_size = 64 << 10;  // several chunks per large file
  auto r = ConvertLayer(**in, **out, options);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE((*out)->Close().ok());
  nlohmann::json ann = nlohmann::json::object();
  for (const auto& [k, v] : r->annotations) ann[k] = v;
  ASSERT_TRUE(WriteFileAtomically(ann_path, ann.dump(2) + "\n").ok());

  // lazysnap finds its own TOC both ways.
  auto blob = FileBlobSource::Open(out_path);
  ASSERT_TRUE(blob.ok()) << blob.status();
  OpenOptions with;
  with.annotations = r->annotations;
  auto toc = ReadZstdChunkedToc(**blob, with);
  ASSERT_TRUE(toc.ok()) << toc.status();
  auto by_footer = ReadZstdChunkedToc(**blob, OpenOptions());
  ASSERT_TRUE(by_footer.ok()) << by_footer.status();
  EXPECT_EQ(toc->json, by_footer->json);
  EXPECT_EQ(Sha256::Of(toc->json), r->toc_digest);
}

}  // namespace
}  // namespace lazysnap

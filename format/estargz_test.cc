#include "format/estargz.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/testing.h"
#include "format/estargz_testutil.h"
#include "format/testdata_estargz_golden.h"

namespace lazysnap {
namespace {

using ::testing::HasSubstr;
using testing::EstargzBuilder;
using testing::FromHex;

TEST(EstargzFooter, EncodesExactlyWhatTheGoWriterWrites) {
  std::string golden = FromHex(testdata::kGoldenEstargzHex);
  std::string footer = EncodeEstargzFooter(testdata::kGoldenEstargzTocOffset);
  ASSERT_EQ(footer.size(), kEstargzFooterSize);
  EXPECT_EQ(footer, golden.substr(golden.size() - kEstargzFooterSize));
}

TEST(EstargzFooter, RoundTripsOffsets) {
  for (uint64_t off : {0ull, 1ull, 0xabcdefull, 0x7fffffffffffffffull}) {
    std::string f = EncodeEstargzFooter(off);
    auto parsed = ParseEstargzFooter(StrCat("prefix bytes", f));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->toc_offset, off);
    EXPECT_EQ(parsed->footer_size, kEstargzFooterSize);
  }
}

TEST(EstargzFooter, ReadsLegacyStargzFooter) {
  std::string f = testing::LegacyFooter(123456);
  ASSERT_EQ(f.size(), kLegacyStargzFooterSize);
  auto parsed = ParseEstargzFooter(StrCat(std::string(100, 'x'), f));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->toc_offset, 123456u);
  EXPECT_EQ(parsed->footer_size, kLegacyStargzFooterSize);
}

TEST(EstargzFooter, NotFoundOnOtherBlobs) {
  EXPECT_TRUE(absl::IsNotFound(ParseEstargzFooter(std::string(100, '\0')).status()));
  EXPECT_TRUE(absl::IsNotFound(ParseEstargzFooter("short").status()));
  // A plain gzip member without the Extra field.
  EXPECT_TRUE(absl::IsNotFound(ParseEstargzFooter(testing::GzipMember("")).status()));
  std::string f = EncodeEstargzFooter(42);
  f[f.size() - 20] ^= 1;  // inside "STARGZ"
  EXPECT_FALSE(ParseEstargzFooter(f).ok());
}

TEST(EstargzFooter, RejectsNonHexOffset) {
  std::string f = EncodeEstargzFooter(42);
  f[16] = 'g';  // first hex digit of the offset
  // The gzip member is still valid (stored block, CRC covers no data), but the offset is not.
  auto parsed = ParseEstargzFooter(f);
  EXPECT_FALSE(parsed.ok());
}

TEST(ReadEstargzToc, ReadsGoldenBlobInOneRead) {
  MemoryBlobSource mem(FromHex(testdata::kGoldenEstargzHex));
  CountingBlobSource blob(&mem);
  auto raw = ReadEstargzToc(blob, OpenOptions{});
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ(raw->format, LayerFormat::kEstargz);
  EXPECT_EQ(raw->toc_offset, testdata::kGoldenEstargzTocOffset);
  EXPECT_EQ(Sha256::Of(raw->json).ToString(), testdata::kGoldenEstargzTocDigest);
  EXPECT_EQ(blob.reads(), 1u);
}

TEST(ReadEstargzToc, LargeTocNeedsASecondRead) {
  EstargzBuilder b;
  b.AddFile("a", "data");
  for (int i = 0; i < 3000; ++i) {
    b.AddDir(StrCat("dir", i, "/", Sha256::Of(std::to_string(i)).Hex()));
  }
  MemoryBlobSource mem(b.Finish());
  CountingBlobSource blob(&mem);
  auto raw = ReadEstargzToc(blob, OpenOptions{});
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ(raw->json, b.TocJson());
  EXPECT_EQ(blob.reads(), 2u);
}

TEST(ReadEstargzToc, LegacyFooterBlob) {
  EstargzBuilder b;
  b.AddFile("a", "data");
  MemoryBlobSource blob(b.Finish(/*legacy_footer=*/true));
  auto raw = ReadEstargzToc(blob, OpenOptions{});
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ(raw->json, b.TocJson());
}

TEST(ReadEstargzToc, NotFoundForPlainGzip) {
  MemoryBlobSource blob(testing::GzipMember(std::string(1000, 'a')));
  EXPECT_TRUE(absl::IsNotFound(ReadEstargzToc(blob, OpenOptions{}).status()));
  MemoryBlobSource tiny("x");
  EXPECT_TRUE(absl::IsNotFound(ReadEstargzToc(tiny, OpenOptions{}).status()));
}

TEST(ReadEstargzToc, TocOffsetBeyondBlob) {
  std::string blob_bytes = StrCat(std::string(10, 'x'), EncodeEstargzFooter(5000));
  MemoryBlobSource blob(blob_bytes);
  auto raw = ReadEstargzToc(blob, OpenOptions{});
  EXPECT_TRUE(absl::IsDataLoss(raw.status())) << raw.status();
  EXPECT_THAT(raw.status().message(), HasSubstr("beyond"));
}

TEST(ReadEstargzToc, TocOverLimit) {
  EstargzBuilder b;
  b.AddFile("a", std::string(100, 'z'));
  MemoryBlobSource blob(b.Finish());
  OpenOptions options;
  options.limits.max_toc_bytes = 64;
  auto raw = ReadEstargzToc(blob, options);
  EXPECT_TRUE(absl::IsInvalidArgument(raw.status())) << raw.status();
}

TEST(ReadEstargzToc, CorruptTocMember) {
  EstargzBuilder b;
  b.AddFile("a", "data");
  std::string bytes = b.Finish();
  bytes[b.size() + 30] ^= 0x55;  // inside the TOC's deflate stream
  MemoryBlobSource blob(bytes);
  auto raw = ReadEstargzToc(blob, OpenOptions{});
  EXPECT_FALSE(raw.ok());
  EXPECT_FALSE(absl::IsNotFound(raw.status()));
}

TEST(ReadEstargzToc, WrongTarMemberName) {
  std::string tar = testing::UstarHeader("other.json", '0', 2);
  tar.append("{}");
  tar.append(testing::TarPad(2));
  std::string bytes = testing::GzipMember(tar);
  bytes.append(EncodeEstargzFooter(0));
  MemoryBlobSource blob(bytes);
  auto raw = ReadEstargzToc(blob, OpenOptions{});
  EXPECT_TRUE(absl::IsDataLoss(raw.status())) << raw.status();
  EXPECT_THAT(raw.status().message(), HasSubstr("stargz.index.json"));
}

TEST(ReadEstargzToc, TruncatedBlobLosesFooter) {
  EstargzBuilder b;
  b.AddFile("a", "data");
  std::string bytes = b.Finish();
  bytes.resize(bytes.size() - 10);
  MemoryBlobSource blob(bytes);
  EXPECT_TRUE(absl::IsNotFound(ReadEstargzToc(blob, OpenOptions{}).status()));
}

TEST(GunzipRange, SkipsAndTakesExactly) {
  std::string member = testing::GzipMember("0123456789abcdef");
  std::string out(4, '\0');
  ASSERT_TRUE(GunzipRange(member, 3, absl::MakeSpan(out)).ok());
  EXPECT_EQ(out, "3456");
  std::string big(20, '\0');
  EXPECT_TRUE(absl::IsDataLoss(GunzipRange(member, 0, absl::MakeSpan(big))));
  EXPECT_TRUE(absl::IsDataLoss(GunzipRange(member.substr(0, 12), 0, absl::MakeSpan(out))));
}

TEST(GunzipRange, MemberLongerThanTheWantedBytes) {
  // Far more data after the wanted bytes than the fast path's slack: the streaming path.
  std::string tail(300000, 't');
  std::string member = testing::GzipMember(StrCat("skip", "wanted", tail));
  std::string out(6, '\0');
  ASSERT_TRUE(GunzipRange(member, 4, absl::MakeSpan(out)).ok());
  EXPECT_EQ(out, "wanted");
  std::string corrupt = member;
  corrupt[member.size() / 2] ^= 0xff;  // damage past the wanted bytes is not their problem
  absl::Status s = GunzipRange(corrupt, 4, absl::MakeSpan(out));
  EXPECT_TRUE(s.ok() || absl::IsDataLoss(s)) << s;
  if (s.ok()) EXPECT_EQ(out, "wanted");
}

}  // namespace
}  // namespace lazysnap

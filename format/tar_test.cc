#include "format/tar.h"

#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lazysnap {
namespace {

using ::testing::HasSubstr;

struct Member {
  TarEntry entry;
  std::string data;
};

std::string Archive(const std::vector<Member>& members) {
  std::string out;
  for (const Member& m : members) {
    TarEntry e = m.entry;
    e.size = m.data.size();
    out += EncodeTarHeader(e);
    out += m.data;
    out.append(TarPaddingFor(m.data.size()), '\0');
  }
  return out + TarTrailer();
}

absl::StatusOr<std::vector<Member>> ReadAll(std::string archive) {
  StringInputStream in(std::move(archive));
  TarReader r(&in);
  std::vector<Member> out;
  for (;;) {
    auto e = r.Next();
    if (!e.ok()) return e.status();
    if (!e->has_value()) break;
    Member m{**e, ""};
    char buf[7];  // odd size on purpose
    for (;;) {
      auto n = r.ReadData(absl::MakeSpan(buf));
      if (!n.ok()) return n.status();
      if (*n == 0) break;
      m.data.append(buf, *n);
    }
    out.push_back(std::move(m));
  }
  return out;
}

TarEntry Reg(std::string name) {
  TarEntry e;
  e.name = std::move(name);
  e.mode = 0644;
  e.mtime_sec = 1700000000;
  return e;
}

// Sets the checksum of a hand-made header block.
void Checksum(char* b) {
  std::memset(b + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; ++i) sum += static_cast<unsigned char>(b[i]);
  snprintf(b + 148, 8, "%06o", sum);
}

std::string RawHeader(std::string_view name, char type, uint64_t size, bool gnu = false) {
  std::string b(512, '\0');
  std::memcpy(&b[0], name.data(), std::min<size_t>(name.size(), 100));
  snprintf(&b[100], 8, "%07o", 0644);
  snprintf(&b[108], 8, "%07o", 0);
  snprintf(&b[116], 8, "%07o", 0);
  snprintf(&b[124], 12, "%011llo", static_cast<unsigned long long>(size));
  snprintf(&b[136], 12, "%011o", 0);
  b[156] = type;
  if (gnu) {
    std::memcpy(&b[257], "ustar  ", 8);
  } else {
    std::memcpy(&b[257], "ustar\0" "00", 8);
  }
  Checksum(&b[0]);
  return b;
}

std::string PaxRecord(std::string_view k, std::string_view v) {
  std::string body = std::string(k) + "=" + std::string(v) + "\n";
  size_t len = body.size() + 3;  // short records: two digits and a space
  return std::to_string(len) + " " + body;
}

std::string Padded(std::string data) {
  data.append(TarPaddingFor(data.size()), '\0');
  return data;
}

TEST(TarTest, RoundTripsAllTypesAndFields) {
  std::vector<Member> in;
  TarEntry dir = Reg("usr/");
  dir.typeflag = '5';
  dir.mode = 0755;
  in.push_back({dir, ""});
  TarEntry f = Reg("usr/file");
  f.uid = 1000;
  f.gid = 100;
  f.uname = "alice";
  f.gname = "users";
  f.mode = 04755;
  in.push_back({f, "hello world"});
  TarEntry ln = Reg("usr/link");
  ln.typeflag = '2';
  ln.linkname = "file";
  in.push_back({ln, ""});
  TarEntry hl = Reg("usr/hard");
  hl.typeflag = '1';
  hl.linkname = "usr/file";
  in.push_back({hl, ""});
  TarEntry dev = Reg("dev/null");
  dev.typeflag = '3';
  dev.devmajor = 1;
  dev.devminor = 3;
  in.push_back({dev, ""});
  TarEntry fifo = Reg("fifo");
  fifo.typeflag = '6';
  in.push_back({fifo, ""});
  in.push_back({Reg("exact"), std::string(512, 'x')});

  auto out = ReadAll(Archive(in));
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const TarEntry& a = in[i].entry;
    const TarEntry& b = (*out)[i].entry;
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.typeflag, b.typeflag);
    EXPECT_EQ(a.linkname, b.linkname);
    EXPECT_EQ(a.mode, b.mode);
    EXPECT_EQ(a.uid, b.uid);
    EXPECT_EQ(a.gid, b.gid);
    EXPECT_EQ(a.uname, b.uname);
    EXPECT_EQ(a.gname, b.gname);
    EXPECT_EQ(a.mtime_sec, b.mtime_sec);
    EXPECT_EQ(a.devmajor, b.devmajor);
    EXPECT_EQ(a.devminor, b.devminor);
    EXPECT_EQ(in[i].data, (*out)[i].data);
  }
}

TEST(TarTest, PaxForWhatUstarCannotSay) {
  TarEntry e = Reg(std::string(150, 'a') + "/" + std::string(120, 'b'));  // too long for ustar
  e.linkname = std::string(200, 'l');
  e.typeflag = '2';
  e.uid = 077777777 + 1;        // does not fit 7 octal digits
  e.uname = "ünïcode";
  e.mtime_sec = -5;             // negative and fractional
  e.mtime_nsec = 250000000;
  e.xattrs["user.a"] = std::string("bin\0ary\n", 8);
  e.xattrs["security.capability"] = "cap";
  e.pax["atime"] = "123.5";
  std::string header = EncodeTarHeader(e);
  EXPECT_EQ(header.size() % 512, 0u);
  EXPECT_GT(header.size(), 512u);
  auto out = ReadAll(header + TarTrailer());
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 1u);
  const TarEntry& b = (*out)[0].entry;
  EXPECT_EQ(b.name, e.name);
  EXPECT_EQ(b.linkname, e.linkname);
  EXPECT_EQ(b.uid, e.uid);
  EXPECT_EQ(b.uname, e.uname);
  EXPECT_EQ(b.mtime_sec, -5);
  EXPECT_EQ(b.mtime_nsec, 250000000u);
  EXPECT_EQ(b.xattrs, e.xattrs);
  EXPECT_EQ(b.pax, e.pax);
}

TEST(TarTest, UstarPrefixSplitNeedsNoPax) {
  TarEntry e = Reg(std::string(120, 'p') + "/" + std::string(90, 'n'));
  std::string header = EncodeTarHeader(e);
  EXPECT_EQ(header.size(), 512u);
  auto out = ReadAll(header + TarTrailer());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].entry.name, e.name);
}

TEST(TarTest, EncodingIsDeterministic) {
  TarEntry e = Reg(std::string(300, 'x'));
  e.xattrs["b"] = "2";
  e.xattrs["a"] = "1";
  EXPECT_EQ(EncodeTarHeader(e), EncodeTarHeader(e));
}

TEST(TarTest, GnuLongNameAndLinkAndBase256) {
  std::string longname(300, 'n');
  std::string longlink(200, 'k');
  std::string a = RawHeader("././@LongLink", 'L', longname.size() + 1, true) +
                  Padded(longname + '\0') +
                  RawHeader("././@LongLink", 'K', longlink.size(), true) + Padded(longlink);
  std::string h = RawHeader("short", '2', 0, true);
  // base-256 uid: 2^40
  std::memset(&h[108], 0, 8);
  h[108] = static_cast<char>(0x80);
  h[110] = 1;  // byte 2 of 7 payload bytes: 1 << 40
  Checksum(&h[0]);
  auto out = ReadAll(a + h + TarTrailer());
  // uid 2^40 does not fit uint32: rejected with a clear error.
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("uid"));

  h = RawHeader("short", '2', 0, true);
  std::memset(&h[108], 0, 8);
  h[108] = static_cast<char>(0x80);
  h[7 + 108 - 1] = 0;
  h[108 + 4] = 1;  // 1 << 24
  Checksum(&h[0]);
  out = ReadAll(a + h + TarTrailer());
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].entry.name, longname);
  EXPECT_EQ((*out)[0].entry.linkname, longlink);
  EXPECT_EQ((*out)[0].entry.uid, 1u << 24);
}

TEST(TarTest, LibarchiveXattrsAndGlobalPax) {
  std::string recs = PaxRecord("LIBARCHIVE.xattr.user.x%3Dy", "dg==");  // "v"
  std::string glob = "20 uname=globaluser\n";
  std::string data = "abc";
  std::string a = RawHeader("g", 'g', glob.size()) + Padded(glob) +
                  RawHeader("x", 'x', recs.size()) + Padded(recs) +
                  RawHeader("f", '0', data.size()) + Padded(data) +
                  RawHeader("f2", '0', 0) + TarTrailer();
  auto out = ReadAll(a);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].entry.xattrs.at("user.x=y"), "v");
  EXPECT_EQ((*out)[0].data, "abc");
  EXPECT_EQ((*out)[0].entry.uname, "globaluser");
  EXPECT_EQ((*out)[1].entry.uname, "globaluser");
  EXPECT_TRUE((*out)[1].entry.xattrs.empty());
}

TEST(TarTest, HeaderOffsetsCoverRawHeaders) {
  std::string a = Archive({{Reg(std::string(200, 'a')), "12345"}, {Reg("b"), ""}});
  StringInputStream in(a);
  TarReader r(&in);
  auto e = r.Next();
  ASSERT_TRUE(e.ok() && e->has_value());
  EXPECT_EQ(r.header_offset(), 0u);
  EXPECT_EQ(r.offset(), 1536u);  // PAX header, records, ustar header
  e = r.Next();
  ASSERT_TRUE(e.ok() && e->has_value());
  EXPECT_EQ(r.header_offset(), 2048u);
  e = r.Next();
  ASSERT_TRUE(e.ok() && !e->has_value());
  EXPECT_EQ(r.header_offset(), 2560u);
  EXPECT_EQ(r.offset(), a.size());
}

TEST(TarTest, TypeNormalization) {
  std::string a = RawHeader("olddir/", '\0', 0) + RawHeader("oldfile", '\0', 0) +
                  RawHeader("contig", '7', 0) + TarTrailer();
  auto out = ReadAll(a);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].entry.typeflag, '5');
  EXPECT_EQ((*out)[1].entry.typeflag, '0');
  EXPECT_EQ((*out)[2].entry.typeflag, '0');
}

TEST(TarTest, CleanEofIsEnd) {
  auto out = ReadAll(RawHeader("f", '0', 0));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->size(), 1u);
}

TEST(TarTest, CorruptInputGivesClearErrors) {
  std::string good = Archive({{Reg("f"), "data"}});
  std::string bad = good;
  bad[0] ^= 1;
  EXPECT_THAT(ReadAll(bad).status().message(), HasSubstr("checksum"));
  EXPECT_EQ(ReadAll(bad).status().code(), absl::StatusCode::kDataLoss);

  EXPECT_EQ(ReadAll(good.substr(0, 300)).status().code(), absl::StatusCode::kDataLoss);
  auto truncated = ReadAll(good.substr(0, 514));
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss);

  std::string huge_pax = RawHeader("x", 'x', 2u << 20) + TarTrailer();
  EXPECT_THAT(ReadAll(huge_pax).status().message(), HasSubstr("too large"));

  std::string bad_pax = "99 path=x\n";
  EXPECT_THAT(ReadAll(RawHeader("x", 'x', bad_pax.size()) + Padded(bad_pax) +
                      RawHeader("f", '0', 0) + TarTrailer())
                  .status()
                  .message(),
              HasSubstr("PAX"));

  EXPECT_EQ(ReadAll(RawHeader("sparse", 'S', 0, true) + TarTrailer()).status().code(),
            absl::StatusCode::kUnimplemented);

  std::string bad_octal = RawHeader("f", '0', 0);
  bad_octal[125] = '9';
  Checksum(&bad_octal[0]);
  EXPECT_THAT(ReadAll(bad_octal).status().message(), HasSubstr("octal"));

  std::string lone_zero = std::string(512, '\0') + RawHeader("f", '0', 0);
  EXPECT_EQ(ReadAll(lone_zero).status().code(), absl::StatusCode::kDataLoss);
}

TEST(TarTest, UnreadDataIsSkipped) {
  std::string a = Archive({{Reg("a"), std::string(1000, 'a')}, {Reg("b"), "bb"}});
  StringInputStream in(a);
  TarReader r(&in);
  ASSERT_TRUE(r.Next().ok());
  auto e = r.Next();
  ASSERT_TRUE(e.ok() && e->has_value());
  EXPECT_EQ((*e)->name, "b");
  char buf[10];
  auto n = r.ReadData(absl::MakeSpan(buf));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(std::string(buf, *n), "bb");
}

TEST(TarTest, CleanEntryName) {
  EXPECT_EQ(*CleanEntryName("./usr/bin/"), "usr/bin");
  EXPECT_EQ(*CleanEntryName("/usr//bin/./x"), "usr/bin/x");
  EXPECT_EQ(*CleanEntryName("."), "");
  EXPECT_EQ(*CleanEntryName("./"), "");
  EXPECT_EQ(*CleanEntryName(""), "");
  EXPECT_EQ(*CleanEntryName(".prefetch.landmark"), ".prefetch.landmark");
  EXPECT_FALSE(CleanEntryName("../etc/passwd").ok());
  EXPECT_FALSE(CleanEntryName("a/../../b").ok());
  EXPECT_FALSE(CleanEntryName(std::string("a\0b", 3)).ok());
}

}  // namespace
}  // namespace lazysnap

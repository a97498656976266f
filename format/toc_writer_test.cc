#include "format/toc_writer.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace lazysnap {
namespace {

using json = nlohmann::json;

std::string Json(std::string_view s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
}

TEST(TocWriterTest, JsonStringsEscapeAsGoDoes) {
  EXPECT_EQ(Json("plain/path.txt"), "\"plain/path.txt\"");
  EXPECT_EQ(Json("<a&b>"), "\"\\u003ca\\u0026b\\u003e\"");
  EXPECT_EQ(Json("q\"b\\n\nt\tr\r"), "\"q\\\"b\\\\n\\nt\\tr\\r\"");
  EXPECT_EQ(Json(std::string("\x01\x1f\0", 3)), "\"\\u0001\\u001f\\u0000\"");
  EXPECT_EQ(Json("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"), "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
  EXPECT_EQ(Json("\xe2\x80\xa8\xe2\x80\xa9"), "\"\\u2028\\u2029\"");
  std::string out;
  EXPECT_FALSE(AppendJsonString(&out, "a\xff" "b"));  // invalid UTF-8
  EXPECT_EQ(out, "\"a\\ufffdb\"");
  EXPECT_EQ(Json("\xc0\xaf"), "\"\\ufffd\\ufffd\"");   // overlong
  EXPECT_EQ(Json("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");  // surrogate
  EXPECT_EQ(Json("\xe2\x82"), "\"\\ufffd\\ufffd\"");  // truncated
}

TEST(TocWriterTest, Rfc3339) {
  EXPECT_EQ(FormatRfc3339(0, 0, false), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(1700000000, 0, false), "2023-11-14T22:13:20Z");
  EXPECT_EQ(FormatRfc3339(951782400, 0, false), "2000-02-29T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(-1, 0, false), "1969-12-31T23:59:59Z");
  EXPECT_EQ(FormatRfc3339(1, 500000000, true), "1970-01-01T00:00:01.5Z");
  EXPECT_EQ(FormatRfc3339(1, 123456789, true), "1970-01-01T00:00:01.123456789Z");
  EXPECT_EQ(FormatRfc3339(1, 123456789, false), "1970-01-01T00:00:01Z");
}

TEST(TocWriterTest, Crc64IsoCheckValue) {
  // CRC-64/GO-ISO check value (Go: crc64.Checksum([]byte("123456789"), crc64.MakeTable(ISO))).
  EXPECT_EQ(Crc64Iso(0, "123456789"), 0xb90956c775a41001ull);
  EXPECT_EQ(Crc64Iso(Crc64Iso(0, "1234"), "56789"), 0xb90956c775a41001ull);
  std::string big(1000, 'z');
  EXPECT_EQ(Crc64Iso(Crc64Iso(0, big.substr(0, 333)), big.substr(333)), Crc64Iso(0, big));
  EXPECT_EQ(Crc64Iso(0, ""), 0u);
}

TEST(TocWriterTest, EstargzTocIsGoMarshalIndent) {
  EstargzTocWriter w(4096);
  TarEntry dir;
  dir.name = "d/";
  dir.typeflag = '5';
  dir.mode = 0755;
  dir.uname = "root";
  w.Add(dir, nullptr, {});
  TarEntry f;
  f.name = "d/f";
  f.typeflag = '0';
  f.size = 5000;
  f.mode = 0644;
  f.uname = "root";
  f.mtime_sec = 10;
  f.mtime_nsec = 600000000;  // rounds up
  f.xattrs["user.a"] = "1";
  Sha256 d = Sha256::Of("x");
  WrittenChunk c[2];
  c[0].offset = 100;
  c[0].size = 4096;
  c[0].digest = d;
  c[1].offset = 200;
  c[1].file_offset = 4096;
  c[1].size = 904;
  c[1].digest = d;
  w.Add(f, &d, c);
  std::string got = w.Finish();
  std::string ds = d.ToString();
  std::string want = "{\n\t\"version\": 1,\n\t\"entries\": [\n"
      "\t\t{\n\t\t\t\"name\": \"d/\",\n\t\t\t\"type\": \"dir\",\n\t\t\t\"mode\": 493,\n"
      "\t\t\t\"userName\": \"root\"\n\t\t},\n"
      "\t\t{\n\t\t\t\"name\": \"d/f\",\n\t\t\t\"type\": \"reg\",\n\t\t\t\"size\": 5000,\n"
      "\t\t\t\"modtime\": \"1970-01-01T00:00:11Z\",\n\t\t\t\"mode\": 420,\n"
      "\t\t\t\"offset\": 100,\n\t\t\t\"xattrs\": {\n\t\t\t\t\"user.a\": \"MQ==\"\n\t\t\t},\n"
      "\t\t\t\"digest\": \"" + ds + "\",\n\t\t\t\"chunkSize\": 4096,\n"
      "\t\t\t\"chunkDigest\": \"" + ds + "\"\n\t\t},\n"
      "\t\t{\n\t\t\t\"name\": \"d/f\",\n\t\t\t\"type\": \"chunk\",\n\t\t\t\"offset\": 200,\n"
      "\t\t\t\"chunkOffset\": 4096,\n\t\t\t\"chunkDigest\": \"" + ds + "\"\n\t\t}\n"
      "\t]\n}";
  EXPECT_EQ(got, want);
}

TEST(TocWriterTest, ZstdChunkedTocIsCompactAndHasChunkEntries) {
  ZstdChunkedTocWriter w;
  TarEntry f;
  f.name = "f";
  f.typeflag = '0';
  f.size = 10;
  f.pax["atime"] = "5.25";
  Sha256 d = Sha256::Of("y");
  WrittenChunk c[2];
  c[0] = {10, 20, 0, 6, d};
  c[1] = {20, 30, 6, 4, d};
  w.Add(f, &d, c);
  TarEntry e;
  e.name = "e";
  e.typeflag = '0';
  w.Add(e, &d, {});
  json toc = json::parse(w.Finish(d));
  ASSERT_EQ(toc["entries"].size(), 3u);
  const json& reg = toc["entries"][0];
  EXPECT_EQ(reg["type"], "reg");
  EXPECT_EQ(reg["offset"], 10);
  EXPECT_EQ(reg["endOffset"], 30);
  EXPECT_EQ(reg["chunkSize"], 6);
  EXPECT_EQ(reg["accesstime"], "1970-01-01T00:00:05.25Z");
  EXPECT_EQ(reg["modtime"], "1970-01-01T00:00:00Z");
  const json& chunk = toc["entries"][1];
  EXPECT_EQ(chunk["type"], "chunk");
  EXPECT_EQ(chunk["chunkOffset"], 6);
  EXPECT_EQ(chunk["offset"], 20);
  EXPECT_FALSE(toc["entries"][2].contains("digest"));  // empty file
  EXPECT_EQ(toc["tarSplitDigest"], d.ToString());
}

TEST(TocWriterTest, TarSplitLines) {
  TarSplitWriter ts;
  ts.Segment("ab");
  ts.File("n<", 3, 0x0102030405060708ull);
  ts.File("\xff", 0, 0);
  ts.Segment("");
  EXPECT_EQ(ts.data(),
            "{\"type\":2,\"payload\":\"YWI=\",\"position\":0}\n"
            "{\"type\":1,\"name\":\"n\\u003c\",\"size\":3,\"payload\":\"AQIDBAUGBwg=\",\"position\":1}\n"
            "{\"type\":1,\"name_raw\":\"/w==\",\"payload\":null,\"position\":2}\n"
            "{\"type\":2,\"payload\":\"\",\"position\":3}\n");
}

}  // namespace
}  // namespace lazysnap

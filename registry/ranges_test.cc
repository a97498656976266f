#include "registry/ranges.h"

#include <gtest/gtest.h>

namespace lazysnap::registry {
namespace {

TEST(ContentRangeTest, Parses) {
  auto r = ParseContentRange("bytes 10-19/100");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->first, 10u);
  EXPECT_EQ(r->last, 19u);
  EXPECT_EQ(*r->total, 100u);
  EXPECT_EQ(r->length(), 10u);
  auto star = ParseContentRange("bytes 0-0/*");
  ASSERT_TRUE(star.ok());
  EXPECT_FALSE(star->total.has_value());
  for (const char* bad :
       {"", "bytes", "bytes 5-4/10", "bytes 0-10/10", "bytes */10", "items 0-1/2", "bytes 0-1",
        "bytes -1-2/3", "bytes 0-99999999999999999999/1", "bytes 1-2/x"}) {
    EXPECT_FALSE(ParseContentRange(bad).ok()) << bad;
  }
}

TEST(ByterangesTest, BoundaryFromContentType) {
  EXPECT_EQ(*ByterangesBoundary("multipart/byteranges; boundary=abc123"), "abc123");
  EXPECT_EQ(*ByterangesBoundary("Multipart/ByteRanges;boundary=\"q r\""), "q r");
  EXPECT_FALSE(ByterangesBoundary("application/octet-stream").has_value());
  EXPECT_FALSE(ByterangesBoundary("multipart/byteranges").has_value());
}

TEST(ByterangesTest, SplitsPartsAndDetectsTruncation) {
  std::string body =
      "--B\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-3/20\r\n\r\n"
      "abcd\r\n--B\r\nContent-Range: bytes 10-14/20\r\n\r\nk\r\n--\r\n--B--\r\n";
  auto parts = ParseByteranges(body, "B");
  ASSERT_TRUE(parts.ok()) << parts.status();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].data, "abcd");
  EXPECT_EQ((*parts)[1].range.first, 10u);
  EXPECT_EQ((*parts)[1].data, "k\r\n--");  // lengths come from Content-Range, not delimiters
  for (size_t cut = 0; cut < body.size() - 2; ++cut) {  // the final CRLF is optional
    EXPECT_FALSE(ParseByteranges(body.substr(0, cut), "B").ok()) << cut;
  }
  EXPECT_TRUE(absl::IsDataLoss(ParseByteranges("--B\r\n\r\nabc\r\n--B--", "B").status()));
  EXPECT_TRUE(absl::IsDataLoss(ParseByteranges("nothing", "B").status()));
}

}  // namespace
}  // namespace lazysnap::registry

#include "remote/tail_source.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lazysnap {
namespace {

// Serves a string; records every read it gets.
class RecordingSource : public BlobSource {
 public:
  explicit RecordingSource(std::string data) : data_(std::move(data)) {}
  uint64_t Size() const override { return data_.size(); }
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override {
    reads.emplace_back(offset, buf.size());
    if (offset + buf.size() > data_.size()) return absl::OutOfRangeError("past the end");
    data_.copy(buf.data(), buf.size(), offset);
    return absl::OkStatus();
  }
  std::vector<std::pair<uint64_t, size_t>> reads;

 private:
  std::string data_;
};

std::string Read(BlobSource& s, uint64_t offset, size_t n) {
  std::string out(n, '\0');
  absl::Status st = s.ReadAt(offset, absl::MakeSpan(out));
  return st.ok() ? out : "ERROR " + st.ToString();
}

TEST(TailedBlobSourceTest, TailFromMemoryTheRestFromInnerOnlyTheMissingPart) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data += static_cast<char>('a' + i % 26);
  RecordingSource inner(data);
  TailedBlobSource s(&inner, data.substr(900));
  EXPECT_EQ(s.Size(), 1000u);
  // Within the tail: no read of inner.
  EXPECT_EQ(Read(s, 949, 51), data.substr(949, 51));
  EXPECT_EQ(Read(s, 900, 100), data.substr(900, 100));
  EXPECT_TRUE(inner.reads.empty());
  // Across the tail's start: only the bytes before it from inner.
  EXPECT_EQ(Read(s, 800, 150), data.substr(800, 150));
  ASSERT_EQ(inner.reads.size(), 1u);
  EXPECT_EQ(inner.reads[0], (std::pair<uint64_t, size_t>{800, 100}));
  // Before the tail: inner.
  EXPECT_EQ(Read(s, 0, 10), data.substr(0, 10));
  EXPECT_EQ(inner.reads.size(), 2u);
  // Past the end: OutOfRange, inner not asked.
  std::string buf(2, '\0');
  EXPECT_TRUE(absl::IsOutOfRange(s.ReadAt(999, absl::MakeSpan(buf))));
  EXPECT_TRUE(absl::IsOutOfRange(s.ReadAt(5000, absl::MakeSpan(buf))));
  EXPECT_EQ(inner.reads.size(), 2u);
  EXPECT_EQ(Read(s, 1000, 0), "");
}

TEST(TailedBlobSourceTest, WholeBlobAsTail) {
  RecordingSource inner("0123456789");
  TailedBlobSource s(&inner, "0123456789");
  EXPECT_EQ(Read(s, 0, 10), "0123456789");
  EXPECT_EQ(Read(s, 3, 4), "3456");
  EXPECT_TRUE(inner.reads.empty());
}

}  // namespace
}  // namespace lazysnap

#include "cache/chunk_bitmap.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "cache/testing.h"
#include "gtest/gtest.h"

namespace lazysnap {
namespace {

using cache_testing::TempDir;

BitmapIdentity Id(uint64_t chunks, std::string_view name = "layer") {
  return BitmapIdentity{Sha256::Of(name), chunks, chunks * 100};
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << data;
}

TEST(ChunkBitmapTest, NewBitmapIsClearAndSetBitsPersist) {
  TempDir dir;
  std::string path = dir.path() + "/bitmap";
  {
    auto bm = ChunkBitmap::Open(path, Id(20));
    ASSERT_TRUE(bm.ok()) << bm.status();
    EXPECT_TRUE((*bm)->reset_reason().ok());
    EXPECT_EQ((*bm)->CountSet(), 0u);
    std::vector<uint32_t> set = {0, 7, 8, 19};
    ASSERT_TRUE((*bm)->Set(set).ok());
    EXPECT_TRUE((*bm)->Test(7));
    EXPECT_FALSE((*bm)->Test(6));
  }
  auto bm = ChunkBitmap::Open(path, Id(20));
  ASSERT_TRUE(bm.ok()) << bm.status();
  EXPECT_TRUE((*bm)->reset_reason().ok());
  EXPECT_EQ((*bm)->CountSet(), 4u);
  for (uint32_t i = 0; i < 20; i++) {
    bool want = i == 0 || i == 7 || i == 8 || i == 19;
    EXPECT_EQ((*bm)->Test(i), want) << i;
  }
  EXPECT_FALSE((*bm)->Test(20));
  std::vector<uint32_t> bad = {20};
  EXPECT_EQ((*bm)->Set(bad).code(), absl::StatusCode::kInvalidArgument);
}

// Every way the file can fail to match resets it: nothing from it is trusted.
class ChunkBitmapResetTest : public ::testing::TestWithParam<int> {};

TEST_P(ChunkBitmapResetTest, MismatchResetsToClear) {
  TempDir dir;
  std::string path = dir.path() + "/bitmap";
  {
    auto bm = ChunkBitmap::Open(path, Id(64));
    ASSERT_TRUE(bm.ok());
    std::vector<uint32_t> all;
    for (uint32_t i = 0; i < 64; i++) all.push_back(i);
    ASSERT_TRUE((*bm)->Set(all).ok());
  }
  BitmapIdentity id = Id(64);
  std::string data = ReadAll(path);
  ASSERT_EQ(data.size(), ChunkBitmap::kHeaderSize + 8);
  switch (GetParam()) {
    case 0:
      data[0] ^= 1;
      break;  // magic
    case 1:
      data[8] = 9;
      break;  // version
    case 2:
      data[20] ^= 1;
      break;  // chunk count field, checksum now wrong
    case 3:
      data.resize(data.size() - 1);
      break;  // truncated bits
    case 4:
      data += '\xff';
      break;  // trailing garbage
    case 5:
      data.resize(40);
      break;  // truncated header
    case 6:
      id = Id(64, "other layer");
      break;  // a different layer
    case 7:
      id.chunk_count = 65;
      break;  // a different chunk count
    case 8:
      id.data_size += 1;
      break;  // a different data size
  }
  WriteAll(path, data);
  auto bm = ChunkBitmap::Open(path, id);
  ASSERT_TRUE(bm.ok()) << bm.status();
  EXPECT_FALSE((*bm)->reset_reason().ok());
  EXPECT_EQ((*bm)->CountSet(), 0u);
  // The reset is on disk too, and a later open trusts the fresh file.
  bm->reset();
  auto again = ChunkBitmap::Open(path, id);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)->reset_reason().ok());
  EXPECT_EQ((*again)->CountSet(), 0u);
}

INSTANTIATE_TEST_SUITE_P(AllCorruptions, ChunkBitmapResetTest, ::testing::Range(0, 9));

TEST(ChunkBitmapTest, BitsPastTheEndAreCorruption) {
  TempDir dir;
  std::string path = dir.path() + "/bitmap";
  { ASSERT_TRUE(ChunkBitmap::Open(path, Id(3)).ok()); }
  std::string data = ReadAll(path);
  data.back() = '\x08';  // bit 3 of a 3-chunk bitmap
  WriteAll(path, data);
  auto bm = ChunkBitmap::Open(path, Id(3));
  ASSERT_TRUE(bm.ok());
  EXPECT_FALSE((*bm)->reset_reason().ok());
  EXPECT_EQ((*bm)->CountSet(), 0u);
}

TEST(ChunkBitmapTest, ResetClearsOnDisk) {
  TempDir dir;
  std::string path = dir.path() + "/bitmap";
  {
    auto bm = ChunkBitmap::Open(path, Id(10));
    ASSERT_TRUE(bm.ok());
    std::vector<uint32_t> s = {1, 2};
    ASSERT_TRUE((*bm)->Set(s).ok());
    ASSERT_TRUE((*bm)->Reset().ok());
    EXPECT_EQ((*bm)->CountSet(), 0u);
  }
  auto bm = ChunkBitmap::Open(path, Id(10));
  ASSERT_TRUE(bm.ok());
  EXPECT_EQ((*bm)->CountSet(), 0u);
}

TEST(ChunkBitmapTest, ZeroChunks) {
  TempDir dir;
  auto bm = ChunkBitmap::Open(dir.path() + "/bitmap", Id(0));
  ASSERT_TRUE(bm.ok());
  EXPECT_EQ((*bm)->CountSet(), 0u);
  auto again = ChunkBitmap::Open(dir.path() + "/bitmap", Id(0));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)->reset_reason().ok());
}

}  // namespace
}  // namespace lazysnap

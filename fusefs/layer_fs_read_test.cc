// The read path of a mounted layer under load and faults: many threads reading random ranges
// of many cold files get the right bytes with every chunk fetched once; a chunk that fails
// verification is EIO for its reads while everything else keeps working; overlayfs over two
// lazily mounted layers applies whiteouts and opaque directories as over extracted layers.
#include <dirent.h>
#include <sys/mount.h>

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "base/digest.h"
#include "base/testing.h"
#include "cache/testing.h"
#include "fusefs/layer_fs.h"
#include "fusefs/testing.h"

namespace lazysnap {
namespace {

using cache_testing::PseudoRandom;
using cache_testing::TempDir;
using namespace fusefs_testing;

absl::StatusOr<std::string> Pread(const std::string& path, uint64_t off, size_t n) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return ErrnoToStatus(errno, path);
  std::string buf(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, buf.data() + got, n - got, static_cast<off_t>(off + got));
    if (r < 0) {
      int err = errno;
      ::close(fd);
      return ErrnoToStatus(err, path);
    }
    if (r == 0) break;
    got += r;
  }
  ::close(fd);
  buf.resize(got);
  return buf;
}

class ReadTest : public ::testing::TestWithParam<LayerFormat> {
 protected:
  void SetUp() override {
    if (std::string why = CannotMount(); !why.empty()) GTEST_SKIP() << why;
  }
};

TEST_P(ReadTest, ManyThreadsRandomRangesColdFilesEachChunkFetchedOnce) {
  std::vector<Member> members = {Dir("d")};
  for (int i = 0; i < 60; i++) {
    size_t size = (i % 5 == 0) ? 300000 + i * 1013 : 1000 + i * 4099;
    members.push_back(File(StrCat("d/f", i), PseudoRandom(size, i + 1)));
  }
  auto blob = BuildLayer(members, GetParam(), 16384);
  ASSERT_TRUE(blob.ok()) << blob.status();
  auto mem = std::make_shared<MemoryBlobSource>(std::move(*blob));
  auto counting = std::make_shared<CountingBlobSource>(mem.get());
  TempDir tmp;
  LayerCacheOptions co;
  co.max_gap_bytes = 0;  // fetch exactly the chunks wanted, so bytes can be counted
  auto m = MountedLayer::Mount(counting, tmp.path(), co);
  ASSERT_TRUE(m.ok()) << m.status();
  const uint64_t opening_bytes = counting->bytes();  // footer and TOC

  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int k = 0; k < 150; k++) {
        const Member& f = members[1 + rng() % 60];
        uint64_t off = rng() % (f.data.size() + 1);
        size_t n = 1 + rng() % 200000;
        auto got = Pread(StrCat((*m)->mnt, "/", f.path), off, n);
        if (!got.ok() || *got != f.data.substr(off, n)) bad++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  // Now everything, whole.
  for (size_t i = 1; i < members.size(); i++) {
    auto got = Pread(StrCat((*m)->mnt, "/", members[i].path), 0, members[i].data.size() + 1);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_TRUE(*got == members[i].data) << members[i].path;
  }
  // Every chunk decoded once and its compressed bytes fetched once.
  std::set<std::pair<uint64_t, uint32_t>> ranges;
  uint64_t data_chunks = 0;
  const LayerIndex& index = (*m)->layer->index;
  for (const Chunk& c : index.chunks()) {
    if (c.size == 0 || c.zeros || !index.Path(c.entry).starts_with("d/")) continue;
    ranges.insert({c.compressed_offset, c.compressed_size});
    data_chunks++;
  }
  uint64_t range_bytes = 0;
  for (auto& r : ranges) range_bytes += r.second;
  LayerCacheStats s = (*m)->cache->stats();
  EXPECT_EQ(s.verification_failures, 0u);
  EXPECT_EQ(s.chunks_fetched, data_chunks);
  EXPECT_EQ(s.bytes_fetched, range_bytes);
  EXPECT_EQ(counting->bytes() - opening_bytes, range_bytes);
  EXPECT_TRUE((*m)->fs->Check().ok());
  EXPECT_EQ((*m)->fs->stats().read_errors, 0u);
}

// Corrupts what it returns for one blob range while `corrupt` is set.
class CorruptingSource : public ForwardingBlobSource {
 public:
  CorruptingSource(BlobSource* base, uint64_t at) : ForwardingBlobSource(base), at_(at) {}
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override {
    RETURN_IF_ERROR(ForwardingBlobSource::ReadAt(offset, buf));
    if (corrupt.load() && at_ >= offset && at_ < offset + buf.size()) buf[at_ - offset] ^= 0x55;
    return absl::OkStatus();
  }
  std::atomic<bool> corrupt{false};

 private:
  const uint64_t at_;
};

TEST_P(ReadTest, CorruptChunkIsEioOtherFilesStillRead) {
  std::vector<Member> members = {File("good", PseudoRandom(100000, 1)),
                                 File("victim", PseudoRandom(100000, 2)),
                                 File("other", PseudoRandom(5000, 3))};
  auto blob = BuildLayer(members, GetParam(), 16384);
  ASSERT_TRUE(blob.ok()) << blob.status();
  MemoryBlobSource mem(std::move(*blob));
  auto layer = OpenLayer(mem, {});
  ASSERT_TRUE(layer.ok());
  EntryId victim = (*layer)->index.LookupPath("victim");
  const Chunk& c = (*layer)->index.ChunksOf(victim)[2];
  auto source = std::make_shared<CorruptingSource>(&mem, c.compressed_offset + c.compressed_size / 2);
  TempDir tmp;
  LayerCacheOptions co;
  co.max_gap_bytes = 0;
  auto m = MountedLayer::Mount(source, tmp.path(), co);
  ASSERT_TRUE(m.ok()) << m.status();
  source->corrupt = true;
  const std::string mnt = (*m)->mnt;
  auto bad = Pread(mnt + "/victim", 2 * 16384 + 10, 100);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss) << bad.status();  // EIO
  // The chunks before it are fine, and so are the other files.
  EXPECT_EQ(*Pread(mnt + "/victim", 0, 16384), members[1].data.substr(0, 16384));
  EXPECT_EQ(*Pread(mnt + "/good", 0, 200000), members[0].data);
  EXPECT_EQ(*Pread(mnt + "/other", 0, 200000), members[2].data);
  EXPECT_FALSE(Pread(mnt + "/victim", 0, 200000).ok());  // still EIO: nothing bad was kept
  EXPECT_TRUE((*m)->fs->Check().ok());
  EXPECT_GE((*m)->fs->stats().read_errors, 2u);
  EXPECT_GE((*m)->cache->stats().verification_failures, 2u);
  // Once the source serves the right bytes, the same read succeeds.
  source->corrupt = false;
  EXPECT_EQ(*Pread(mnt + "/victim", 0, 200000), members[1].data);
}

// Fails every read after the layer is open: a registry that stopped answering.
class DeadSource : public ForwardingBlobSource {
 public:
  using ForwardingBlobSource::ForwardingBlobSource;
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override {
    if (dead.load()) return absl::DeadlineExceededError("registry read deadline exceeded");
    return ForwardingBlobSource::ReadAt(offset, buf);
  }
  std::atomic<bool> dead{false};
};

TEST_P(ReadTest, FetchPastDeadlineIsEio) {
  std::vector<Member> members = {File("f", PseudoRandom(50000, 1))};
  auto blob = BuildLayer(members, GetParam(), 16384);
  ASSERT_TRUE(blob.ok());
  MemoryBlobSource mem(std::move(*blob));
  auto source = std::make_shared<DeadSource>(&mem);
  TempDir tmp;
  auto m = MountedLayer::Mount(source, tmp.path());
  ASSERT_TRUE(m.ok()) << m.status();
  source->dead = true;
  auto r = Pread((*m)->mnt + "/f", 0, 10);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();  // EIO
  struct stat st;
  EXPECT_EQ(::stat(((*m)->mnt + "/f").c_str(), &st), 0);  // metadata needs no fetch
  source->dead = false;
  EXPECT_EQ(*Pread((*m)->mnt + "/f", 0, 100000), members[0].data);
}

INSTANTIATE_TEST_SUITE_P(Formats, ReadTest,
                         ::testing::Values(LayerFormat::kEstargz, LayerFormat::kZstdChunked),
                         [](const auto& info) {
                           return info.param == LayerFormat::kEstargz ? "estargz" : "zstd";
                         });

}  // namespace
}  // namespace lazysnap

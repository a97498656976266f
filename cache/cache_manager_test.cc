#include "cache/cache_manager.h"

#include <sys/stat.h>

#include <thread>

#include "cache/testing.h"
#include "gtest/gtest.h"

namespace lazysnap {
namespace {

using cache_testing::MakeTestLayer;
using cache_testing::PlainChunkDecoder;
using cache_testing::RecordingBlobSource;
using cache_testing::TempDir;
using cache_testing::TestLayer;

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

class CacheManagerTest : public ::testing::Test {
 protected:
  CacheManagerTest() {
    for (int i = 0; i < 3; i++) {
      layers_.push_back(MakeTestLayer({256 << 10}, 64 << 10, 0, i + 1));
      digests_.push_back(Sha256::Of(StrCat("layer", i)));
    }
  }
  std::unique_ptr<CacheManager> MustOpen(uint64_t limit) {
    auto m = CacheManager::Open(dir_.path() + "/cache", {limit});
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? std::move(*m) : nullptr;
  }
  absl::StatusOr<std::shared_ptr<LayerCache>> OpenLayer(CacheManager& m, int i) {
    return m.OpenLayer(digests_[i], Sha256::Of(StrCat("toc", i)), layers_[i].chunks,
                       std::make_shared<RecordingBlobSource>(layers_[i].blob),
                       std::make_shared<PlainChunkDecoder>());
  }
  // Opens layer i, fetches all of it, releases it.
  void Fill(CacheManager& m, int i) {
    auto c = OpenLayer(m, i);
    ASSERT_TRUE(c.ok()) << c.status();
    std::string buf(256 << 10, '\0');
    auto n = (*c)->ReadFile(layers_[i].files[0], 0, absl::MakeSpan(buf));
    ASSERT_TRUE(n.ok()) << n.status();
  }
  // Opens and releases layer i: a use, for LRU.
  void Use(CacheManager& m, int i) { ASSERT_TRUE(OpenLayer(m, i).ok()); }
  bool Cached(CacheManager& m, int i) { return Exists(m.LayerDir(digests_[i])); }

  TempDir dir_;
  std::vector<TestLayer> layers_;
  std::vector<Sha256> digests_;
};

TEST_F(CacheManagerTest, OpenLayerSharesTheOpenCache) {
  auto m = MustOpen(0);
  auto a = OpenLayer(*m, 0);
  auto b = OpenLayer(*m, 0);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->get(), b->get());
  EXPECT_EQ((*a)->dir(), m->LayerDir(digests_[0]));
  auto other_toc = m->OpenLayer(digests_[0], Sha256::Of("another toc"), layers_[0].chunks, nullptr,
                                std::make_shared<PlainChunkDecoder>());
  EXPECT_EQ(other_toc.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(CacheManagerTest, ConcurrentOpensGetOneCache) {
  auto m = MustOpen(0);
  std::vector<std::shared_ptr<LayerCache>> got(6);
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; t++) {
    threads.emplace_back([&, t] {
      auto c = OpenLayer(*m, 1);
      if (c.ok()) got[t] = *c;
    });
  }
  for (auto& t : threads) t.join();
  for (auto& c : got) {
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c.get(), got[0].get());
  }
}

TEST_F(CacheManagerTest, UsageCountsFetchedBytes) {
  auto m = MustOpen(0);
  Use(*m, 0);  // cold: a sparse data file and a bitmap
  auto cold = m->Usage();
  ASSERT_TRUE(cold.ok());
  EXPECT_LT(*cold, 64u << 10);
  Fill(*m, 0);
  auto warm = m->Usage();
  ASSERT_TRUE(warm.ok());
  EXPECT_GE(*warm, 256u << 10);
}

TEST_F(CacheManagerTest, UsageCountsPerFileCopiesAndRemovalDeletesThem) {
  auto m = MustOpen(0);
  Fill(*m, 0);
  auto filled = m->Usage();
  ASSERT_TRUE(filled.ok());
  {
    auto c = OpenLayer(*m, 0);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE((*c)->WriteFileCopy(layers_[0].files[0]).ok());
    EXPECT_TRUE(Exists((*c)->FileCopyPath(layers_[0].files[0])));
  }
  auto with_copy = m->Usage();
  ASSERT_TRUE(with_copy.ok());
  EXPECT_GE(*with_copy, *filled + (256u << 10));
  ASSERT_TRUE(m->RemoveLayer(digests_[0]).ok());
  EXPECT_FALSE(Exists(m->LayerDir(digests_[0])));
}

TEST_F(CacheManagerTest, NoPerFileCopyTakesUsagePastTheSizeLimit) {
  auto filled = [&] {
    auto m = MustOpen(0);
    Fill(*m, 0);
    return m->Usage().value_or(0);
  }();
  ASSERT_GT(filled, 0u);
  {
    auto m = MustOpen(filled + (64u << 10));  // room for the data, not for a 256 KiB copy
    auto c = OpenLayer(*m, 0);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ((*c)->WriteFileCopy(layers_[0].files[0]).code(),
              absl::StatusCode::kResourceExhausted);
    EXPECT_FALSE(Exists((*c)->FileCopyPath(layers_[0].files[0])));
  }
  auto m = MustOpen(filled + (1u << 20));
  auto c = OpenLayer(*m, 0);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE((*c)->WriteFileCopy(layers_[0].files[0]).ok());
}

TEST_F(CacheManagerTest, GcEvictsLeastRecentlyUsedUntilWithinTheLimit) {
  auto m = MustOpen(0);
  for (int i = 0; i < 3; i++) Fill(*m, i);
  Use(*m, 0);  // order of use now: 1, 2, 0
  auto usage = m->List();
  ASSERT_TRUE(usage.ok());
  ASSERT_EQ(usage->size(), 3u);
  EXPECT_EQ((*usage)[0].digest, digests_[1]);
  uint64_t per_layer = (*usage)[0].bytes;

  auto limited = CacheManager::Open(dir_.path() + "/cache", {2 * per_layer + per_layer / 2});
  ASSERT_TRUE(limited.ok());
  auto gc = (*limited)->CollectGarbage();
  ASSERT_TRUE(gc.ok()) << gc.status();
  ASSERT_EQ(gc->evicted.size(), 1u);
  EXPECT_EQ(gc->evicted[0], digests_[1]);
  EXPECT_FALSE(Cached(**limited, 1));
  EXPECT_TRUE(Cached(**limited, 0));
  EXPECT_TRUE(Cached(**limited, 2));
  EXPECT_LE(gc->usage_after, (*limited)->size_limit());
  // Within the limit now: nothing more goes.
  auto again = (*limited)->CollectGarbage();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->evicted.empty());
}

TEST_F(CacheManagerTest, GcNeverEvictsLayersInUse) {
  auto m = MustOpen(1);  // everything is over the limit
  for (int i = 0; i < 3; i++) Fill(*m, i);
  auto open = OpenLayer(*m, 0);
  ASSERT_TRUE(open.ok());
  LayerPin pin = m->Pin(digests_[1]);
  auto gc = m->CollectGarbage();
  ASSERT_TRUE(gc.ok());
  ASSERT_EQ(gc->evicted.size(), 1u);
  EXPECT_EQ(gc->evicted[0], digests_[2]);
  EXPECT_TRUE(Cached(*m, 0));
  EXPECT_TRUE(Cached(*m, 1));
  EXPECT_GT(gc->usage_after, 1u);
  // The open layer still works after GC ran around it.
  std::string buf(100, '\0');
  EXPECT_TRUE((*open)->ReadFile(layers_[0].files[0], 0, absl::MakeSpan(buf)).ok());

  EXPECT_EQ(m->RemoveLayer(digests_[1]).code(), absl::StatusCode::kFailedPrecondition);
  pin = LayerPin();
  open->reset();
  gc = m->CollectGarbage();
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->evicted.size(), 2u);
  EXPECT_FALSE(Cached(*m, 0));
  EXPECT_FALSE(Cached(*m, 1));
}

TEST_F(CacheManagerTest, RemoveLayer) {
  auto m = MustOpen(0);
  Fill(*m, 0);
  EXPECT_TRUE(m->RemoveLayer(digests_[0]).ok());
  EXPECT_FALSE(Cached(*m, 0));
  EXPECT_EQ(m->RemoveLayer(digests_[0]).code(), absl::StatusCode::kNotFound);
  // A removed layer starts cold the next time.
  auto c = OpenLayer(*m, 0);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->stats().present_chunks, 0u);
}

TEST_F(CacheManagerTest, CachedChunksSurviveAManagerRestart) {
  {
    auto m = MustOpen(0);
    Fill(*m, 2);
  }
  auto m = MustOpen(0);
  auto c = OpenLayer(*m, 2);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE((*c)->Complete());
}

TEST_F(CacheManagerTest, OpenEmptiesTheTrash) {
  auto m = MustOpen(0);
  std::string junk = dir_.path() + "/cache/trash/leftover.0";
  ASSERT_EQ(::mkdir(junk.c_str(), 0700), 0);
  m.reset();
  m = MustOpen(0);
  EXPECT_FALSE(Exists(junk));
}

TEST_F(CacheManagerTest, LruOrderSurvivesARestart) {
  {
    auto m = MustOpen(0);
    Fill(*m, 2);
    Fill(*m, 0);
    Fill(*m, 1);
    Use(*m, 2);  // order of use: 0, 1, 2
  }
  auto m = MustOpen(0);
  auto list = m->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].digest, digests_[0]);
  EXPECT_EQ((*list)[1].digest, digests_[1]);
  EXPECT_EQ((*list)[2].digest, digests_[2]);
  for (const LayerUsage& u : *list) EXPECT_FALSE(u.in_use);
}

TEST_F(CacheManagerTest, GcRacingWithOpenAndCloseNeverEvictsALayerInUse) {
  auto m = MustOpen(1);
  std::atomic<bool> stop{false};
  std::atomic<int> evictions{0};
  std::thread gc([&] {
    while (!stop) {
      auto r = m->CollectGarbage();
      if (r.ok()) evictions += static_cast<int>(r->evicted.size());
    }
  });
  auto rounds = [&] {  // a failed ASSERT returns from here, so the GC thread still stops
    for (int round = 0; round < 200; round++) {
      int i = round % 3;
      auto c = OpenLayer(*m, i);
      ASSERT_TRUE(c.ok()) << c.status();
      std::string buf(1000, '\0');
      auto n = (*c)->ReadFile(layers_[i].files[0], 0, absl::MakeSpan(buf));
      ASSERT_TRUE(n.ok()) << n.status();
      EXPECT_TRUE(buf == layers_[i].contents[0].substr(0, 1000));
      // Held: its directory and files are still where the cache expects them.
      ASSERT_TRUE(Exists((*c)->dir() + "/data")) << "round " << round;
      ASSERT_TRUE(Exists((*c)->dir() + "/bitmap")) << "round " << round;
    }
  };
  rounds();
  stop = true;
  gc.join();
  EXPECT_GT(evictions.load(), 0);
}

}  // namespace
}  // namespace lazysnap

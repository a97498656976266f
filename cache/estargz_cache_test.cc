// The cache over a real eStargz layer, with the production decoder (format/layer.h).
#include <gtest/gtest.h>

#include "base/testing.h"
#include "cache/cache_manager.h"
#include "cache/layer_cache.h"
#include "cache/testing.h"
#include "format/estargz_testutil.h"
#include "format/layer.h"

namespace lazysnap {
namespace {

using cache_testing::PseudoRandom;
using cache_testing::TempDir;

class EstargzCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    lazysnap::testing::EstargzBuilder b;
    b.AddDir("etc");
    b.AddFile("etc/hosts", "127.0.0.1 localhost\n");
    b.AddFile("bin/big", PseudoRandom(100000, 1), /*chunk_size=*/4096, 0755);
    b.AddFile("empty", "");
    b.AddHardlink("hosts", "etc/hosts");
    for (int i = 0; i < 20; i++) b.AddFile(StrCat("lib/f", i), PseudoRandom(100 + i * 997, i));
    blob_ = b.Finish();
    mem_ = std::make_unique<MemoryBlobSource>(blob_);
    auto layer = OpenLayer(*mem_, OpenOptions{});
    ASSERT_TRUE(layer.ok()) << layer.status();
    layer_ = std::move(*layer);
  }
  absl::StatusOr<std::unique_ptr<LayerCache>> Open(const std::string& dir,
                                                   std::shared_ptr<BlobSource> source) {
    return LayerCache::Open(dir, layer_->toc_digest, layer_->index.chunks(), std::move(source),
                            std::make_shared<FormatChunkDecoder>(layer_->index));
  }
  // Reads every regular file through `cache` and compares with the format's own reader.
  void ExpectAllFiles(LayerCache& cache) {
    const LayerIndex& idx = layer_->index;
    int files = 0;
    for (EntryId id = 0; id < idx.size(); id++) {
      if (!S_ISREG(idx.entry(id).mode)) continue;
      files++;
      auto want = ReadFile(*mem_, *layer_, id);
      ASSERT_TRUE(want.ok()) << idx.Path(id) << ": " << want.status();
      std::string got(want->size() + 10, '\0');
      auto n = cache.ReadFile(idx.entry(idx.entry(id).inode), 0, absl::MakeSpan(got));
      ASSERT_TRUE(n.ok()) << idx.Path(id) << ": " << n.status();
      got.resize(*n);
      EXPECT_TRUE(got == *want) << idx.Path(id);
    }
    EXPECT_GE(files, 24);
  }

  std::string blob_;
  std::unique_ptr<MemoryBlobSource> mem_;
  std::unique_ptr<SeekableLayer> layer_;
};

TEST_F(EstargzCacheTest, ServesEveryFileAsTheFormatReaderReadsIt) {
  TempDir dir;
  auto counting = std::make_shared<CountingBlobSource>(mem_.get());
  auto cache = Open(dir.path(), counting);
  ASSERT_TRUE(cache.ok()) << cache.status();
  ExpectAllFiles(**cache);
  EXPECT_TRUE((*cache)->Complete());
  EXPECT_EQ((*cache)->stats().verification_failures, 0u);
  uint64_t reads = counting->reads();
  ExpectAllFiles(**cache);  // now from the data file
  EXPECT_EQ(counting->reads(), reads);
}

TEST_F(EstargzCacheTest, WholeLayerIsOneRequestAcrossTarHeaderGaps) {
  TempDir dir;
  auto counting = std::make_shared<CountingBlobSource>(mem_.get());
  auto cache = Open(dir.path(), counting);
  ASSERT_TRUE(cache.ok());
  std::vector<uint32_t> all(layer_->index.chunks().size());
  for (uint32_t i = 0; i < all.size(); i++) all[i] = i;
  ASSERT_TRUE((*cache)->EnsureChunks(all, FetchPriority::kPrefetch).ok());
  EXPECT_EQ(counting->reads(), 1u);
  EXPECT_LT(counting->bytes(), blob_.size());  // the TOC and footer are not fetched
  ExpectAllFiles(**cache);
}

TEST_F(EstargzCacheTest, ManagerKeepsTheLayerAliveWithItsCache) {
  TempDir dir;
  auto m = CacheManager::Open(dir.path(), {});
  ASSERT_TRUE(m.ok());
  std::shared_ptr<const SeekableLayer> layer = std::move(layer_);
  std::weak_ptr<const SeekableLayer> watch = layer;
  const LayerIndex& idx = layer->index;
  EntryId big = idx.LookupPath("bin/big");
  Entry entry = idx.entry(big);
  auto want = ReadFile(*mem_, *layer, big);
  ASSERT_TRUE(want.ok());
  auto cache = (*m)->OpenLayer(Sha256::Of("blob"), std::move(layer),
                               std::make_shared<CountingBlobSource>(mem_.get()));
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_FALSE(watch.expired());  // only the cache holds it now
  std::string got(want->size(), '\0');
  auto n = (*cache)->ReadFile(entry, 0, absl::MakeSpan(got));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_TRUE(got == *want);
  EXPECT_TRUE((*m)->FlushAll().ok());
  cache->reset();
  EXPECT_TRUE(watch.expired());
}

// Flips one byte of the blob at a chosen offset.
class CorruptingSource : public ForwardingBlobSource {
 public:
  CorruptingSource(BlobSource* base, uint64_t at) : ForwardingBlobSource(base), at_(at) {}
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override {
    absl::Status s = ForwardingBlobSource::ReadAt(offset, buf);
    if (s.ok() && at_ >= offset && at_ < offset + buf.size()) buf[at_ - offset] ^= 0x55;
    return s;
  }

 private:
  const uint64_t at_;
};

TEST_F(EstargzCacheTest, CorruptMemberIsDataLossAndNeverServed) {
  const LayerIndex& idx = layer_->index;
  EntryId big = idx.LookupPath("bin/big");
  ASSERT_NE(big, kNoEntry);
  const Chunk& victim = idx.ChunksOf(big)[3];
  TempDir dir;
  {
    auto cache =
        Open(dir.path(), std::make_shared<CorruptingSource>(
                             mem_.get(), victim.compressed_offset + victim.compressed_size / 2));
    ASSERT_TRUE(cache.ok());
    std::string buf(100000, '\0');
    auto n = (*cache)->ReadFile(idx.entry(big), 0, absl::MakeSpan(buf));
    EXPECT_EQ(n.status().code(), absl::StatusCode::kDataLoss) << n.status();
    EXPECT_EQ((*cache)->stats().verification_failures, 1u);
    EXPECT_FALSE((*cache)->IsPresent(idx.entry(big).chunks_begin + 3));
  }
  // Reopened with a good source: the corrupt chunk is fetched again, the file is right.
  auto cache = Open(dir.path(), std::make_shared<CountingBlobSource>(mem_.get()));
  ASSERT_TRUE(cache.ok());
  ExpectAllFiles(**cache);
}

}  // namespace
}  // namespace lazysnap

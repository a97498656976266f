// The cache over layers written by format/'s converter, in both formats, with the production
// decoder: many threads reading random ranges of cold files get the bytes the format reader
// returns, and every chunk is fetched and verified once.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <thread>

#include "base/stream.h"
#include "base/testing.h"
#include "cache/cache_manager.h"
#include "cache/testing.h"
#include "format/convert.h"
#include "format/layer.h"
#include "format/tar.h"

namespace lazysnap {
namespace {

using cache_testing::PseudoRandom;
using cache_testing::TempDir;

void AddMember(std::string* tar, std::string name, std::string_view data, char type = '0',
               std::string link = "") {
  TarEntry e;
  e.name = std::move(name);
  e.typeflag = type;
  e.mode = type == '5' ? 0755 : 0644;
  e.linkname = std::move(link);
  e.size = type == '0' ? data.size() : 0;
  *tar += EncodeTarHeader(e);
  if (type == '0') {
    tar->append(data);
    tar->append(TarPaddingFor(data.size()), '\0');
  }
}

class ConvertedLayerCacheTest : public ::testing::TestWithParam<LayerFormat> {
 protected:
  void SetUp() override {
    std::string tar;
    AddMember(&tar, "./", "", '5');
    AddMember(&tar, "./usr/", "", '5');
    for (int i = 0; i < 30; i++) {
      AddMember(&tar, StrCat("./usr/f", i), PseudoRandom(i * 5011 + (i % 3 == 0 ? 0 : 17), i));
    }
    AddMember(&tar, "./usr/zeros", std::string(50000, '\0'));
    AddMember(&tar, "./usr/big", PseudoRandom(300000, 99));
    AddMember(&tar, "./usr/hard", "", '1', "./usr/f1");
    tar += TarTrailer();
    ConvertOptions o;
    o.format = GetParam();
    o.chunk_size = 8192;
    o.threads = 1;
    StringInputStream in(tar);
    StringOutputStream out;
    auto r = ConvertLayer(in, out, o);
    ASSERT_TRUE(r.ok()) << r.status();
    mem_ = std::make_unique<MemoryBlobSource>(std::move(out.data()));
    OpenOptions open;
    open.annotations = r->annotations;
    auto layer = OpenLayer(*mem_, open);
    ASSERT_TRUE(layer.ok()) << layer.status();
    layer_ = std::move(*layer);
    for (EntryId id = 0; id < layer_->index.size(); id++) {
      if (!S_ISREG(layer_->index.entry(id).mode)) continue;
      auto data = ReadFile(*mem_, *layer_, id);
      ASSERT_TRUE(data.ok()) << data.status();
      files_.push_back({id, std::move(*data)});
    }
  }

  std::unique_ptr<MemoryBlobSource> mem_;
  std::shared_ptr<SeekableLayer> layer_;
  std::vector<std::pair<EntryId, std::string>> files_;
};

TEST_P(ConvertedLayerCacheTest, ConcurrentColdReadsAreCorrectAndFetchEachChunkOnce) {
  ASSERT_GE(files_.size(), 32u);
  TempDir dir;
  auto m = CacheManager::Open(dir.path(), {});
  ASSERT_TRUE(m.ok());
  auto counting = std::make_shared<CountingBlobSource>(mem_.get());
  LayerCacheOptions co;
  co.max_gap_bytes = 0;  // so that no request covers a chunk it did not fetch
  auto cache = (*m)->OpenLayer(Sha256::Of("blob"), layer_, counting, co);
  ASSERT_TRUE(cache.ok()) << cache.status();
  const LayerIndex& idx = layer_->index;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < 400; i++) {
        const auto& [id, want] = files_[rng() % files_.size()];
        uint64_t off = want.empty() ? 0 : rng() % want.size();
        size_t n = 1 + rng() % 40000;
        std::string buf(n, '\0');
        auto got = (*cache)->ReadFile(idx.entry(idx.entry(id).inode), off, absl::MakeSpan(buf));
        std::string expect = want.substr(std::min<uint64_t>(off, want.size()), n);
        if (!got.ok() || buf.substr(0, *got) != expect) bad++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  auto st = (*cache)->stats();
  EXPECT_EQ(st.verification_failures, 0u);
  // Each chunk with blob data was fetched at most once; distinct compressed ranges bound it.
  std::set<uint64_t> ranges;
  for (const Chunk& c : idx.chunks()) {
    if (!c.zeros && c.size > 0) ranges.insert(c.compressed_offset);
  }
  std::vector<uint32_t> all(idx.chunks().size());
  for (uint32_t i = 0; i < all.size(); i++) all[i] = i;
  ASSERT_TRUE((*cache)->EnsureChunks(all).ok());
  EXPECT_TRUE((*cache)->Complete());
  st = (*cache)->stats();
  uint64_t with_data = 0;
  for (const Chunk& c : idx.chunks()) with_data += !c.zeros && c.size > 0;
  EXPECT_EQ(st.chunks_fetched, with_data);
  EXPECT_LE(st.requests, ranges.size());
}

INSTANTIATE_TEST_SUITE_P(BothFormats, ConvertedLayerCacheTest,
                         ::testing::Values(LayerFormat::kEstargz, LayerFormat::kZstdChunked),
                         [](const auto& info) {
                           return info.param == LayerFormat::kEstargz ? "Estargz" : "ZstdChunked";
                         });

}  // namespace
}  // namespace lazysnap

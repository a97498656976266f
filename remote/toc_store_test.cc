#include "remote/toc_store.h"

#include <gtest/gtest.h>

#include "base/stream.h"
#include "cache/testing.h"
#include "format/estargz_testutil.h"

namespace lazysnap {
namespace {

std::unique_ptr<SeekableLayer> TestLayer() {
  lazysnap::testing::EstargzBuilder b;
  b.AddDir("etc");
  b.AddFile("etc/hosts", "127.0.0.1 localhost\n");
  b.AddFile("bin/big", cache_testing::PseudoRandom(50000, 1), /*chunk_size=*/4096, 0755);
  MemoryBlobSource blob(b.Finish());
  auto layer = OpenLayer(blob, OpenOptions{});
  EXPECT_TRUE(layer.ok()) << layer.status();
  return layer.ok() ? *std::move(layer) : nullptr;
}

TEST(TocStoreTest, RoundTrip) {
  cache_testing::TempDir dir;
  auto layer = TestLayer();
  ASSERT_NE(layer, nullptr);
  ASSERT_TRUE(SaveToc(dir.path(), *layer).ok());
  LayerFormat format = LayerFormat::kZstdChunked;
  auto loaded = LoadToc(dir.path(), LayerLimits{}, &format);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(format, LayerFormat::kEstargz);
  EXPECT_EQ((*loaded)->toc_digest, layer->toc_digest);
  EXPECT_EQ((*loaded)->blob_size, layer->blob_size);
  EXPECT_EQ((*loaded)->index.toc_offset(), layer->index.toc_offset());
  EXPECT_EQ((*loaded)->index.chunks().size(), layer->index.chunks().size());
  EXPECT_EQ((*loaded)->index.size(), layer->index.size());
}

TEST(TocStoreTest, NothingStoredIsNotFound) {
  cache_testing::TempDir dir;
  EXPECT_TRUE(absl::IsNotFound(LoadToc(dir.path(), LayerLimits{}).status()));
}

TEST(TocStoreTest, TamperedTocIsDataLoss) {
  cache_testing::TempDir dir;
  auto layer = TestLayer();
  ASSERT_NE(layer, nullptr);
  ASSERT_TRUE(SaveToc(dir.path(), *layer).ok());
  std::string toc = layer->toc_json;
  toc[toc.size() / 2] ^= 1;
  ASSERT_TRUE(WriteFileAtomically(dir.path() + "/toc.json", toc).ok());
  EXPECT_TRUE(absl::IsDataLoss(LoadToc(dir.path(), LayerLimits{}).status()));
  ASSERT_TRUE(WriteFileAtomically(dir.path() + "/toc.meta", "{not json").ok());
  EXPECT_TRUE(absl::IsDataLoss(LoadToc(dir.path(), LayerLimits{}).status()));
}

}  // namespace
}  // namespace lazysnap

#include "prefetch/trace.h"

#include <fstream>

#include "cache/testing.h"
#include "gtest/gtest.h"

namespace lazysnap {
namespace {

Sha256 D(std::string_view s) { return Sha256::Of(s); }

Trace Sample() {
  Trace t;
  t.manifest = D("manifest");
  t.layers.push_back({D("layer0"), D("toc0"), {{5, 0}, {3, 1}, {100, 250}}});
  t.layers.push_back({D("layer1"), D("toc1"), {}});
  return t;
}

TEST(TraceTest, EncodeParseRoundTrip) {
  Trace t = Sample();
  std::string json = EncodeTrace(t);
  EXPECT_NE(json.find(kTraceMediaType), std::string::npos);
  auto back = ParseTrace(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, t);
  EXPECT_EQ(back->access_count(), 3u);
  ASSERT_NE(back->Find(D("layer0")), nullptr);
  EXPECT_EQ(back->Find(D("layer0"))->chunks[1].chunk, 3u);
  EXPECT_EQ(back->Find(D("nope")), nullptr);
}

TEST(TraceTest, ManyChunksRoundTrip) {
  Trace t = Sample();
  for (uint32_t i = 1000; i < 1100; ++i) t.layers[1].chunks.push_back({i, i * 7});
  auto back = ParseTrace(EncodeTrace(t));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, t);
}

TEST(TraceTest, UnknownFieldsIgnored) {
  std::string json = EncodeTrace(Sample());
  json.insert(1, "\"annotations\":{\"x\":\"y\"},");
  EXPECT_TRUE(ParseTrace(json).ok());
}

TEST(TraceTest, BlobRangesRoundTripAndAreOptional) {
  Trace t = Sample();
  t.layers[0].blob_size = 1000;
  t.layers[0].ranges = {{10, 20}, {0, 5}, {900, 100}};
  std::string json = EncodeTrace(t);
  auto back = ParseTrace(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, t);
  // A trace written before the ranges (layer1 has none) parses, without them.
  EXPECT_EQ(back->layers[1].blob_size, 0u);
  EXPECT_TRUE(back->layers[1].ranges.empty());
}

TEST(TraceTest, AnEncodingOverTheLimitLeavesTheBlobRangesOut) {
  Trace t = Sample();
  t.layers[0].blob_size = 1 << 30;
  t.layers[0].chunks.clear();
  for (uint32_t i = 1000; i < 3000; ++i) {
    t.layers[0].chunks.push_back({i, i});
    t.layers[0].ranges.push_back({uint64_t{i} * 100000, 65536});
  }
  const std::string full = EncodeTrace(t);
  Trace bare = t;
  bare.layers[0].blob_size = 0;
  bare.layers[0].ranges.clear();
  const std::string without = EncodeTrace(bare);
  ASSERT_LT(without.size(), full.size());
  auto within = EncodeTraceWithin(t, full.size());  // fits: as is
  ASSERT_TRUE(within.ok()) << within.status();
  EXPECT_EQ(*within, full);
  within = EncodeTraceWithin(t, full.size() - 1);  // the chunks, without their ranges
  ASSERT_TRUE(within.ok()) << within.status();
  EXPECT_EQ(*within, without);
  auto back = ParseTrace(*within);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, bare);
  EXPECT_TRUE(absl::IsResourceExhausted(EncodeTraceWithin(t, without.size() - 1).status()));
}

TEST(TraceStoreTest, ATraceOverTheLimitIsStoredWithoutItsRangesAndReadBack) {
  // kMaxTraceBytes with ranges, under it without: Put keeps the chunks, Get reads them.
  cache_testing::TempDir dir;
  TraceStore store(dir.path());
  Trace t = Sample();
  LayerTrace& l = t.layers[0];
  l.chunks.clear();
  l.blob_size = kMaxTraceBlobBytes;
  for (uint32_t i = 0; l.chunks.size() < 4'000'000; ++i) {  // about 12 bytes each, 30 ranged
    l.chunks.push_back({i, 0});
    l.ranges.push_back({uint64_t{i} * 1'000'000'000, 1'000'000'000});
  }
  ASSERT_GT(EncodeTrace(t).size(), kMaxTraceBytes);
  ASSERT_TRUE(store.Put(t).ok());
  auto back = store.Get(t.manifest);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->layers[0].chunks.size(), l.chunks.size());
  EXPECT_TRUE(back->layers[0].ranges.empty());
}

TEST(TraceTest, BlobRangesMustMatchTheChunksAndLieInTheBlob) {
  Trace t = Sample();
  t.layers[0].blob_size = 1000;
  t.layers[0].ranges = {{10, 20}, {0, 5}};  // 2 ranges, 3 chunks
  auto bad = ParseTrace(EncodeTrace(t));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(SV(bad.status().message()).find("as long as"), std::string::npos) << bad.status();
  t.layers[0].ranges = {{10, 20}, {0, 5}, {990, 11}};  // past the blob's end
  bad = ParseTrace(EncodeTrace(t));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(SV(bad.status().message()).find("past the blob"), std::string::npos) << bad.status();
  t.layers[0].ranges = {{10, 20}, {0, 5}, {UINT64_MAX, 2}};  // no overflow past the check
  EXPECT_FALSE(ParseTrace(EncodeTrace(t)).ok());
}

void ExpectBad(std::string_view json, std::string_view needle) {
  auto t = ParseTrace(json);
  ASSERT_FALSE(t.ok()) << json;
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(SV(t.status().message()).find(needle), std::string::npos) << t.status();
}

TEST(TraceTest, RejectsMalformed) {
  const std::string m = D("m").ToString();
  const std::string head = StrCat("{\"mediaType\":\"", kTraceMediaType, "\",\"version\":1,");
  ExpectBad("", "not valid JSON");
  ExpectBad("[]", "not a JSON object");
  ExpectBad(StrCat("{\"mediaType\":\"x\",\"version\":1,\"manifest\":\"", m, "\",\"layers\":[]}"),
            "mediaType");
  ExpectBad(StrCat("{\"mediaType\":\"", kTraceMediaType, "\",\"version\":2,\"manifest\":\"", m,
                   "\",\"layers\":[]}"),
            "version");
  ExpectBad(StrCat(head, "\"manifest\":\"sha256:00\",\"layers\":[]}"), "manifest");
  ExpectBad(StrCat(head, "\"manifest\":\"", m, "\"}"), "layers");
  const std::string layer = StrCat("{\"digest\":\"", m, "\",\"toc_digest\":\"", m, "\",");
  ExpectBad(StrCat(head, "\"manifest\":\"", m, "\",\"layers\":[", layer, "\"chunks\":[[1]]}]}"),
            "[chunk, millis]");
  ExpectBad(StrCat(head, "\"manifest\":\"", m, "\",\"layers\":[", layer,
                   "\"chunks\":[[1,0],[-1,0]]}]}"),
            "chunks[1]");
  ExpectBad(StrCat(head, "\"manifest\":\"", m, "\",\"layers\":[", layer,
                   "\"chunks\":[[4294967296,0]]}]}"),
            "2^32");
  ExpectBad(StrCat(head, "\"manifest\":\"", m, "\",\"layers\":[", layer,
                   "\"chunks\":[[1,0],[1,5]]}]}"),
            "chunk 1 listed twice");
  ExpectBad(StrCat(head, "\"manifest\":\"", m, "\",\"layers\":[", layer, "\"chunks\":[]},",
                   layer, "\"chunks\":[]}]}"),
            "listed twice");
  ExpectBad(std::string(100, '[') + std::string(100, ']'), "nested too deeply");
  ExpectBad(std::string(kMaxTraceBytes + 1, ' '), "limit");
}

TEST(TraceStoreTest, PutGetListRemove) {
  cache_testing::TempDir dir;
  TraceStore store(dir.path());
  auto empty = store.List();
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  EXPECT_EQ(store.Get(D("manifest")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(store.Has(D("manifest")));

  Trace a = Sample();
  Trace b = Sample();
  b.manifest = D("other");
  ASSERT_TRUE(store.Put(a).ok());
  ASSERT_TRUE(store.Put(b).ok());
  EXPECT_TRUE(store.Has(a.manifest));
  EXPECT_EQ(store.PathOf(a.manifest), StrCat(dir.path(), "/traces/", a.manifest.Hex(), ".json"));
  auto got = store.Get(a.manifest);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, a);
  auto list = store.List();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);

  a.layers.pop_back();  // replace
  ASSERT_TRUE(store.Put(a).ok());
  EXPECT_EQ(store.Get(a.manifest)->layers.size(), 1u);

  ASSERT_TRUE(store.Remove(a.manifest).ok());
  EXPECT_EQ(store.Remove(a.manifest).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.List()->size(), 1u);
}

TEST(TraceStoreTest, PutCreatesAMissingRoot) {
  cache_testing::TempDir dir;
  TraceStore store(StrCat(dir.path(), "/new/root"));
  ASSERT_TRUE(store.Put(Sample()).ok());
  EXPECT_TRUE(store.Has(Sample().manifest));
}

TEST(TraceStoreTest, CorruptOrMisnamedFileIsAnError) {
  cache_testing::TempDir dir;
  TraceStore store(dir.path());
  Trace a = Sample();
  ASSERT_TRUE(store.Put(a).ok());
  // A valid trace stored under another manifest's name.
  Trace b = a;
  b.manifest = D("other");
  { std::ofstream(store.PathOf(b.manifest)) << EncodeTrace(a); }
  EXPECT_EQ(store.Get(b.manifest).status().code(), absl::StatusCode::kInvalidArgument);
  { std::ofstream(store.PathOf(a.manifest)) << "{"; }
  EXPECT_EQ(store.Get(a.manifest).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lazysnap

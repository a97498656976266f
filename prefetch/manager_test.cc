#include "prefetch/manager.h"

#include <sys/stat.h>

#include "absl/time/clock.h"
#include "base/testing.h"
#include "cache/testing.h"
#include "format/estargz_testutil.h"
#include "format/layer.h"
#include "gtest/gtest.h"

namespace lazysnap {
namespace {

using cache_testing::PseudoRandom;
using cache_testing::TempDir;

class ManagerTest : public ::testing::Test {
 protected:
  void Build(bool landmark) {
    lazysnap::testing::EstargzBuilder b;
    b.AddFile("bin/a", PseudoRandom(30000, 1), 8192, 0755);
    b.AddFile("bin/b", PseudoRandom(20000, 2), 8192);
    if (landmark) b.AddFile(".prefetch.landmark", "\x0f");
    for (int i = 0; i < 10; i++) b.AddFile(StrCat("lib/f", i), PseudoRandom(5000 + i, 10 + i));
    blob_ = b.Finish();
    mem_ = std::make_unique<MemoryBlobSource>(blob_);
    auto layer = OpenLayer(*mem_, OpenOptions{});
    ASSERT_TRUE(layer.ok()) << layer.status();
    layer_ = std::shared_ptr<const SeekableLayer>(*std::move(layer));
  }
  // A cold cache of the layer in a fresh directory, reading through a counting source.
  std::shared_ptr<LayerCache> ColdCache() {
    dirs_.push_back(std::make_unique<TempDir>());
    counting_ = std::make_shared<CountingBlobSource>(mem_.get());
    auto c = LayerCache::Open(dirs_.back()->path(), layer_->toc_digest, layer_->index.chunks(),
                              counting_,
                              std::make_shared<FormatChunkDecoder>(layer_->index));
    EXPECT_TRUE(c.ok()) << c.status();
    return std::shared_ptr<LayerCache>(*std::move(c));
  }
  MountedLayerInfo Info(std::shared_ptr<LayerCache> cache, bool keyed = true) {
    MountedLayerInfo i;
    i.id = "/mnt/1";
    if (keyed) i.image = manifest_;
    i.digest = layer_digest_;
    i.layer = layer_;
    i.cache = std::move(cache);
    return i;
  }
  const Entry& File(std::string_view path) {
    EntryId id = layer_->index.LookupPath(path);
    EXPECT_NE(id, kNoEntry) << path;
    return layer_->index.entry(id);
  }
  std::vector<uint32_t> ChunksOf(LayerCache& cache, std::string_view path) {
    const Entry& e = File(path);
    return cache.ChunksOfRange(e, 0, e.size);
  }
  void ReadAll(LayerCache& cache, std::string_view path) {
    const Entry& e = File(path);
    std::string buf(e.size, '\0');
    auto n = cache.ReadFile(e, 0, absl::MakeSpan(buf));
    ASSERT_TRUE(n.ok()) << n.status();
  }
  PrefetchConfig Config() {
    PrefetchConfig c;
    c.recording.quiet = absl::Milliseconds(100);
    return c;
  }
  // The trace stored under manifest_ in root_ (by a PrefetchManager that has finished).
  auto StoredTrace() const { return TraceStore(root_.path()).Get(manifest_); }

  TempDir root_;
  std::vector<std::unique_ptr<TempDir>> dirs_;
  std::string blob_;
  std::unique_ptr<MemoryBlobSource> mem_;
  std::shared_ptr<CountingBlobSource> counting_;
  std::shared_ptr<const SeekableLayer> layer_;
  Sha256 manifest_ = Sha256::Of("manifest");
  Sha256 layer_digest_ = Sha256::Of("layer");
};

TEST_F(ManagerTest, FirstRunRecordsATraceSecondColdStartReplaysIt) {
  Build(/*landmark=*/false);
  std::vector<uint32_t> want;
  {
    PrefetchManager m(Config(), root_.path());
    auto cache = ColdCache();
    m.LayerMounted(Info(cache));
    ASSERT_NE(cache->access_log(), nullptr);
    ReadAll(*cache, "lib/f3");
    ReadAll(*cache, "bin/b");
    ReadAll(*cache, "lib/f3");  // again: recorded once
    for (auto* p : {"lib/f3", "bin/b"}) {
      for (uint32_t c : ChunksOf(*cache, p)) want.push_back(c);
    }
    // The recording ends once reads have been quiet for 100 ms.
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (!m.store().Has(manifest_) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_TRUE(m.store().Has(manifest_));
    EXPECT_EQ(cache->access_log(), nullptr);  // recording stopped
    m.LayerUnmounted("/mnt/1");
  }
  auto trace = StoredTrace();
  ASSERT_TRUE(trace.ok()) << trace.status();
  const LayerTrace* lt = trace->Find(layer_digest_);
  ASSERT_NE(lt, nullptr);
  EXPECT_EQ(lt->toc_digest, layer_->toc_digest);
  std::vector<uint32_t> got;
  for (const TraceAccess& a : lt->chunks) got.push_back(a.chunk);
  EXPECT_EQ(got, want);

  // Cold start with the trace: the traced chunks are fetched before any read, in few requests.
  PrefetchManager m(Config(), root_.path());
  auto cache = ColdCache();
  m.LayerMounted(Info(cache));
  EXPECT_EQ(cache->access_log(), nullptr);  // a trace exists: no recording
  m.WaitIdle();
  for (uint32_t c : want) EXPECT_TRUE(cache->IsPresent(c)) << c;
  EXPECT_FALSE(cache->Complete());
  LayerCacheStats before = cache->stats();
  EXPECT_LE(before.prefetch_requests, 2u);
  ReadAll(*cache, "lib/f3");
  ReadAll(*cache, "bin/b");
  LayerCacheStats after = cache->stats();
  EXPECT_EQ(after.requests, before.requests);  // every read served from prefetched chunks
  EXPECT_EQ(after.prefetch_hits, want.size());
  m.LayerUnmounted("/mnt/1");
}

TEST_F(ManagerTest, AFailedMountLeavesNoRecordingEntryBehind) {
  // The replay (and the recording) start before the FUSE mount; when that mount fails,
  // containerd retries it. The retry's reads must make the trace, once: the failed attempt's
  // empty log used to stay first in the recording (and MergeAccessLogs keeps the first log of
  // a digest), so the stored trace listed the layer with no chunks.
  Build(/*landmark=*/false);
  {
    PrefetchManager m(Config(), root_.path());
    auto failed = ColdCache();
    m.LayerMounted(Info(failed));
    ASSERT_NE(failed->access_log(), nullptr);
    m.LayerMountFailed("/mnt/1");
    EXPECT_EQ(failed->access_log(), nullptr) << "the failed mount's log is still set";
    auto cache = ColdCache();
    m.LayerMounted(Info(cache));
    ASSERT_NE(cache->access_log(), nullptr);
    ReadAll(*cache, "lib/f3");
    m.FinishRecordings(/*all=*/true);
    m.LayerUnmounted("/mnt/1");
  }
  auto trace = StoredTrace();
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->layers.size(), 1u);
  std::vector<uint32_t> got;
  for (const TraceAccess& a : trace->layers[0].chunks) got.push_back(a.chunk);
  auto cache = ColdCache();
  EXPECT_EQ(got, ChunksOf(*cache, "lib/f3"));
}

TEST_F(ManagerTest, ARecordedTraceHasTheBlobRangesTheEarlyReplayFetches) {
  // A recorded trace holds each chunk's blob range and the blob's size, so that the next cold
  // start can fetch the replay's first requests before the TOC is in (EarlyRanges): exactly
  // the ranges the replay's requests will read.
  Build(/*landmark=*/false);
  {
    PrefetchManager m(Config(), root_.path());
    auto cache = ColdCache();
    m.LayerMounted(Info(cache));
    ReadAll(*cache, "lib/f3");
    ReadAll(*cache, "bin/a");
    m.FinishRecordings(/*all=*/true);
    m.LayerUnmounted("/mnt/1");
  }
  auto trace = StoredTrace();
  ASSERT_TRUE(trace.ok()) << trace.status();
  const LayerTrace* lt = trace->Find(layer_digest_);
  ASSERT_NE(lt, nullptr);
  EXPECT_EQ(lt->blob_size, blob_.size());
  ASSERT_EQ(lt->ranges.size(), lt->chunks.size());
  for (size_t i = 0; i < lt->chunks.size(); i++) {
    const Chunk& c = layer_->index.chunks()[lt->chunks[i].chunk];
    EXPECT_EQ(lt->ranges[i], (TraceRange{c.compressed_offset, c.compressed_size}));
  }

  PrefetchManager m(Config(), root_.path());
  uint64_t size = 0;
  std::vector<TraceRange> early = m.EarlyRanges(manifest_, layer_digest_, 16 << 20, &size);
  EXPECT_EQ(size, blob_.size());
  ASSERT_FALSE(early.empty());
  EXPECT_TRUE(m.EarlyRanges(manifest_, Sha256::Of("other layer"), 16 << 20, &size).empty());
  EXPECT_TRUE(m.EarlyRanges(Sha256::Of("other image"), layer_digest_, 16 << 20, &size).empty());
  EXPECT_LE(m.EarlyRanges(manifest_, layer_digest_, early[0].size, &size).size(), 1u);
  // The replay's requests read exactly those ranges, in that order.
  std::vector<TraceRange> reads;
  absl::Mutex mu;
  class Recording : public BlobSource {
   public:
    Recording(BlobSource* inner, std::vector<TraceRange>* out, absl::Mutex* mu)
        : inner_(inner), out_(out), mu_(mu) {}
    uint64_t Size() const override { return inner_->Size(); }
    absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override {
      absl::MutexLock l(mu_);
      out_->push_back({offset, buf.size()});
      return inner_->ReadAt(offset, buf);
    }
   private:
    BlobSource* inner_;
    std::vector<TraceRange>* out_;
    absl::Mutex* mu_;
  };
  dirs_.push_back(std::make_unique<TempDir>());
  auto c = LayerCache::Open(dirs_.back()->path(), layer_->toc_digest, layer_->index.chunks(),
                            std::make_shared<Recording>(mem_.get(), &reads, &mu),
                            std::make_shared<FormatChunkDecoder>(layer_->index));
  ASSERT_TRUE(c.ok()) << c.status();
  m.LayerMounted(Info(std::shared_ptr<LayerCache>(*std::move(c))));
  m.WaitIdle();
  auto by_offset = [](const TraceRange& a, const TraceRange& b) { return a.offset < b.offset; };
  std::sort(reads.begin(), reads.end(), by_offset);  // (workers run them in parallel)
  std::sort(early.begin(), early.end(), by_offset);
  EXPECT_EQ(reads, early);
  m.LayerUnmounted("/mnt/1");
}

TEST_F(ManagerTest, ALayerWhoseTocDiffersIsNotReplayed) {
  Build(/*landmark=*/false);
  Trace t;
  t.manifest = manifest_;
  t.layers.push_back({layer_digest_, Sha256::Of("another toc"), {{0, 0}, {1, 0}}});
  ASSERT_TRUE(TraceStore(root_.path()).Put(t).ok());
  PrefetchManager m(Config(), root_.path());
  auto cache = ColdCache();
  m.LayerMounted(Info(cache));
  m.WaitIdle();
  EXPECT_EQ(counting_->reads(), 0u);
  EXPECT_EQ(cache->access_log(), nullptr);  // nor recorded: the image has a trace
  m.LayerUnmounted("/mnt/1");
}

TEST_F(ManagerTest, LandmarkPrefetchesThePrioritizedFilesOnly) {
  Build(/*landmark=*/true);
  ASSERT_TRUE(layer_->index.prefetch_landmark_offset().has_value());
  PrefetchManager m(Config(), root_.path());
  auto cache = ColdCache();
  m.LayerMounted(Info(cache, /*keyed=*/false));
  m.WaitIdle();
  for (auto* p : {"bin/a", "bin/b"}) {
    for (uint32_t c : ChunksOf(*cache, p)) EXPECT_TRUE(cache->IsPresent(c)) << p;
  }
  for (uint32_t c : ChunksOf(*cache, "lib/f0")) EXPECT_FALSE(cache->IsPresent(c));
  m.LayerUnmounted("/mnt/1");
}

TEST_F(ManagerTest, BackgroundFetchCompletesTheLayer) {
  Build(/*landmark=*/false);
  PrefetchConfig c = Config();
  c.background_fetch = true;
  c.record = false;
  PrefetchManager m(c, root_.path());
  auto cache = ColdCache();
  m.LayerMounted(Info(cache));
  m.WaitIdle();
  EXPECT_TRUE(cache->Complete());
  m.LayerUnmounted("/mnt/1");
}

class FakeSource : public TraceSource {
 public:
  explicit FakeSource(Trace t) : trace_(std::move(t)) {}
  absl::StatusOr<Trace> Fetch(const std::string& ref, const Sha256& manifest) override {
    calls_++;
    ref_ = ref;
    if (manifest != trace_.manifest) return absl::NotFoundError("none");
    return trace_;
  }
  void Hint(const std::string& ref, const Sha256& manifest) override { hints_++; }
  int calls_ = 0;
  int hints_ = 0;
  std::string ref_;

 private:
  Trace trace_;
};

TEST_F(ManagerTest, TraceFromTheSourceIsReplayedAndStoredLocally) {
  Build(/*landmark=*/false);
  Trace t;
  t.manifest = manifest_;
  t.layers.push_back({layer_digest_, layer_->toc_digest, {{2, 0}}});
  auto source = std::make_shared<FakeSource>(t);
  PrefetchManager m(Config(), root_.path());
  m.SetTraceSource(source);
  auto cache = ColdCache();
  MountedLayerInfo info = Info(cache);
  info.image_ref = "registry.example/app:1";
  m.HintImage(info.image_ref, manifest_);
  EXPECT_EQ(source->hints_, 1);
  m.LayerMounted(info);
  m.WaitIdle();
  EXPECT_TRUE(cache->IsPresent(2));
  EXPECT_EQ(source->calls_, 1);
  EXPECT_EQ(source->ref_, "registry.example/app:1");
  EXPECT_TRUE(m.store().Has(manifest_));
  m.LayerUnmounted("/mnt/1");
  info.id = "/mnt/2";
  m.HintImage(info.image_ref, manifest_);  // known now: no hint, no second lookup
  m.LayerMounted(info);
  EXPECT_EQ(source->calls_, 1);
  EXPECT_EQ(source->hints_, 1);
  m.LayerUnmounted("/mnt/2");
}

}  // namespace
}  // namespace lazysnap

#include "prefetch/scheduler.h"

#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "cache/testing.h"
#include "gtest/gtest.h"

namespace lazysnap {
namespace {

using cache_testing::MakeTestLayer;
using cache_testing::PlainChunkDecoder;
using cache_testing::RecordingBlobSource;
using cache_testing::TempDir;
using cache_testing::TestLayer;

// A source whose reads take time in proportion to their size (a slow registry).
class SlowSource : public RecordingBlobSource {
 public:
  SlowSource(std::string data, absl::Duration per_mib)
      : RecordingBlobSource(std::move(data)), per_mib_(per_mib) {}
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override {
    absl::Status s = RecordingBlobSource::ReadAt(offset, buf);  // recorded at once
    absl::SleepFor(per_mib_ * (static_cast<double>(buf.size()) / (1 << 20)));
    return s;
  }

 private:
  absl::Duration per_mib_;
};

// Chunk ids 0 .. n-1, in order.
std::vector<uint32_t> FirstChunks(uint32_t n) {
  std::vector<uint32_t> order(n);
  for (uint32_t i = 0; i < n; i++) order[i] = i;
  return order;
}

// Options that fetch one chunk per batch and per request, one worker, no gap bridged: the
// requests follow the job's order exactly.
PrefetchOptions OneChunkAtATime() {
  PrefetchOptions o;
  o.workers = 1;
  o.max_gap_bytes = 0;
  o.first_batch_bytes = 1;  // batches of 1, 2, 4... chunks
  o.max_batch_bytes = 1;    // ...capped at one chunk
  return o;
}

// A LayerCache over a synthetic layer (cache_testing::MakeTestLayer) whose blob is read
// through a recording source (source_), and the prefetch jobs that fill it.
class SchedulerTest : public ::testing::Test {
 protected:
  // Opens cache_ over `layer`, read through a RecordingBlobSource of its blob.
  void Use(TestLayer layer, LayerCacheOptions options = {}) {
    auto source = std::make_shared<RecordingBlobSource>(layer.blob);
    Open(std::move(layer), std::move(source), options);
  }
  // The same, read through a SlowSource taking `per_mib` a MiB (source_ is that source).
  void UseSlow(TestLayer layer, absl::Duration per_mib) {
    auto source = std::make_shared<SlowSource>(layer.blob, per_mib);
    Open(std::move(layer), std::move(source), {});
  }
  PrefetchJob Job(std::vector<uint32_t> order, bool background = false) {
    PrefetchJob j;
    j.name = "test";
    j.cache = cache_;
    j.chunks = layer_.chunks;
    j.order = std::move(order);
    j.background = background;
    return j;
  }
  // The chunk ids of file `f`, in order.
  std::vector<uint32_t> ChunksOfFile(size_t f) const {
    std::vector<uint32_t> order = FirstChunks(layer_.files[f].chunks_count);
    for (uint32_t& c : order) c += layer_.files[f].chunks_begin;
    return order;
  }
  // Runs `job` on a scheduler of its own with options `o` until it is done; the scheduler
  // is gone on return.
  void RunToIdle(const PrefetchOptions& o, PrefetchJob job) {
    PrefetchScheduler s(o);
    s.Submit(std::move(job));
    s.WaitIdle();
  }
  // Waits until the source has seen a request.
  void WaitForFirstRequest() {
    while (source_->requests().empty()) absl::SleepFor(absl::Milliseconds(1));
  }
  // Until a request starting at blob offset `offset` is in flight (or done). Workers run a
  // batch's requests in parallel, so the first request seen may be any of them.
  void WaitForRequestAt(uint64_t offset) {
    for (;;) {
      for (const auto& r : source_->requests()) {
        if (r.offset == offset) return;
      }
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  bool Read(size_t f) {
    std::string buf(layer_.contents[f].size(), '\0');
    auto n = cache_->ReadFile(layer_.files[f], 0, absl::MakeSpan(buf));
    return n.ok() && buf == layer_.contents[f];
  }

  TempDir dir_;
  TestLayer layer_;
  std::shared_ptr<RecordingBlobSource> source_;
  std::shared_ptr<LayerCache> cache_;

 private:
  void Open(TestLayer layer, std::shared_ptr<RecordingBlobSource> source,
            LayerCacheOptions options) {
    layer_ = std::move(layer);
    source_ = std::move(source);
    auto c = LayerCache::Open(dir_.path(), Sha256::Of("toc"), layer_.chunks, source_,
                              std::make_shared<PlainChunkDecoder>(), options);
    ASSERT_TRUE(c.ok()) << c.status();
    cache_ = std::move(*c);
  }
};

TEST_F(SchedulerTest, ReplaysInTraceOrderBatchByBatch) {
  // 8 files of one 64 KiB chunk each, 1 MiB apart: no coalescing across files.
  Use(MakeTestLayer(std::vector<uint64_t>(8, 65536), 65536, /*gap=*/1 << 20));
  std::vector<uint32_t> order = {5, 2, 7, 0, 3};
  RunToIdle(OneChunkAtATime(), Job(order));  // one request per chunk, in trace order
  auto reqs = source_->requests();
  ASSERT_EQ(reqs.size(), order.size());
  for (size_t i = 0; i < order.size(); i++) {
    EXPECT_EQ(reqs[i].offset, layer_.chunks[order[i]].compressed_offset) << i;
  }
  LayerCacheStats st = cache_->stats();
  EXPECT_EQ(st.prefetch_chunks, order.size());
  EXPECT_EQ(st.prefetch_requests, order.size());
  for (uint32_t c : order) EXPECT_TRUE(cache_->IsPresent(c));
  EXPECT_FALSE(cache_->IsPresent(1));
}

TEST_F(SchedulerTest, GrowingBatchesCoalesceNearbyChunksAcrossGaps) {
  // 64 files of 4 KiB, 1000 bytes apart; the trace visits them out of order.
  Use(MakeTestLayer(std::vector<uint64_t>(64, 4096), 4096, /*gap=*/1000));
  std::vector<uint32_t> order;
  for (uint32_t i = 0; i < 64; i++) order.push_back((i * 37) % 64);
  PrefetchOptions o;
  o.workers = 1;
  o.max_gap_bytes = 1 << 20;  // bridges any gap of this small layer
  o.first_batch_bytes = 8192;
  o.max_batch_bytes = 1 << 20;
  RunToIdle(o, Job(order));
  // Batches of 2, 4, 8, 16, 34 chunks, each one request: the first (chunks 0 and 37) spans
  // chunks 0..37 and keeps all of them, so no chunk is fetched twice.
  EXPECT_LE(source_->requests().size(), 5u);
  EXPECT_EQ(cache_->stats().chunks_fetched, 64u);
  EXPECT_TRUE(cache_->Complete());
  for (size_t f = 0; f < 64; f++) ASSERT_TRUE(Read(f));
  EXPECT_EQ(cache_->stats().prefetch_hits, 64u);
  EXPECT_EQ(cache_->stats().prefetch_unused_bytes(), 0u);
}

TEST_F(SchedulerTest, NoGapBridgingMeansOneRequestPerSeparatedChunk) {
  Use(MakeTestLayer(std::vector<uint64_t>(16, 4096), 4096, /*gap=*/1000));
  PrefetchOptions o;
  o.max_gap_bytes = 0;
  RunToIdle(o, Job(FirstChunks(16)));
  EXPECT_EQ(source_->requests().size(), 16u);
}

TEST_F(SchedulerTest, MaxRequestBytesBoundsReplayRequestsToo) {
  // 16 adjacent chunks of 64 KiB: one 1 MiB replay request by default; max_request_bytes
  // 128 KiB (config [prefetch] max_request_bytes) makes every request at most that.
  Use(MakeTestLayer(std::vector<uint64_t>(16, 65536), 65536, /*gap=*/0));
  PrefetchOptions o;
  o.workers = 1;
  o.max_request_bytes = 128 << 10;
  RunToIdle(o, Job(FirstChunks(16)));
  ASSERT_GE(source_->requests().size(), 8u);
  for (const auto& r : source_->requests()) EXPECT_LE(r.size, 128u << 10);
  EXPECT_TRUE(cache_->Complete());
}

TEST_F(SchedulerTest, BandwidthLimit) {
  // 16 chunks of 64 KiB = 1 MiB at 2 MiB/s: the reservations after the first batches must
  // wait about 0.4 s in all; unlimited, the same work takes milliseconds.
  Use(MakeTestLayer(std::vector<uint64_t>(16, 65536), 65536));
  PrefetchOptions o;
  o.first_batch_bytes = 128 << 10;
  o.max_batch_bytes = 128 << 10;
  o.bandwidth_limit = 2 << 20;
  absl::Time start = absl::Now();
  RunToIdle(o, Job(FirstChunks(16)));
  absl::Duration limited = absl::Now() - start;
  EXPECT_TRUE(cache_->Complete());
  // 8 batches of 128 KiB; the first rides the 128 KiB burst, the last waits for 7 * 128 KiB
  // - 128 KiB (burst) = 768 KiB at 2 MiB/s = 375 ms.
  EXPECT_GE(limited, absl::Milliseconds(350));
  EXPECT_LT(limited, absl::Seconds(3));
}

TEST_F(SchedulerTest, BandwidthLimitHoldsForLargeBackgroundBatches) {
  // 4 MiB in the background at 4 MiB/s: batches are cut to a quarter second's worth (1 MiB),
  // so after the burst the last two wait 0.25 s and 0.5 s; one 32 MiB batch would not wait.
  Use(MakeTestLayer(std::vector<uint64_t>(64, 65536), 65536));
  PrefetchOptions o;
  o.workers = 1;
  o.bandwidth_limit = 4 << 20;
  absl::Time start = absl::Now();
  RunToIdle(o, Job({}, /*background=*/true));
  EXPECT_TRUE(cache_->Complete());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(450));
  for (const auto& r : source_->requests()) EXPECT_LE(r.size, 1u << 20);
}

TEST(TokenBucketTest, ReservationsFollowTheRate) {
  TokenBucket b(1000, 500);  // 1000 B/s, 500 B burst
  absl::Time t = absl::FromUnixSeconds(1000);
  EXPECT_EQ(b.Reserve(500, t), absl::ZeroDuration());  // the burst
  EXPECT_EQ(b.Reserve(1000, t), absl::ZeroDuration());  // drains at t: may start (debt)
  EXPECT_EQ(b.Reserve(100, t), absl::Seconds(1));       // after the 1000 bytes drained
  EXPECT_EQ(b.Reserve(100, t + absl::Seconds(5)), absl::ZeroDuration());  // idle again
  TokenBucket unlimited(0, 0);
  EXPECT_EQ(unlimited.Reserve(1 << 30, t), absl::ZeroDuration());
}

TEST_F(SchedulerTest, PrefetchNeverDelaysAnOnDemandReadBehindIt) {
  // File 0: 4 MiB the prefetch fetches in one request (about 800 ms at 200 ms/MiB); file 1:
  // 4 KiB far away, read on demand while that request runs.
  UseSlow(MakeTestLayer({4 << 20, 4096}, 65536, /*gap=*/8 << 20), absl::Milliseconds(200));
  PrefetchOptions o;
  o.first_batch_bytes = 8 << 20;
  o.ordered_request_bytes = 8 << 20;  // one large request
  PrefetchScheduler s(o);
  absl::Time start = absl::Now();
  s.Submit(Job(ChunksOfFile(0)));
  WaitForFirstRequest();
  ASSERT_TRUE(Read(1));
  absl::Duration ondemand = absl::Now() - start;
  EXPECT_FALSE(cache_->IsPresent(0)) << "the prefetch finished first";
  s.WaitIdle();
  absl::Duration prefetch = absl::Now() - start;
  EXPECT_LT(ondemand, prefetch);
  EXPECT_LT(ondemand, absl::Milliseconds(400));
  EXPECT_EQ(source_->requests().size(), 2u);
  EXPECT_EQ(cache_->stats().ondemand_chunks(), 1u);
  // A read of a chunk the prefetch already holds is served from it, not fetched again.
  ASSERT_TRUE(Read(0));
  EXPECT_EQ(source_->requests().size(), 2u);
  EXPECT_EQ(cache_->stats().prefetch_hits, layer_.files[0].chunks_count);
}

TEST_F(SchedulerTest, ScatteredChunksOfOneBatchAreFetchedInParallel) {
  // A trace's last batch: 8 small files 1 MiB apart, within one 1 MiB batch. Each is its own
  // request (no gap bridged); they must not go one after another (8 round trips: python's
  // replay ended with ~90 ms of such requests in series at 20 ms RTT), but `workers` at once.
  Use(MakeTestLayer(std::vector<uint64_t>(8, 4096), 4096, /*gap=*/1 << 20));
  absl::Mutex mu;
  int active = 0, most = 0;
  source_->set_hook([&](uint64_t, absl::Span<char>) {
    {
      absl::MutexLock lock(&mu);
      most = std::max(most, ++active);
    }
    absl::SleepFor(absl::Milliseconds(30));  // a round trip
    absl::MutexLock lock(&mu);
    active--;
    return absl::OkStatus();
  });
  RunToIdle(PrefetchOptions{}, Job({7, 1, 4, 2, 6, 0, 5, 3}));  // workers 4, 1 MiB batches
  EXPECT_EQ(source_->requests().size(), 8u);
  EXPECT_TRUE(cache_->Complete());
  absl::MutexLock lock(&mu);
  EXPECT_EQ(most, 4) << "requests of one batch ran one after another";
}

TEST_F(SchedulerTest, AReadOfAChunkBeingPrefetchedWaitsOnThatFetch) {
  UseSlow(MakeTestLayer({1 << 20}, 65536), absl::Milliseconds(300));
  PrefetchOptions o;
  o.first_batch_bytes = 8 << 20;
  PrefetchScheduler s(o);
  s.Submit(Job(ChunksOfFile(0)));
  WaitForFirstRequest();
  ASSERT_TRUE(Read(0));
  EXPECT_EQ(source_->requests().size(), 1u);  // one fetch, shared
  EXPECT_GE(cache_->stats().waits, 1u);
}

TEST_F(SchedulerTest, ARacingReadWaitsOnTheReplayInsteadOfFetchingTwice) {
  // A 4 MiB file replayed in one batch: ordered requests are cut to 1 MiB, within what an
  // on-demand read waits on, so a read of its first chunk shares the prefetch's fetch.
  // (Before, one 4 MiB request: the read fetched the chunk a second time.)
  UseSlow(MakeTestLayer({4 << 20}, 65536), absl::Milliseconds(200));
  PrefetchOptions o;
  o.first_batch_bytes = 8 << 20;
  PrefetchScheduler s(o);
  s.Submit(Job(ChunksOfFile(0)));
  WaitForRequestAt(layer_.chunks[0].compressed_offset);  // the request holding chunk 0
  std::string buf(65536, '\0');
  ASSERT_TRUE(cache_->ReadFile(layer_.files[0], 0, absl::MakeSpan(buf)).ok());
  s.WaitIdle();
  LayerCacheStats st = cache_->stats();
  EXPECT_EQ(st.bytes_fetched, uint64_t{4} << 20);  // every byte once
  EXPECT_EQ(st.ondemand_chunks(), 0u);
  EXPECT_EQ(st.prefetch_requests, 4u);
  for (const auto& r : source_->requests()) EXPECT_LE(r.size, 1u << 20);
}

TEST_F(SchedulerTest, ReplayDoesNotWaitForOnDemandFetches) {
  // File 0 is read on demand and its fetch stalls; the replay of file 1 still completes.
  Use(MakeTestLayer({4096, 4096}, 4096, /*gap=*/1 << 20));
  absl::Notification stalled, release;
  source_->set_hook([&](uint64_t offset, absl::Span<char>) {
    if (offset == 0) {
      stalled.Notify();
      release.WaitForNotification();
    }
    return absl::OkStatus();
  });
  std::thread reader([&] { EXPECT_TRUE(Read(0)); });
  stalled.WaitForNotification();
  PrefetchScheduler s(PrefetchOptions{});
  s.Submit(Job({1}));
  s.WaitIdle();
  EXPECT_TRUE(cache_->IsPresent(1));
  EXPECT_FALSE(cache_->IsPresent(0));
  release.Notify();
  reader.join();
}

TEST(PrefetchRequestBytesTest, CountsBridgedGapsAsEnsureChunksMergesThem) {
  // Chunks of 100 bytes at 0, 150, 1000 and 5000 (one chunk table, files irrelevant here).
  std::vector<Chunk> chunks(4);
  const uint64_t offsets[] = {0, 150, 1000, 5000};
  for (int i = 0; i < 4; i++) {
    chunks[i].compressed_offset = offsets[i];
    chunks[i].compressed_size = 100;
  }
  EXPECT_EQ(PrefetchRequestBytes(chunks, {3, 0, 1, 2}, {0, 1 << 20}), 400u);
  EXPECT_EQ(PrefetchRequestBytes(chunks, {0, 1}, {64, 1 << 20}), 250u);   // 50-byte gap
  EXPECT_EQ(PrefetchRequestBytes(chunks, {0, 1, 2}, {1000, 1 << 20}), 1100u);
  EXPECT_EQ(PrefetchRequestBytes(chunks, {0, 1, 2, 3}, {1 << 20, 1 << 20}), 5100u);
  EXPECT_EQ(PrefetchRequestBytes(chunks, {0, 1, 2, 3}, {1 << 20, 1100}), 1200u);  // split
  EXPECT_EQ(PrefetchRequestBytes(chunks, {}, {1 << 20, 1 << 20}), 0u);
}

TEST_F(SchedulerTest, BandwidthLimitCountsBridgedGaps) {
  // Pairs of 64 KiB chunks 1 MiB apart; each batch (one pair) is one request bridging the
  // gap: 1.125 MiB on the wire, not 128 KiB. 3 batches at 8 MiB/s: after the 128 KiB burst
  // the last waits for 2.25 MiB - 128 KiB = about 265 ms (counting chunks only: 16 ms).
  Use(MakeTestLayer(std::vector<uint64_t>(6, 65536), 65536, /*gap=*/1 << 20));
  PrefetchOptions o;
  o.workers = 1;
  o.max_gap_bytes = 2 << 20;
  o.ordered_request_bytes = 4 << 20;  // (a quarter second's worth under the limit: 2 MiB)
  o.first_batch_bytes = 128 << 10;
  o.max_batch_bytes = 128 << 10;
  o.bandwidth_limit = 8 << 20;
  absl::Time start = absl::Now();
  RunToIdle(o, Job({0, 1, 2, 3, 4, 5}));
  EXPECT_TRUE(cache_->Complete());
  EXPECT_EQ(source_->requests().size(), 3u);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(240));
}

TEST_F(SchedulerTest, BackgroundFetchCompletesTheLayerAfterTheTrace) {
  Use(MakeTestLayer(std::vector<uint64_t>(10, 8192), 4096, /*gap=*/100));
  RunToIdle(OneChunkAtATime(), Job({19}, /*background=*/true));
  EXPECT_TRUE(cache_->Complete());
  auto reqs = source_->requests();
  ASSERT_FALSE(reqs.empty());
  EXPECT_EQ(reqs[0].offset, layer_.chunks[19].compressed_offset);  // the trace first
}

TEST_F(SchedulerTest, CancelDropsQueuedBatchesAndReleasesTheCache) {
  // Chunks 1 MiB apart, fetched one per request (no gap is bridged either way).
  UseSlow(MakeTestLayer(std::vector<uint64_t>(20, 65536), 65536, /*gap=*/1 << 20),
          absl::Milliseconds(500));
  PrefetchScheduler s(OneChunkAtATime());
  uint64_t id = s.Submit(Job(FirstChunks(20)));
  WaitForFirstRequest();
  s.Cancel(id);
  EXPECT_EQ(cache_.use_count(), 1);  // only ours
  size_t after = source_->requests().size();
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(source_->requests().size(), after);
  EXPECT_LE(after, 2u);
  EXPECT_FALSE(cache_->Complete());
}

}  // namespace
}  // namespace lazysnap

#include "cache/layer_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
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

class LayerCacheTest : public ::testing::Test {
 protected:
  void Use(TestLayer layer) {
    layer_ = std::move(layer);
    source_ = std::make_shared<RecordingBlobSource>(layer_.blob);
  }
  absl::StatusOr<std::unique_ptr<LayerCache>> OpenCache(LayerCacheOptions options = {}) {
    return LayerCache::Open(dir_.path(), layer_id_, layer_.chunks, source_,
                            std::make_shared<PlainChunkDecoder>(), options);
  }
  std::unique_ptr<LayerCache> MustOpen(LayerCacheOptions options = {}) {
    auto c = OpenCache(options);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }
  // Reads [offset, offset + n) of file f through the cache and checks the bytes.
  void ExpectRead(LayerCache& cache, size_t f, uint64_t offset, size_t n) {
    std::string buf(n, '\0');
    auto got = cache.ReadFile(layer_.files[f], offset, absl::MakeSpan(buf));
    ASSERT_TRUE(got.ok()) << got.status();
    std::string want =
        layer_.contents[f].substr(std::min<uint64_t>(offset, layer_.contents[f].size()), n);
    ASSERT_EQ(*got, want.size());
    EXPECT_TRUE(buf.substr(0, *got) == want) << "file " << f << " at " << offset;
  }

  TempDir dir_;
  Sha256 layer_id_ = Sha256::Of("toc");
  TestLayer layer_;
  std::shared_ptr<RecordingBlobSource> source_;
};

// Data offsets are the chunks' prefix sums (kept as every 4th plus the sizes in between), and
// a file read through them across many chunks is exact.
TEST_F(LayerCacheTest, DataOffsetsArePrefixSumsAcrossManyChunks) {
  Use(MakeTestLayer({1000, 37 * 100 + 1, 0, 5, 3 * 100}, 100));
  auto cache = MustOpen();
  uint64_t sum = 0;
  for (uint32_t i = 0; i < layer_.chunks.size(); i++) {
    EXPECT_EQ(cache->data_offset(i), sum) << i;
    sum += layer_.chunks[i].size;
  }
  ASSERT_GT(layer_.chunks.size(), 40u);
  std::string buf(layer_.contents[1].size(), '\0');
  auto got = cache->ReadFile(layer_.files[1], 0, absl::MakeSpan(buf));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(buf, layer_.contents[1]);
}

TEST_F(LayerCacheTest, ReadsFilesAndPersistsAcrossReopen) {
  Use(MakeTestLayer({10000, 0, 1, 65536, 4096}, 4096));
  {
    auto cache = MustOpen();
    for (size_t f = 0; f < layer_.files.size(); f++) ExpectRead(*cache, f, 0, 70000);
    ExpectRead(*cache, 0, 4000, 200);   // spans a chunk boundary
    ExpectRead(*cache, 3, 65530, 100);  // short at the end of the file
    ExpectRead(*cache, 3, 65536, 100);  // at the end: 0 bytes
    EXPECT_TRUE(cache->Complete());
    EXPECT_EQ(cache->stats().chunks_fetched, layer_.chunks.size());
  }
  source_->clear();
  auto cache = MustOpen();
  EXPECT_TRUE(cache->reset_reason().ok());
  EXPECT_TRUE(cache->Complete());
  for (size_t f = 0; f < layer_.files.size(); f++) ExpectRead(*cache, f, 0, 70000);
  EXPECT_TRUE(source_->requests().empty());
  EXPECT_EQ(cache->stats().chunks_fetched, 0u);
}

TEST_F(LayerCacheTest, FileRangeIsOneContiguousRangeOfTheDataFile) {
  Use(MakeTestLayer({5000, 20000}, 4096));
  auto cache = MustOpen();
  auto r = cache->FileRange(layer_.files[1], 3000, 10000);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->offset, 5000u + 3000u);
  EXPECT_EQ(r->length, 10000u);
  std::string buf(r->length, '\0');
  ASSERT_EQ(pread(r->fd, buf.data(), buf.size(), r->offset), static_cast<ssize_t>(buf.size()));
  EXPECT_TRUE(buf == layer_.contents[1].substr(3000, 10000));
}

TEST_F(LayerCacheTest, CoalescesAdjacentChunksIntoOneRequest) {
  Use(MakeTestLayer({40960}, 4096));
  auto cache = MustOpen();
  ExpectRead(*cache, 0, 0, 40960);
  ASSERT_EQ(source_->requests().size(), 1u);
  EXPECT_EQ(source_->requests()[0].offset, 0u);
  EXPECT_EQ(source_->requests()[0].size, 40960u);
  auto st = cache->stats();
  EXPECT_EQ(st.requests, 1u);
  EXPECT_EQ(st.chunks_fetched, 10u);
  EXPECT_EQ(st.bytes_fetched, 40960u);
}

TEST_F(LayerCacheTest, RequestSizeIsCapped) {
  Use(MakeTestLayer({40960}, 4096));
  LayerCacheOptions o;
  o.max_request_bytes = 16384;
  auto cache = MustOpen(o);
  ExpectRead(*cache, 0, 0, 40960);
  auto reqs = source_->requests();
  ASSERT_EQ(reqs.size(), 3u);
  for (auto& r : reqs) EXPECT_LE(r.size, 16384u);
}

TEST_F(LayerCacheTest, AChunkLargerThanTheRequestCapIsFetchedWhole) {
  Use(MakeTestLayer({65536, 65536}, 65536));
  LayerCacheOptions o;
  o.max_request_bytes = 16384;
  auto cache = MustOpen(o);
  std::vector<uint32_t> both = {0, 1};
  ASSERT_TRUE(cache->EnsureChunks(both).ok());
  ASSERT_EQ(source_->requests().size(), 2u);
  EXPECT_EQ(source_->requests()[0].size, 65536u);
  ExpectRead(*cache, 1, 100, 65536);
}

TEST_F(LayerCacheTest, CoalescesAcrossSmallGapsOnly) {
  Use(MakeTestLayer({4096, 4096, 4096}, 4096, /*gap=*/100));
  LayerCacheOptions o;
  o.max_gap_bytes = 100;
  auto cache = MustOpen(o);
  std::vector<uint32_t> all = {0, 1, 2};
  ASSERT_TRUE(cache->EnsureChunks(all).ok());
  EXPECT_EQ(source_->requests().size(), 1u);

  TempDir other;
  o.max_gap_bytes = 99;
  auto cache2 = LayerCache::Open(other.path(), layer_id_, layer_.chunks, source_,
                                 std::make_shared<PlainChunkDecoder>(), o);
  ASSERT_TRUE(cache2.ok());
  source_->clear();
  ASSERT_TRUE((*cache2)->EnsureChunks(all).ok());
  EXPECT_EQ(source_->requests().size(), 3u);
}

TEST_F(LayerCacheTest, ConcurrentReadersGetCorrectBytesAndEachChunkIsFetchedOnce) {
  std::vector<uint64_t> sizes;
  for (int i = 0; i < 40; i++) sizes.push_back(1000 + i * 3331);
  Use(MakeTestLayer(sizes, 4096));
  source_->set_hook([](uint64_t, absl::Span<char>) {
    absl::SleepFor(absl::Microseconds(200));  // widen the race windows
    return absl::OkStatus();
  });
  LayerCacheOptions o;
  o.max_gap_bytes = 0;
  auto cache = MustOpen(o);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < 300; i++) {
        size_t f = rng() % layer_.files.size();
        uint64_t size = layer_.contents[f].size();
        uint64_t off = rng() % size;
        size_t n = 1 + rng() % 20000;
        std::string buf(n, '\0');
        auto got = cache->ReadFile(layer_.files[f], off, absl::MakeSpan(buf));
        std::string want = layer_.contents[f].substr(off, n);
        if (!got.ok() || *got != want.size() || buf.substr(0, *got) != want) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto st = cache->stats();
  EXPECT_GT(st.waits + st.hits, 0u);
  uint64_t fetched = 0;
  for (uint32_t i = 0; i < layer_.chunks.size(); i++) {
    int times = source_->TimesRead(layer_.chunks[i].compressed_offset);
    EXPECT_LE(times, 1) << "chunk " << i;
    EXPECT_EQ(times == 1, cache->IsPresent(i)) << "chunk " << i;
    fetched += times;
  }
  EXPECT_EQ(st.chunks_fetched, fetched);
}

TEST_F(LayerCacheTest, CorruptChunkIsAnErrorAndALaterGoodFetchSucceeds) {
  Use(MakeTestLayer({8192}, 4096));
  source_->set_hook([](uint64_t, absl::Span<char> buf) {
    buf[0] ^= 1;
    return absl::OkStatus();
  });
  auto cache = MustOpen();
  std::string buf(8192, '\0');
  auto got = cache->ReadFile(layer_.files[0], 0, absl::MakeSpan(buf));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(cache->IsPresent(0));  // the corrupt one
  EXPECT_TRUE(cache->IsPresent(1));   // its neighbour in the same request verified fine
  EXPECT_EQ(cache->stats().verification_failures, 1u);

  source_->set_hook(nullptr);
  ExpectRead(*cache, 0, 0, 8192);
  EXPECT_TRUE(cache->Complete());
  ASSERT_TRUE(cache->Flush().ok());
  cache.reset();
  // Only verified chunks ever reached the bitmap.
  auto again = MustOpen();
  EXPECT_TRUE(again->Complete());
  ExpectRead(*again, 0, 0, 8192);
}

TEST_F(LayerCacheTest, FetchFailureIsReportedAndRetried) {
  Use(MakeTestLayer({4096}, 4096));
  source_->set_hook(
      [](uint64_t, absl::Span<char>) { return absl::UnavailableError("connection reset"); });
  auto cache = MustOpen();
  std::string buf(10, '\0');
  EXPECT_EQ(cache->ReadFile(layer_.files[0], 0, absl::MakeSpan(buf)).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(cache->stats().fetch_failures, 1u);
  EXPECT_FALSE(cache->IsPresent(0));
  source_->set_hook(nullptr);
  ExpectRead(*cache, 0, 0, 10);
}

TEST_F(LayerCacheTest, WaitersOfAFailedFetchGetItsError) {
  Use(MakeTestLayer({4096}, 4096));
  std::atomic<int> calls{0};
  source_->set_hook([&](uint64_t, absl::Span<char>) {
    calls++;
    absl::SleepFor(absl::Milliseconds(200));
    return absl::DeadlineExceededError("slow registry");
  });
  auto cache = MustOpen();
  std::vector<absl::Status> results(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      std::vector<uint32_t> c = {0};
      results[t] = cache->EnsureChunks(c);
    });
  }
  for (auto& t : threads) t.join();
  for (auto& s : results) EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_LT(calls.load(), 4);  // at least some waited on a shared fetch
  EXPECT_EQ(calls.load() + static_cast<int>(cache->stats().waits), 4);
}

TEST_F(LayerCacheTest, SharedCompressedRangeIsFetchedOnce) {
  // Three small files packed in one "member" (eStargz innerOffset).
  TestLayer l;
  std::string member;
  for (int f = 0; f < 3; f++) {
    std::string data = cache_testing::PseudoRandom(100 + f * 50, f);
    Chunk c;
    c.compressed_offset = 0;
    c.inner_offset = static_cast<uint32_t>(member.size());
    c.size = static_cast<uint32_t>(data.size());
    c.entry = f;
    c.digest = ChunkDigest::Of(DigestKey(), Sha256::Of(data));
    c.has_digest = true;
    l.chunks.push_back(c);
    Entry e;
    e.size = data.size();
    e.chunks_begin = f;
    e.chunks_count = 1;
    l.files.push_back(e);
    member += data;
    l.contents.push_back(data);
  }
  for (auto& c : l.chunks) c.compressed_size = static_cast<uint32_t>(member.size());
  l.blob = member;
  Use(std::move(l));
  auto cache = MustOpen();
  ExpectRead(*cache, 1, 0, 1000);
  ExpectRead(*cache, 0, 0, 1000);
  ExpectRead(*cache, 2, 0, 1000);
  EXPECT_EQ(source_->requests().size(), 1u);
  EXPECT_EQ(cache->stats().chunks_fetched, 3u);
}

TEST_F(LayerCacheTest, ZerosChunksNeedNoFetch) {
  Use(MakeTestLayer({8192}, 4096));
  layer_.chunks[1].zeros = true;
  layer_.contents[0].replace(4096, 4096, std::string(4096, '\0'));
  auto cache = MustOpen();
  EXPECT_TRUE(cache->IsPresent(1));
  ExpectRead(*cache, 0, 4096, 4096);
  EXPECT_TRUE(source_->requests().empty());
  ExpectRead(*cache, 0, 0, 8192);
}

TEST_F(LayerCacheTest, PrefetchPriorityFetchesEverything) {
  Use(MakeTestLayer({100000, 100000}, 4096));
  LayerCacheOptions o;
  o.max_request_bytes = 32768;
  auto cache = MustOpen(o);
  std::vector<uint32_t> all;
  for (uint32_t i = 0; i < layer_.chunks.size(); i++) all.push_back(i);
  ASSERT_TRUE(cache->EnsureChunks(all, FetchPriority::kPrefetch).ok());
  EXPECT_TRUE(cache->Complete());
  for (auto& r : source_->requests()) EXPECT_LE(r.size, 32768u);
  ExpectRead(*cache, 1, 0, 100000);
}

TEST_F(LayerCacheTest, OnDemandReadsDoNotWaitBehindPrefetch) {
  Use(MakeTestLayer({4096, 4096}, 4096, /*gap=*/1 << 20));
  absl::Notification prefetch_started, release_prefetch;
  source_->set_hook([&](uint64_t offset, absl::Span<char>) {
    if (offset == 0) {  // file 0: the prefetch's request stalls
      prefetch_started.Notify();
      release_prefetch.WaitForNotification();
    }
    return absl::OkStatus();
  });
  LayerCacheOptions o;
  o.max_prefetch_fetches = 1;
  auto cache = MustOpen(o);
  std::thread prefetch([&] {
    std::vector<uint32_t> c = {0};
    EXPECT_TRUE(cache->EnsureChunks(c, FetchPriority::kPrefetch).ok());
  });
  prefetch_started.WaitForNotification();
  ExpectRead(*cache, 1, 0, 4096);  // would hang if it queued for the prefetch slot
  release_prefetch.Notify();
  prefetch.join();
  ExpectRead(*cache, 0, 0, 4096);
  EXPECT_EQ(source_->requests().size(), 2u);
}

TEST_F(LayerCacheTest, AReadOvertakesALargePrefetchRequestHoldingItsChunk) {
  // Chunk 0 of file 0 sits in a prefetch request larger than max_prefetch_wait_bytes that
  // stalls: the read fetches it itself instead of waiting; the prefetch's late write of the
  // same chunk is not counted twice.
  Use(MakeTestLayer({4 * 4096}, 4096));
  absl::Notification prefetch_started, release_prefetch;
  source_->set_hook([&](uint64_t, absl::Span<char> buf) {
    if (buf.size() > 4096 && !prefetch_started.HasBeenNotified()) {  // the prefetch request
      prefetch_started.Notify();
      release_prefetch.WaitForNotification();
    }
    return absl::OkStatus();
  });
  LayerCacheOptions o;
  o.max_prefetch_wait_bytes = 4096;
  auto cache = MustOpen(o);
  std::thread prefetch([&] {
    std::vector<uint32_t> c = {0, 1, 2, 3};
    EXPECT_TRUE(cache->EnsureChunks(c, FetchPriority::kPrefetch).ok());
  });
  prefetch_started.WaitForNotification();
  ExpectRead(*cache, 0, 0, 4096);  // would hang if it waited on the prefetch request
  release_prefetch.Notify();
  prefetch.join();
  ExpectRead(*cache, 0, 0, 4 * 4096);
  EXPECT_EQ(source_->requests().size(), 2u);
  LayerCacheStats s = cache->stats();
  EXPECT_EQ(s.present_chunks, 4u);
  EXPECT_EQ(s.chunks_fetched, 4u);
  EXPECT_EQ(s.prefetch_chunks, 3u);
  EXPECT_EQ(s.ondemand_chunks(), 1u);
  EXPECT_TRUE(cache->Complete());
}

TEST_F(LayerCacheTest, CrashBeforeTheBitIsPersistedMeansRefetch) {
  Use(MakeTestLayer({20000}, 4096));
  // A child process fetches (data written, bits not yet persisted) and dies without cleanup.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto cache = OpenCache();
    std::string buf(20000, '\0');
    bool ok = cache.ok() && (*cache)->ReadFile(layer_.files[0], 0, absl::MakeSpan(buf)).ok() &&
              (*cache)->Complete();
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto cache = MustOpen();
  EXPECT_EQ(cache->stats().present_chunks, 0u);
  ExpectRead(*cache, 0, 0, 20000);
  EXPECT_EQ(source_->requests().size(), 1u);
}

TEST_F(LayerCacheTest, CrashAfterFlushKeepsChunks) {
  Use(MakeTestLayer({20000}, 4096));
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto cache = OpenCache();
    std::string buf(20000, '\0');
    bool ok = cache.ok() && (*cache)->ReadFile(layer_.files[0], 0, absl::MakeSpan(buf)).ok() &&
              (*cache)->Flush().ok();
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  source_->clear();
  auto cache = MustOpen();
  EXPECT_TRUE(cache->Complete());
  ExpectRead(*cache, 0, 0, 20000);
  EXPECT_TRUE(source_->requests().empty());
}

TEST_F(LayerCacheTest, SyncBatchZeroPersistsEveryRequest) {
  Use(MakeTestLayer({4096, 4096}, 4096, /*gap=*/1 << 20));
  LayerCacheOptions o;
  o.sync_batch_bytes = 0;
  auto cache = MustOpen(o);
  ExpectRead(*cache, 0, 0, 10);
  EXPECT_EQ(cache->stats().syncs, 1u);
  ExpectRead(*cache, 1, 0, 10);
  EXPECT_EQ(cache->stats().syncs, 2u);
}

TEST_F(LayerCacheTest, CorruptBitmapHeaderResetsTheLayer) {
  Use(MakeTestLayer({20000}, 4096));
  {
    auto cache = MustOpen();
    ExpectRead(*cache, 0, 0, 20000);
  }
  {
    FILE* f = fopen((dir_.path() + "/bitmap").c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    fputc('X', f);
    fclose(f);
  }
  source_->clear();
  auto cache = MustOpen();
  EXPECT_FALSE(cache->reset_reason().ok());
  EXPECT_EQ(cache->stats().present_chunks, 0u);
  ExpectRead(*cache, 0, 0, 20000);
  EXPECT_EQ(source_->requests().size(), 1u);
}

TEST_F(LayerCacheTest, ADifferentLayerInTheSameDirectoryIsNotTrusted) {
  Use(MakeTestLayer({20000}, 4096));
  { ExpectRead(*MustOpen(), 0, 0, 20000); }
  layer_id_ = Sha256::Of("another toc");
  Use(MakeTestLayer({20000}, 4096, 0, /*seed=*/7));
  auto cache = MustOpen();
  EXPECT_FALSE(cache->reset_reason().ok());
  ExpectRead(*cache, 0, 0, 20000);
}

TEST_F(LayerCacheTest, TruncatedDataFileResetsTheLayer) {
  Use(MakeTestLayer({20000}, 4096));
  { ExpectRead(*MustOpen(), 0, 0, 20000); }
  ASSERT_EQ(truncate((dir_.path() + "/data").c_str(), 100), 0);
  source_->clear();
  auto cache = MustOpen();
  EXPECT_EQ(cache->stats().present_chunks, 0u);
  ExpectRead(*cache, 0, 0, 20000);
}

TEST_F(LayerCacheTest, OfflineServesPresentChunksOnly) {
  Use(MakeTestLayer({4096, 4096}, 4096));
  {
    auto cache = MustOpen();
    ExpectRead(*cache, 0, 0, 4096);
  }
  source_ = nullptr;
  auto cache = MustOpen();
  ExpectRead(*cache, 0, 0, 4096);
  std::string buf(10, '\0');
  EXPECT_EQ(cache->ReadFile(layer_.files[1], 0, absl::MakeSpan(buf)).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(LayerCacheTest, RejectsChunksThatDoNotTileTheirFile) {
  Use(MakeTestLayer({8192}, 4096));
  layer_.chunks[1].file_offset = 4000;
  EXPECT_EQ(OpenCache().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LayerCacheTest, OutOfRangeChunkIsInvalidArgument) {
  Use(MakeTestLayer({4096}, 4096));
  auto cache = MustOpen();
  std::vector<uint32_t> c = {1};
  EXPECT_EQ(cache->EnsureChunks(c).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LayerCacheTest, OnDemandReadsAreRecordedInTheAccessLogPrefetchIsNot) {
  Use(MakeTestLayer({10000, 20000}, 4096));  // file 0: chunks 0-2; file 1: chunks 3-7
  auto cache = MustOpen();
  auto log = std::make_shared<AccessLog>(static_cast<uint32_t>(layer_.chunks.size()), 100,
                                         absl::InfiniteDuration());
  cache->SetAccessLog(log);
  EXPECT_EQ(cache->access_log(), log);
  ExpectRead(*cache, 1, 4096, 100);  // chunk 4
  ExpectRead(*cache, 0, 0, 10000);   // chunks 0, 1, 2
  ExpectRead(*cache, 1, 4096, 5000);  // chunks 4, 5: 5 is new
  ASSERT_TRUE(cache->FileRange(layer_.files[1], 16000, 100, FetchPriority::kPrefetch).ok());
  std::vector<uint32_t> got;
  for (const auto& a : log->Snapshot()) got.push_back(a.chunk);
  EXPECT_EQ(got, (std::vector<uint32_t>{4, 0, 1, 2, 5}));
  cache->SetAccessLog(nullptr);
  ExpectRead(*cache, 1, 0, 100);  // chunk 3, not recorded
  EXPECT_EQ(log->size(), 5u);
  EXPECT_EQ(cache->access_log(), nullptr);
}

TEST_F(LayerCacheTest, PrefetchCountersHitsAndUnusedBytes) {
  Use(MakeTestLayer({8192, 8192, 8192}, 4096));  // chunks: file0 0-1, file1 2-3, file2 4-5
  auto cache = MustOpen();
  std::vector<uint32_t> c = {0, 1, 2, 3};
  ASSERT_TRUE(cache->EnsureChunks(c, FetchPriority::kPrefetch).ok());
  LayerCacheStats s = cache->stats();
  EXPECT_EQ(s.prefetch_chunks, 4u);
  EXPECT_EQ(s.prefetch_chunk_bytes, 4u * 4096);
  EXPECT_EQ(s.prefetch_requests, 1u);
  EXPECT_EQ(s.prefetch_bytes_fetched, 4u * 4096);
  EXPECT_EQ(s.prefetch_hits, 0u);
  EXPECT_EQ(s.prefetch_unused_bytes(), 4u * 4096);
  ExpectRead(*cache, 0, 0, 8192);  // both prefetched chunks of file 0: 2 hits
  ExpectRead(*cache, 0, 0, 100);   // read again: not counted twice
  ExpectRead(*cache, 2, 0, 8192);  // fetched on demand
  s = cache->stats();
  EXPECT_EQ(s.prefetch_hits, 2u);
  EXPECT_EQ(s.prefetch_hit_bytes, 2u * 4096);
  EXPECT_EQ(s.prefetch_unused_bytes(), 2u * 4096);
  EXPECT_EQ(s.ondemand_chunks(), 2u);
  EXPECT_EQ(s.requests, 2u);
}

TEST_F(LayerCacheTest, PrefetchShapeBridgesLargerGaps) {
  Use(MakeTestLayer({4096, 4096, 4096}, 4096, /*gap=*/100000));
  LayerCacheOptions o;
  o.max_gap_bytes = 1000;
  auto cache = MustOpen(o);
  std::vector<uint32_t> c = {2, 0, 1};
  ASSERT_TRUE(cache->EnsureChunks(c, FetchPriority::kPrefetch, {200000, 1 << 20}).ok());
  ASSERT_EQ(source_->requests().size(), 1u);  // one request across both gaps
  EXPECT_EQ(source_->requests()[0].size, 3u * 4096 + 2 * 100000);
  EXPECT_EQ(cache->stats().prefetch_requests, 1u);
}

TEST_F(LayerCacheTest, PrefetchRequestsWaitWhileAnOnDemandFetchRuns) {
  Use(MakeTestLayer({4096, 4096}, 4096, /*gap=*/1 << 20));
  absl::Notification ondemand_started, release_ondemand;
  source_->set_hook([&](uint64_t offset, absl::Span<char>) {
    if (offset == 0) {  // file 0: the on-demand read stalls
      ondemand_started.Notify();
      release_ondemand.WaitForNotification();
    }
    return absl::OkStatus();
  });
  auto cache = MustOpen();
  std::thread reader([&] { ExpectRead(*cache, 0, 0, 4096); });
  ondemand_started.WaitForNotification();
  absl::Notification prefetched;
  std::thread prefetch([&] {
    std::vector<uint32_t> c = {1};
    EXPECT_TRUE(cache->EnsureChunks(c, FetchPriority::kPrefetch).ok());
    prefetched.Notify();
  });
  // The prefetch does not start its request while the on-demand fetch runs.
  EXPECT_FALSE(prefetched.WaitForNotificationWithTimeout(absl::Milliseconds(200)));
  EXPECT_EQ(source_->requests().size(), 1u);
  release_ondemand.Notify();
  reader.join();
  prefetch.join();
  EXPECT_EQ(source_->requests().size(), 2u);
  EXPECT_TRUE(cache->Complete());
}

TEST_F(LayerCacheTest, APrefetchThatDoesNotYieldRunsBesideAnOnDemandFetch) {
  Use(MakeTestLayer({4096, 4096}, 4096, /*gap=*/1 << 20));
  absl::Notification ondemand_started, release_ondemand;
  source_->set_hook([&](uint64_t offset, absl::Span<char>) {
    if (offset == 0) {  // file 0: the on-demand read stalls
      ondemand_started.Notify();
      release_ondemand.WaitForNotification();
    }
    return absl::OkStatus();
  });
  auto cache = MustOpen();
  std::thread reader([&] { ExpectRead(*cache, 0, 0, 4096); });
  ondemand_started.WaitForNotification();
  std::vector<uint32_t> c = {1};
  FetchShape shape{0, 1 << 20};
  shape.yield_to_ondemand = false;
  // Completes while the on-demand fetch is still stalled.
  EXPECT_TRUE(cache->EnsureChunks(c, FetchPriority::kPrefetch, shape).ok());
  EXPECT_TRUE(cache->IsPresent(1));
  EXPECT_FALSE(cache->IsPresent(0));
  release_ondemand.Notify();
  reader.join();
  EXPECT_TRUE(cache->Complete());
}

TEST_F(LayerCacheTest, MissingListsTheChunksNotPresentInTheirOrder) {
  Use(MakeTestLayer({4096, 4096, 4096, 4096}, 4096));
  auto cache = MustOpen();
  std::vector<uint32_t> one = {2};
  ASSERT_TRUE(cache->EnsureChunks(one).ok());
  std::vector<uint32_t> ask = {3, 2, 0, 99, 1};
  EXPECT_EQ(cache->Missing(ask), (std::vector<uint32_t>{3, 0, 1}));
  std::vector<uint32_t> all = {0, 1, 3};
  ASSERT_TRUE(cache->EnsureChunks(all).ok());
  EXPECT_TRUE(cache->Missing(ask).empty());
}

// ---- per-file copies (FUSE passthrough's backing files) ----

absl::StatusOr<std::unique_ptr<LayerCache>> OpenCopyCache(const std::string& dir,
                                                          const cache_testing::TestLayer& layer,
                                                          const LayerCacheOptions& options = {},
                                                          std::string toc = "toc") {
  return LayerCache::Open(dir, Sha256::Of(toc), layer.chunks,
                          std::make_shared<cache_testing::RecordingBlobSource>(layer.blob),
                          std::make_shared<cache_testing::PlainChunkDecoder>(), options);
}

void ReadWhole(LayerCache& c, const Entry& file) {
  std::string buf(file.size, '\0');
  ASSERT_TRUE(c.ReadFile(file, 0, absl::MakeSpan(buf)).ok());
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Made only from a fully present file, exactly its bytes; a wrong-sized copy is not served.
TEST(LayerCacheCopyTest, FileCopiesHoldExactlyAFullyCachedFile) {
  cache_testing::TempDir dir;
  cache_testing::TestLayer layer = cache_testing::MakeTestLayer({10000, 70000, 0}, 4096);
  auto cache = OpenCopyCache(dir.path(), layer);
  ASSERT_TRUE(cache.ok()) << cache.status();
  LayerCache& c = **cache;
  std::string buf(100, '\0');
  ASSERT_TRUE(c.ReadFile(layer.files[1], 0, absl::MakeSpan(buf)).ok());  // one chunk only
  EXPECT_EQ(c.WriteFileCopy(layer.files[1]).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.OpenFileCopy(layer.files[1]).status().code(), absl::StatusCode::kNotFound);
  ReadWhole(c, layer.files[1]);
  ASSERT_TRUE(c.WriteFileCopy(layer.files[1]).ok());
  auto fd = c.OpenFileCopy(layer.files[1]);
  ASSERT_TRUE(fd.ok()) << fd.status();
  std::string got(70001, '\0');
  EXPECT_EQ(::pread(fd->get(), got.data(), got.size(), 0), 70000);
  got.resize(70000);
  EXPECT_TRUE(got == layer.contents[1]);
  ASSERT_TRUE(c.WriteFileCopy(layer.files[2]).ok());  // an empty file
  EXPECT_TRUE(c.OpenFileCopy(layer.files[2]).ok());
  // The name is the file's place in the data file: file 0 never finds file 1's copy.
  EXPECT_NE(c.FileCopyPath(layer.files[0]), c.FileCopyPath(layer.files[1]));
  EXPECT_EQ(c.OpenFileCopy(layer.files[0]).status().code(), absl::StatusCode::kNotFound);
  // A copy of the wrong size (say, truncated) is not served, and is removed.
  ASSERT_EQ(::truncate(c.FileCopyPath(layer.files[1]).c_str(), 100), 0);
  EXPECT_EQ(c.OpenFileCopy(layer.files[1]).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(Exists(c.FileCopyPath(layer.files[1])));
}

TEST(LayerCacheCopyTest, AFileWhoseChunksDoNotCoverItIsNeverCopied) {
  cache_testing::TempDir dir;
  cache_testing::TestLayer layer = cache_testing::MakeTestLayer({10000, 10000}, 4096);
  auto cache = OpenCopyCache(dir.path(), layer);
  ASSERT_TRUE(cache.ok()) << cache.status();
  ReadWhole(**cache, layer.files[0]);
  ReadWhole(**cache, layer.files[1]);
  Entry bad = layer.files[0];
  bad.size = 20000;  // would run into file 1's bytes
  EXPECT_EQ((*cache)->WriteFileCopy(bad).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*cache)->OpenFileCopy(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LayerCacheCopyTest, OpenRemovesTheTempFileOfAnInterruptedCopy) {
  cache_testing::TempDir dir;
  cache_testing::TestLayer layer = cache_testing::MakeTestLayer({10000}, 4096);
  ::mkdir((dir.path() + "/files").c_str(), 0700);
  std::string tmp = dir.path() + "/files/.tmp-0-10000-123";
  ::close(::open(tmp.c_str(), O_WRONLY | O_CREAT, 0600));
  auto cache = LayerCache::Open(dir.path(), Sha256::Of("toc"), layer.chunks, nullptr,
                                std::make_shared<cache_testing::PlainChunkDecoder>());
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_FALSE(Exists(tmp));
}

TEST(LayerCacheCopyTest, AResetOfTheLayersCacheRemovesItsCopies) {
  cache_testing::TempDir dir;
  cache_testing::TestLayer layer = cache_testing::MakeTestLayer({10000, 30000}, 4096);
  std::string path;
  {
    auto cache = OpenCopyCache(dir.path(), layer);
    ASSERT_TRUE(cache.ok()) << cache.status();
    ReadWhole(**cache, layer.files[1]);
    ASSERT_TRUE((*cache)->WriteFileCopy(layer.files[1]).ok());
    path = (*cache)->FileCopyPath(layer.files[1]);
  }
  {  // Reopened as it was: the copy stays.
    auto cache = OpenCopyCache(dir.path(), layer);
    ASSERT_TRUE(cache.ok()) << cache.status();
    EXPECT_TRUE((*cache)->OpenFileCopy(layer.files[1]).ok());
  }
  // Another identity (a renumbered index in the same directory): nothing is trusted.
  auto cache = OpenCopyCache(dir.path(), layer, {}, "another toc");
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_FALSE((*cache)->reset_reason().ok());
  EXPECT_FALSE(Exists(path));
  EXPECT_EQ((*cache)->OpenFileCopy(layer.files[1]).status().code(), absl::StatusCode::kNotFound);
}

TEST(LayerCacheCopyTest, NoCopyWithoutRoom) {
  cache_testing::TempDir dir;
  cache_testing::TestLayer layer = cache_testing::MakeTestLayer({30000}, 4096);
  LayerCacheOptions o;
  o.copy_min_free_bytes = uint64_t{1} << 62;  // more than any disk has free
  {
    auto cache = OpenCopyCache(dir.path(), layer, o);
    ASSERT_TRUE(cache.ok()) << cache.status();
    ReadWhole(**cache, layer.files[0]);
    EXPECT_EQ((*cache)->WriteFileCopy(layer.files[0]).code(),
              absl::StatusCode::kResourceExhausted);
    EXPECT_FALSE(Exists((*cache)->FileCopyPath(layer.files[0])));
  }
  o = {};
  uint64_t asked = 0;
  o.copy_allowed = [&asked](uint64_t bytes) {
    asked = bytes;
    return false;
  };
  auto cache = OpenCopyCache(dir.path(), layer, o);
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ((*cache)->WriteFileCopy(layer.files[0]).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(asked, 30000u);
}

TEST(LayerCacheCopyTest, AStoppedCopyEndsBetweenPiecesAndLeavesNothing) {
  cache_testing::TempDir dir;
  cache_testing::TestLayer layer = cache_testing::MakeTestLayer({1 << 20}, 65536);
  LayerCacheOptions o;
  o.copy_piece_bytes = 4096;  // 256 pieces
  auto cache = OpenCopyCache(dir.path(), layer, o);
  ASSERT_TRUE(cache.ok()) << cache.status();
  ReadWhole(**cache, layer.files[0]);
  std::atomic<bool> stop{true};
  EXPECT_EQ((*cache)->WriteFileCopy(layer.files[0], &stop).code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(Exists((*cache)->FileCopyPath(layer.files[0])));
  DIR* d = ::opendir((dir.path() + "/files").c_str());
  ASSERT_NE(d, nullptr);
  int entries = 0;
  while (dirent* e = ::readdir(d)) entries += e->d_name[0] != '.' || e->d_name[1] == 't';
  ::closedir(d);
  EXPECT_EQ(entries, 0) << "no temp file left";
  // Set while the copy runs: it returns within a piece (at most, here, the whole copy).
  stop = false;
  std::thread copier([&] {
    absl::Status s = (*cache)->WriteFileCopy(layer.files[0], &stop);
    EXPECT_TRUE(s.ok() || absl::IsCancelled(s)) << s;
  });
  stop = true;
  copier.join();
  stop = false;
  ASSERT_TRUE((*cache)->WriteFileCopy(layer.files[0], &stop).ok());
  auto fd = (*cache)->OpenFileCopy(layer.files[0]);  // 256 pieces make exactly the file
  ASSERT_TRUE(fd.ok()) << fd.status();
  std::string got(1 << 20, '\0');
  EXPECT_EQ(::pread(fd->get(), got.data(), got.size(), 0), 1 << 20);
  EXPECT_TRUE(got == layer.contents[0]);
}

}  // namespace
}  // namespace lazysnap

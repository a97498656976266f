#include "remote/early_source.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "base/testing.h"
#include "cache/testing.h"

namespace lazysnap {
namespace {

// Below the early bytes: counts reads; while `gate` is set, each read waits for it.
class GatedSource : public CountingBlobSource {
 public:
  using CountingBlobSource::CountingBlobSource;
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override {
    if (gate != nullptr) {
      if (!entered.HasBeenNotified()) entered.Notify();
      gate->WaitForNotification();
    }
    if (fail) return absl::UnavailableError("down");
    return CountingBlobSource::ReadAt(offset, buf);
  }
  absl::Notification* gate = nullptr;
  absl::Notification entered;  // a read reached the gate
  bool fail = false;
};

class EarlyBytesTest : public ::testing::Test {
 protected:
  std::string blob_ = cache_testing::PseudoRandom(1 << 20, 5);
  MemoryBlobSource mem_{blob_};
  std::shared_ptr<CountingBlobSource> below_ = std::make_shared<CountingBlobSource>(&mem_);
  GatedSource fetch_{&mem_};
  std::string Read(EarlyBlobSource& s, uint64_t off, uint64_t n) {
    std::string out(n, '\0');
    absl::Status st = s.ReadAt(off, absl::MakeSpan(out));
    EXPECT_TRUE(st.ok()) << st;
    return out;
  }
};

TEST_F(EarlyBytesTest, ReadsInsideFetchedRangesComeFromMemory) {
  auto early = std::make_shared<EarlyBytes>(
      std::vector<TraceRange>{{500000, 100000}, {1000, 20000}}, absl::Seconds(30));
  early->Fetch(fetch_);
  EXPECT_EQ(fetch_.reads(), 2u);
  EarlyBlobSource source(below_, early, absl::Seconds(5));
  EXPECT_EQ(Read(source, 1000, 20000), blob_.substr(1000, 20000));
  EXPECT_EQ(Read(source, 500100, 50), blob_.substr(500100, 50));  // inside one
  EXPECT_EQ(below_->reads(), 0u);
  // Not planned, straddling a range's end, or read whole already: from below.
  EXPECT_EQ(Read(source, 300000, 10), blob_.substr(300000, 10));
  EXPECT_EQ(Read(source, 599990, 20), blob_.substr(599990, 20));
  EXPECT_EQ(Read(source, 1000, 20000), blob_.substr(1000, 20000));
  EXPECT_EQ(below_->reads(), 3u);
  EarlyBytesStats st = early->stats();
  EXPECT_EQ(st.fetched_bytes, 120000u);
  EXPECT_EQ(st.served_reads, 2u);
  EXPECT_EQ(st.served_bytes, 20050u);
}

TEST_F(EarlyBytesTest, AReadOfARangeInFlightWaitsForIt) {
  auto early = std::make_shared<EarlyBytes>(std::vector<TraceRange>{{0, 65536}}, absl::Seconds(30));
  absl::Notification gate;
  fetch_.gate = &gate;
  std::thread fetcher([&] { early->Fetch(fetch_); });
  fetch_.entered.WaitForNotification();  // the fetch has taken the range
  EarlyBlobSource source(below_, early, absl::Seconds(10));
  std::string got;
  std::thread reader([&] { got = Read(source, 4096, 4096); });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_TRUE(got.empty()) << "answered before the fetch was in";  // (a slow machine: passes)
  gate.Notify();
  reader.join();
  fetcher.join();
  EXPECT_EQ(got, blob_.substr(4096, 4096));
  EXPECT_EQ(below_->reads(), 0u) << "read below as well";
}

TEST_F(EarlyBytesTest, RangesNotStartedFailedOrReleasedAreReadBelow) {
  auto early = std::make_shared<EarlyBytes>(
      std::vector<TraceRange>{{0, 1000}, {2000, 1000}, {4000, 1000}}, absl::Seconds(30));
  EarlyBlobSource source(below_, early, absl::Seconds(5));
  // Not started: read below, and then not fetched any more.
  EXPECT_EQ(Read(source, 0, 1000), blob_.substr(0, 1000));
  EXPECT_EQ(below_->reads(), 1u);
  fetch_.fail = true;
  early->Fetch(fetch_);  // 2000 fails: 4000 is not asked for
  EXPECT_EQ(fetch_.reads(), 0u);  // (counted only when passed on)
  EXPECT_EQ(early->stats().failed, 1u);
  EXPECT_EQ(Read(source, 2000, 1000), blob_.substr(2000, 1000));
  EXPECT_EQ(below_->reads(), 2u);
  fetch_.fail = false;
  early->Fetch(fetch_);  // nothing left to fetch after a failure
  EXPECT_EQ(fetch_.reads(), 0u);
  EXPECT_EQ(Read(source, 4000, 1000), blob_.substr(4000, 1000));
  EXPECT_EQ(below_->reads(), 3u);
  EXPECT_EQ(early->stats().fetched_bytes, 0u);

  auto again = std::make_shared<EarlyBytes>(std::vector<TraceRange>{{0, 1000}}, absl::Seconds(30));
  fetch_.fail = false;
  again->Fetch(fetch_);
  again->Release();
  EarlyBlobSource released(below_, again, absl::Seconds(5));
  EXPECT_EQ(Read(released, 0, 100), blob_.substr(0, 100));
  EXPECT_EQ(below_->reads(), 4u);
  // Released: a later Fetch fetches nothing.
  auto late = std::make_shared<EarlyBytes>(std::vector<TraceRange>{{0, 1000}}, absl::Seconds(30));
  late->Release();
  late->Fetch(fetch_);
  EXPECT_EQ(late->stats().fetched_bytes, 0u);
}

TEST_F(EarlyBytesTest, AFailedFetchStopsEveryFetcher) {
  std::vector<TraceRange> plan;
  for (uint64_t i = 0; i < 64; i++) plan.push_back({i * 10000, 5000});
  auto early = std::make_shared<EarlyBytes>(plan, absl::Seconds(30));
  fetch_.fail = true;
  std::vector<std::thread> fetchers;
  for (int i = 0; i < 4; i++) fetchers.emplace_back([&] { early->Fetch(fetch_); });
  for (auto& t : fetchers) t.join();
  // Each fetcher may have taken one range before the first failure was in; no more.
  EXPECT_GE(early->stats().failed, 1u);
  EXPECT_LE(early->stats().failed, 4u);
}

TEST_F(EarlyBytesTest, AReaderWaitsForARangeInFlightAtMostItsWaitAndNotPastRelease) {
  auto early = std::make_shared<EarlyBytes>(std::vector<TraceRange>{{0, 65536}}, absl::Seconds(30));
  absl::Notification gate;
  fetch_.gate = &gate;
  std::thread fetcher([&] { early->Fetch(fetch_); });
  fetch_.entered.WaitForNotification();
  std::string buf(4096, '\0');
  absl::Time t0 = absl::Now();
  EXPECT_FALSE(early->Read(0, absl::MakeSpan(buf), absl::Milliseconds(100)));  // still in flight
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5));
  // A reader waiting long is let go by Release, not by the fetch's end.
  std::atomic<bool> served{true};
  std::thread reader([&] {
    std::string b(4096, '\0');
    served = early->Read(0, absl::MakeSpan(b), absl::Seconds(60));
  });
  absl::SleepFor(absl::Milliseconds(50));
  t0 = absl::Now();
  early->Release();
  reader.join();
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5));
  EXPECT_FALSE(served);
  gate.Notify();
  fetcher.join();
  EXPECT_EQ(early->stats().served_reads, 0u);
}

TEST_F(EarlyBytesTest, AnEmptyReadAtARangesEndIsNotServed) {
  auto early = std::make_shared<EarlyBytes>(std::vector<TraceRange>{{0, 1000}}, absl::Seconds(30));
  early->Fetch(fetch_);
  char c = 0;
  EXPECT_FALSE(early->Read(1000, absl::Span<char>(&c, 0), absl::Seconds(1)));
  EXPECT_FALSE(early->Read(500, absl::Span<char>(&c, 0), absl::Seconds(1)));
  EXPECT_FALSE(early->Read(1000, absl::Span<char>(&c, 1), absl::Seconds(1)));
  EXPECT_TRUE(early->Read(999, absl::Span<char>(&c, 1), absl::Seconds(1)));
  EXPECT_EQ(c, blob_[999]);
  EXPECT_EQ(early->stats().served_reads, 1u);
}

TEST_F(EarlyBytesTest, BytesAreDroppedAfterTheHoldTime) {
  auto early = std::make_shared<EarlyBytes>(std::vector<TraceRange>{{0, 1000}},
                                            absl::Milliseconds(1));
  early->Fetch(fetch_);
  absl::SleepFor(absl::Milliseconds(20));
  EarlyBlobSource source(below_, early, absl::Seconds(5));
  EXPECT_EQ(Read(source, 0, 1000), blob_.substr(0, 1000));
  EXPECT_EQ(below_->reads(), 1u);
}

TEST_F(EarlyBytesTest, SeveralFetchersTakeEachRangeOnce) {
  std::vector<TraceRange> plan;
  for (uint64_t i = 0; i < 64; i++) plan.push_back({i * 10000, 5000});
  auto early = std::make_shared<EarlyBytes>(plan, absl::Seconds(30));
  std::vector<std::thread> fetchers;
  for (int i = 0; i < 4; i++) fetchers.emplace_back([&] { early->Fetch(fetch_); });
  for (auto& t : fetchers) t.join();
  EXPECT_EQ(fetch_.reads(), 64u);
  EXPECT_EQ(early->stats().fetched_bytes, 64u * 5000);
  EarlyBlobSource source(below_, early, absl::Seconds(5));
  for (uint64_t i = 0; i < 64; i++) {
    EXPECT_EQ(Read(source, i * 10000, 5000), blob_.substr(i * 10000, 5000));
  }
  EXPECT_EQ(below_->reads(), 0u);
}

}  // namespace
}  // namespace lazysnap

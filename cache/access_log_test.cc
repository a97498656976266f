#include "cache/access_log.h"

#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace lazysnap {
namespace {

std::vector<uint32_t> Chunks(const AccessLog& log) {
  std::vector<uint32_t> out;
  for (const auto& a : log.Snapshot()) out.push_back(a.chunk);
  return out;
}

TEST(AccessLogTest, RecordsFirstAccessesInOrder) {
  AccessLog log(100, 100, absl::InfiniteDuration());
  log.Record(5, 8);
  log.Record(6, 7);  // already recorded
  log.Record(1, 2);
  log.Record(99, 120);  // clamped to the chunk table
  EXPECT_EQ(Chunks(log), (std::vector<uint32_t>{5, 6, 7, 1, 99}));
  EXPECT_EQ(log.size(), 5u);
  EXPECT_FALSE(log.stopped());
}

TEST(AccessLogTest, StopsWhenFullStoppedOrPastItsWindow) {
  AccessLog full(10, 3, absl::InfiniteDuration());
  full.Record(0, 10);
  EXPECT_EQ(Chunks(full), (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_TRUE(full.stopped());

  AccessLog stopped(10, 10, absl::InfiniteDuration());
  stopped.Record(3, 4);
  stopped.Stop();
  stopped.Record(4, 5);
  EXPECT_EQ(Chunks(stopped), (std::vector<uint32_t>{3}));

  AccessLog windowed(10, 10, absl::Milliseconds(20));
  windowed.Record(1, 2);
  absl::SleepFor(absl::Milliseconds(40));
  windowed.Record(2, 3);
  EXPECT_EQ(Chunks(windowed), (std::vector<uint32_t>{1}));
  EXPECT_TRUE(windowed.stopped());
}

TEST(AccessLogTest, ConcurrentReadersRecordEachChunkOnce) {
  constexpr uint32_t kChunks = 5000;
  AccessLog log(kChunks, kChunks, absl::InfiniteDuration());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([&log, t] {
      for (uint32_t i = 0; i < kChunks; i++) {
        uint32_t c = (i * 7 + static_cast<uint32_t>(t) * 13) % kChunks;
        log.Record(c, c + 1);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<bool> seen(kChunks, false);
  auto snap = log.Snapshot();
  ASSERT_EQ(snap.size(), kChunks);
  for (const auto& a : snap) {
    ASSERT_LT(a.chunk, kChunks);
    EXPECT_FALSE(seen[a.chunk]) << "chunk " << a.chunk << " recorded twice";
    seen[a.chunk] = true;
  }
  EXPECT_GE(log.last_access(), log.start());
}

}  // namespace
}  // namespace lazysnap

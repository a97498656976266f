#include "prefetch/recorder.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace lazysnap {
namespace {

TEST(RecorderTest, MergesLayersOnOneClock) {
  auto a = std::make_shared<AccessLog>(100, 100, absl::InfiniteDuration());
  absl::SleepFor(absl::Milliseconds(30));
  a->Record(7, 8);
  auto b = std::make_shared<AccessLog>(100, 100, absl::InfiniteDuration());  // mounted later
  absl::SleepFor(absl::Milliseconds(30));
  b->Record(1, 3);
  a->Record(9, 10);
  Trace t = MergeAccessLogs(Sha256::Of("m"), {{Sha256::Of("a"), Sha256::Of("ta"), a},
                                              {Sha256::Of("b"), Sha256::Of("tb"), b},
                                              {Sha256::Of("a"), Sha256::Of("x"), b}});
  ASSERT_EQ(t.layers.size(), 2u);  // the duplicate layer is dropped
  EXPECT_EQ(t.manifest, Sha256::Of("m"));
  const LayerTrace& la = t.layers[0];
  const LayerTrace& lb = t.layers[1];
  EXPECT_EQ(la.toc_digest, Sha256::Of("ta"));
  ASSERT_EQ(la.chunks.size(), 2u);
  ASSERT_EQ(lb.chunks.size(), 2u);
  EXPECT_EQ(la.chunks[0].chunk, 7u);
  EXPECT_EQ(la.chunks[0].millis, 0u);  // the earliest access starts the trace
  EXPECT_EQ(lb.chunks[0].chunk, 1u);
  EXPECT_EQ(lb.chunks[1].chunk, 2u);
  // b's accesses came about 30 ms after a's first, on the shared clock.
  EXPECT_GE(lb.chunks[0].millis, 25u);
  EXPECT_LE(lb.chunks[0].millis, 1000u);
  EXPECT_GE(la.chunks[1].millis, lb.chunks[0].millis);
}

TEST(RecorderTest, Decide) {
  RecordingPolicy p;
  p.window = absl::Seconds(60);
  p.quiet = absl::Seconds(5);
  p.idle = absl::Minutes(30);
  const absl::Time m = absl::FromUnixSeconds(1000);
  const absl::Time none = absl::InfinitePast();
  EXPECT_EQ(Decide(p, m, none, none, m + absl::Minutes(10)), RecordingState::kRecording);
  EXPECT_EQ(Decide(p, m, none, none, m + absl::Minutes(31)), RecordingState::kAbandoned);
  const absl::Time f = m + absl::Seconds(100);
  EXPECT_EQ(Decide(p, m, f, f + absl::Seconds(2), f + absl::Seconds(4)),
            RecordingState::kRecording);
  EXPECT_EQ(Decide(p, m, f, f + absl::Seconds(2), f + absl::Seconds(8)), RecordingState::kDone);
  // Reads never go quiet: the window ends it.
  EXPECT_EQ(Decide(p, m, f, f + absl::Seconds(59), f + absl::Seconds(60)),
            RecordingState::kDone);
}

}  // namespace
}  // namespace lazysnap

#include "format/convert_pipeline.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace lazysnap {
namespace {

TEST(ConvertPipelineTest, ConsumesInOrderWithBoundedWindow) {
  constexpr size_t kJobs = 200;
  constexpr size_t kWindow = 5;
  std::atomic<int> alive{0}, max_alive{0};
  std::vector<size_t> seen;
  auto work = [&](size_t i, int thread, JobOutput* o) {
    int a = ++alive;
    int m = max_alive.load();
    while (a > m && !max_alive.compare_exchange_weak(m, a)) {
    }
    if (i % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
    o->raw = std::to_string(i);
    EXPECT_GE(thread, 0);
    EXPECT_LT(thread, 4);
    return absl::OkStatus();
  };
  auto consume = [&](size_t i, JobOutput* o) {
    EXPECT_EQ(o->raw, std::to_string(i));
    seen.push_back(i);
    --alive;
    return absl::OkStatus();
  };
  ASSERT_TRUE(RunOrdered(kJobs, 4, kWindow, work, consume).ok());
  ASSERT_EQ(seen.size(), kJobs);
  for (size_t i = 0; i < kJobs; ++i) EXPECT_EQ(seen[i], i);
  EXPECT_LE(max_alive.load(), static_cast<int>(kWindow));
}

TEST(ConvertPipelineTest, WorkErrorStopsEverything) {
  std::atomic<size_t> started{0};
  size_t consumed = 0;
  absl::Status s = RunOrdered(
      1000, 3, 4,
      [&](size_t i, int, JobOutput*) {
        ++started;
        return i == 10 ? absl::DataLossError("bad job") : absl::OkStatus();
      },
      [&](size_t, JobOutput*) {
        ++consumed;
        return absl::OkStatus();
      });
  EXPECT_EQ(s, absl::DataLossError("bad job"));
  EXPECT_LE(consumed, 10u);
  EXPECT_LT(started.load(), 30u);  // nothing far past the failure was started
}

TEST(ConvertPipelineTest, ConsumeErrorIsReturned) {
  absl::Status s = RunOrdered(
      100, 2, 3, [](size_t, int, JobOutput*) { return absl::OkStatus(); },
      [](size_t i, JobOutput*) {
        return i == 3 ? absl::UnavailableError("disk full") : absl::OkStatus();
      });
  EXPECT_EQ(s, absl::UnavailableError("disk full"));
}

TEST(ConvertPipelineTest, NoJobs) {
  EXPECT_TRUE(RunOrdered(
                  0, 2, 3, [](size_t, int, JobOutput*) { return absl::OkStatus(); },
                  [](size_t, JobOutput*) { return absl::InternalError("never"); })
                  .ok());
}

}  // namespace
}  // namespace lazysnap

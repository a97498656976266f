#include "registry/retry.h"

#include <gtest/gtest.h>

#include <vector>

namespace lazysnap::registry {
namespace {

RetryPolicy Fast(absl::Duration deadline) {
  RetryPolicy p;
  p.deadline = deadline;
  p.attempt_timeout = absl::Milliseconds(100);
  p.initial_backoff = absl::Milliseconds(1);
  p.max_backoff = absl::Milliseconds(8);
  return p;
}

TEST(RetryTest, MirrorsFirstThenOriginAndStickiness) {
  std::vector<size_t> calls;
  size_t preferred = 0;
  absl::Status s =
      RetryOverEndpoints(Fast(absl::Seconds(1)), 3, &preferred, [&](size_t i, absl::Duration) {
        calls.push_back(i);
        return i == 2 ? absl::OkStatus() : absl::NotFoundError("not on mirror");
      });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(calls, (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(preferred, 2u);
  calls.clear();
  ASSERT_TRUE(
      RetryOverEndpoints(Fast(absl::Seconds(1)), 3, &preferred, [&](size_t i, absl::Duration) {
        calls.push_back(i);
        return absl::OkStatus();
      }).ok());
  EXPECT_EQ(calls, (std::vector<size_t>{2}));
}

TEST(RetryTest, AnAttemptCutShortByTheDeadlineDoesNotHideTheErrorBeforeIt) {
  // Every whole attempt sees a corrupt body; the last one, started with little time left,
  // times out. The error returned names the corruption, not that timeout.
  RetryPolicy p = Fast(absl::Milliseconds(300));
  absl::Status s = RetryOverEndpoints(p, 1, nullptr, [&](size_t, absl::Duration timeout) {
    if (timeout < p.attempt_timeout) {
      absl::SleepFor(timeout);
      return absl::DeadlineExceededError("operation timed out");
    }
    return absl::DataLossError("blob digest mismatch");
  });
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_NE(s.message().find("digest mismatch"), std::string::npos) << s;
}

TEST(RetryTest, PermanentErrorsEndAtOnceTransientOnesAtTheDeadline) {
  int n = 0;
  absl::Status s =
      RetryOverEndpoints(Fast(absl::Seconds(5)), 1, nullptr, [&](size_t, absl::Duration) {
        ++n;
        return absl::PermissionDeniedError("no");
      });
  EXPECT_TRUE(absl::IsPermissionDenied(s));
  EXPECT_EQ(n, 1);
  n = 0;
  absl::Time start = absl::Now();
  s = RetryOverEndpoints(Fast(absl::Milliseconds(200)), 1, nullptr, [&](size_t, absl::Duration t) {
    ++n;
    EXPECT_LE(t, absl::Milliseconds(100));
    return absl::UnavailableError("reset");
  });
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_NE(s.message().find("reset"), std::string::npos);
  EXPECT_GT(n, 5);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(400));
  n = 0;
  s = RetryOverEndpoints(Fast(absl::Seconds(5)), 1, nullptr, [&](size_t, absl::Duration) {
    return ++n < 4 ? absl::DataLossError("short body") : absl::OkStatus();
  });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(n, 4);
}

TEST(RetryTest, ServerErrorAnswersEndAfterAFewRoundsNotAtTheDeadline) {
  // docker-registry answers 500 to a blob digest asked for as a manifest, every time.
  RetryPolicy p = Fast(absl::Seconds(30));
  p.max_server_error_rounds = 3;
  int n = 0;
  absl::Time start = absl::Now();
  absl::Status s = RetryOverEndpoints(p, 2, nullptr, [&](size_t, absl::Duration) {
    ++n;
    absl::Status e = absl::UnavailableError("HTTP 500 (UNKNOWN)");
    MarkServerError(&e);
    return e;
  });
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_NE(s.message().find("HTTP 500"), std::string::npos);
  EXPECT_NE(s.message().find("3 attempts"), std::string::npos) << s;
  EXPECT_EQ(n, 6);  // 3 rounds over 2 endpoints
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  // One endpoint with a server error and one with a reset: retried to the deadline (the
  // reset may pass).
  n = 0;
  s = RetryOverEndpoints(Fast(absl::Milliseconds(200)), 2, nullptr, [&](size_t i, absl::Duration) {
    ++n;
    absl::Status e = absl::UnavailableError(i == 0 ? "HTTP 500" : "reset");
    if (i == 0) MarkServerError(&e);
    return e;
  });
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_GT(n, 6);
  // A server error that goes away within the rounds allowed: success.
  n = 0;
  s = RetryOverEndpoints(p, 1, nullptr, [&](size_t, absl::Duration) {
    if (++n == 3) return absl::OkStatus();
    absl::Status e = absl::UnavailableError("HTTP 502");
    MarkServerError(&e);
    return e;
  });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(n, 3);
}

TEST(RetryTest, RetryAfterIsHonoured) {
  int n = 0;
  absl::Time start = absl::Now();
  absl::Status s =
      RetryOverEndpoints(Fast(absl::Seconds(5)), 1, nullptr, [&](size_t, absl::Duration) {
        if (n++ > 0) return absl::OkStatus();
        absl::Status busy = absl::ResourceExhaustedError("429");
        SetRetryAfter(&busy, absl::Milliseconds(300));
        return busy;
      });
  EXPECT_TRUE(s.ok());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_EQ(GetRetryAfter(absl::UnavailableError("x")), absl::ZeroDuration());
}

}  // namespace
}  // namespace lazysnap::registry

#include "registry/retry.h"

#include <algorithm>
#include <random>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "base/log.h"
#include "base/strings.h"

namespace lazysnap::registry {

bool IsRetryable(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kAborted:
      return true;
    default:
      return false;
  }
}

namespace {
constexpr char kRetryAfterUrl[] = "lazysnap.dev/retry-after-ms";
constexpr char kServerErrorUrl[] = "lazysnap.dev/server-error";
}  // namespace

void MarkServerError(absl::Status* status) { status->SetPayload(kServerErrorUrl, absl::Cord("1")); }

bool IsServerError(const absl::Status& status) {
  return status.GetPayload(kServerErrorUrl).has_value();
}

void SetRetryAfter(absl::Status* status, absl::Duration wait) {
  status->SetPayload(kRetryAfterUrl, absl::Cord(absl::StrCat(absl::ToInt64Milliseconds(wait))));
}

absl::Duration GetRetryAfter(const absl::Status& status) {
  auto p = status.GetPayload(kRetryAfterUrl);
  int64_t ms = 0;
  if (!p || !absl::SimpleAtoi(std::string(*p), &ms)) return absl::ZeroDuration();
  return absl::Milliseconds(ms);
}

absl::Status RetryOverEndpoints(const RetryPolicy& policy, size_t n, size_t* preferred,
                                absl::FunctionRef<absl::Status(size_t, absl::Duration)> attempt) {
  if (n == 0) return absl::FailedPreconditionError("no registry endpoint to ask");
  const absl::Time deadline = absl::Now() + policy.deadline;
  size_t start = preferred != nullptr ? *preferred % n : 0;
  absl::Duration backoff = policy.initial_backoff;
  std::minstd_rand rng(std::random_device{}());
  absl::Status last;
  int server_error_rounds = 0;
  for (int round = 0;; ++round) {
    bool any_retryable = false;
    bool only_server_errors = true;
    absl::Duration hint = absl::ZeroDuration();
    for (size_t k = 0; k < n; ++k) {
      size_t i = (start + k) % n;
      absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::DeadlineExceededError(
            StrCat("deadline exceeded after ", round, " rounds; last error: ", last.ToString()));
      }
      const absl::Duration budget = std::min(policy.attempt_timeout, left);
      absl::Status s = attempt(i, budget);
      if (s.ok()) {
        if (preferred != nullptr) *preferred = i;
        return s;
      }
      // An attempt timed out because the overall deadline cut its time short says less than
      // the error before it (a digest mismatch, say), which is the one reported.
      const bool cut_short =
          absl::IsDeadlineExceeded(s) && budget < policy.attempt_timeout && !last.ok();
      any_retryable = any_retryable || IsRetryable(s);
      only_server_errors = only_server_errors && IsServerError(s);
      LZ_LOG(kDebug, "registry: attempt ", round + 1, " at endpoint ", i,
             " failed: ", s.ToString());
      hint = std::max(hint, GetRetryAfter(s));
      if (!cut_short) last = std::move(s);
    }
    if (!any_retryable) return last;
    if (only_server_errors && ++server_error_rounds >= policy.max_server_error_rounds) {
      return absl::Status(last.code(), StrCat(last.message(), " (", server_error_rounds,
                                              " attempts)"));
    }
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) continue;  // reported at the top of the next round
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    absl::Duration sleep = std::min(std::max(backoff * jitter(rng), hint), left);
    absl::SleepFor(sleep);
    backoff = std::min(backoff * 2, policy.max_backoff);
  }
}

}  // namespace lazysnap::registry

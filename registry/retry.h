// Retries: one deadline per operation, capped exponential backoff with jitter between rounds,
// over an ordered list of endpoints (mirrors first, the origin last).
#ifndef LAZYSNAP_REGISTRY_RETRY_H_
#define LAZYSNAP_REGISTRY_RETRY_H_

#include <cstddef>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

namespace lazysnap::registry {

struct RetryPolicy {
  absl::Duration deadline = absl::Seconds(60);         // the whole operation, all attempts
  absl::Duration attempt_timeout = absl::Seconds(20);  // one attempt (catches stalls)
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  // Rounds in which every endpoint answered with a server error (MarkServerError: HTTP 5xx
  // other than 503), at most: such an answer is usually the same the next time (docker-registry
  // answers 500 to a blob digest asked for as a manifest), so the error is returned after a
  // few backed-off attempts rather than at the deadline. Other retryable errors (resets,
  // timeouts, 503, 429) are retried until the deadline.
  int max_server_error_rounds = 3;
};

// True for errors a later attempt may not see: connection failures and resets (Unavailable),
// attempt timeouts (DeadlineExceeded), 429 (ResourceExhausted), 5xx (Unavailable), truncated or
// inconsistent bodies (DataLoss), Aborted.
bool IsRetryable(const absl::Status& status);

// Attaches a server's Retry-After hint to a retryable error; RetryOverEndpoints waits at
// least that long (within the deadline) before the next round.
void SetRetryAfter(absl::Status* status, absl::Duration wait);
absl::Duration GetRetryAfter(const absl::Status& status);  // zero when none

// Marks a retryable error as a server's error answer (see max_server_error_rounds).
void MarkServerError(absl::Status* status);
bool IsServerError(const absl::Status& status);

// Runs attempt(endpoint, timeout) for endpoints preferred, preferred+1, ..., n-1, 0, ... until
// one succeeds, returning OK and setting *preferred to it. A non-retryable error from one
// endpoint moves on to the next; once every endpoint has failed in a round, the error of the
// last one is returned if none was retryable, else the next round starts after a backoff
// (initial_backoff doubling up to max_backoff, with jitter in [b/2, b]), unless the round was
// the max_server_error_rounds-th with only server errors. `timeout` is the
// smaller of attempt_timeout and what remains of the deadline. When the deadline passes, the
// last error is returned (with "deadline exceeded" added). `preferred` may be null (start at 0).
// Thread-compatible; no state beyond the call.
absl::Status RetryOverEndpoints(const RetryPolicy& policy, size_t n, size_t* preferred,
                                absl::FunctionRef<absl::Status(size_t, absl::Duration)> attempt);

}  // namespace lazysnap::registry

#endif  // LAZYSNAP_REGISTRY_RETRY_H_

// Docker credential helpers (docker-credential-<name>, e.g. ecr-login, gcr, pass): the
// protocol of github.com/docker/docker-credential-helpers as `docker` uses it for a
// config.json's `credsStore` and `credHelpers`. `docker-credential-<name> get` is run from
// $PATH with the server URL on stdin and answers {"ServerURL","Username","Secret"} on stdout;
// the username "<token>" means Secret is an identity token. Secrets: never log the output.
#ifndef LAZYSNAP_REGISTRY_CREDENTIALS_HELPER_H_
#define LAZYSNAP_REGISTRY_CREDENTIALS_HELPER_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "registry/credentials.h"

namespace lazysnap::registry {

struct CredentialHelperOptions {
  absl::Duration timeout = absl::Seconds(10);  // the helper is killed (its process group) past it
  size_t max_output = 64 << 10;                // stdout larger than this is an error
  absl::Duration cache_ttl = absl::Minutes(5);  // CredentialStore keeps an answer this long
};

// True for a helper name docker would accept as a file name suffix: [A-Za-z0-9._-]+.
bool ValidCredentialHelperName(std::string_view name);

// Parses a helper's `get` answer. Username "<token>": identity_token = Secret. Not a JSON
// object, or no string Secret: InvalidArgument (never quoting the text).
absl::StatusOr<Credentials> ParseCredentialHelperOutput(std::string_view json);

// Runs `docker-credential-<name> get` with `server_url` on stdin, bounded by `options`.
// nullopt: the helper has no credentials for the server (it exits non-zero saying
// "credentials not found"). Errors: FailedPrecondition naming the helper when it is not in
// $PATH, DeadlineExceeded on timeout, ResourceExhausted for too much output, Unavailable for
// another non-zero exit (with the first line of its message). Blocks the calling thread;
// thread-safe (no shared state).
absl::StatusOr<std::optional<Credentials>> RunCredentialHelper(
    std::string_view name, std::string_view server_url, const CredentialHelperOptions& options);

}  // namespace lazysnap::registry

#endif  // LAZYSNAP_REGISTRY_CREDENTIALS_HELPER_H_

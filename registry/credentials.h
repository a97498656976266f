// Registry credentials: from the Docker config (~/.docker/config.json: `auths` entries with a
// base64 `auth` "user:password", or `username`/`password`, or an `identitytoken`; `credHelpers`
// and `credsStore` naming docker-credential-<name> helpers, run as credentials_helper.h says)
// and from lazysnap's own config. Secrets: never log a Credentials value.
#ifndef LAZYSNAP_REGISTRY_CREDENTIALS_H_
#define LAZYSNAP_REGISTRY_CREDENTIALS_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace lazysnap::registry {

struct Credentials {
  std::string username;
  std::string password;
  std::string identity_token;  // an OAuth2 refresh token (docker login with an IdP)
};

struct CredentialHelperOptions;  // credentials_helper.h

// Credentials by registry host. Build it once (Add*), then share it read-only: const methods
// are thread-safe, the others are not. Not copyable.
class CredentialStore {
 public:
  CredentialStore();
  // `helpers` bounds the credential helpers Lookup runs and how long it keeps their answers.
  explicit CredentialStore(const CredentialHelperOptions& helpers);
  ~CredentialStore();
  CredentialStore(const CredentialStore&) = delete;
  CredentialStore& operator=(const CredentialStore&) = delete;

  // Adds a Docker config JSON document: `auths` entries, `credHelpers` (host -> helper name;
  // wins over the file's `auths` for that host, as in docker) and `credsStore` (the helper for
  // every host without an entry of its own). Entries later added for the same host win.
  // Malformed JSON, a bad base64 `auth` or a helper name with other than [A-Za-z0-9._-] is
  // InvalidArgument (naming the host, not the secret). Runs no helper. Never throws.
  absl::Status AddDockerConfig(std::string_view json);
  // Reads `path` with AddDockerConfig; a missing file is OK (nothing added).
  absl::Status AddDockerConfigFile(const std::string& path);
  // Adds the `[registry.auths."HOST"]` tables of lazysnap's config.toml (keys as in the
  // Docker config: username, password, auth, identitytoken). Other tables are ignored.
  // Malformed TOML or wrongly typed values are InvalidArgument naming the host. Never throws.
  absl::Status AddLazysnapConfig(std::string_view toml_text);
  // Adds one host's credentials. `host` as in the Docker config: "host",
  // "host:port" or a URL.
  void Add(std::string_view host, Credentials credentials);

  // The credentials for `host` ("registry-1.docker.io", "docker.io" and "index.docker.io" are
  // one), or nullopt. A host served by a credential helper runs it (at most once per
  // cache_ttl per host, its answer or failure kept that long). One run per host is in flight
  // at a time: concurrent lookups of that host wait for it and share its answer, so they may
  // block up to the helper timeout; lookups of other hosts do not wait for it. A helper's
  // failure is logged (helper, host and reason, never the output) and is nullopt (anonymous
  // access).
  std::optional<Credentials> Lookup(std::string_view host) const;

  // How many lookups so far waited for a helper run another lookup had started (for tests).
  int helper_waits() const;

 private:
  struct Entry {
    Credentials credentials;
    std::string helper;  // not "": ask docker-credential-<helper> instead
  };
  struct Cached {
    absl::Time expiry;
    std::optional<Credentials> credentials;
  };
  // One helper run in flight; its fields are guarded by cache_mu_ (shared_ptr: a waiter keeps
  // it after the run's owner has removed it from in_flight_).
  struct Flight {
    bool done = false;
    std::optional<Credentials> credentials;
  };
  std::optional<Credentials> RunHelperCached(const std::string& helper,
                                             const std::string& host) const;

  std::unique_ptr<CredentialHelperOptions> helper_options_;
  std::map<std::string, Entry, std::less<>> by_host_;
  std::string default_helper_;  // credsStore; "": none
  mutable absl::Mutex cache_mu_;
  // Keyed "helper\nhost". cache_mu_ is never held across a helper run.
  mutable std::map<std::string, Cached> cache_ ABSL_GUARDED_BY(cache_mu_);
  mutable std::map<std::string, std::shared_ptr<Flight>> in_flight_ ABSL_GUARDED_BY(cache_mu_);
  mutable int helper_waits_ ABSL_GUARDED_BY(cache_mu_) = 0;
};

// "https://index.docker.io/v1/" -> "docker.io", "http://h:5000/x" -> "h:5000".
std::string NormalizeCredentialHost(std::string_view key);

// The Docker config path docker and containerd's tools use: $DOCKER_CONFIG/config.json, else
// $HOME/.docker/config.json, else the passwd home of the calling user (a service started
// without HOME), else "". Reads the environment: not safe against concurrent setenv.
std::string DefaultDockerConfigPath();

}  // namespace lazysnap::registry

#endif  // LAZYSNAP_REGISTRY_CREDENTIALS_H_

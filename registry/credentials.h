// Registry credentials: from the Docker config (~/.docker/config.json: `auths` entries with a
// base64 `auth` "user:password", or `username`/`password`, or an `identitytoken`) and from
// lazysnap's own config. Secrets: never log a Credentials value.
#ifndef LAZYSNAP_REGISTRY_CREDENTIALS_H_
#define LAZYSNAP_REGISTRY_CREDENTIALS_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace lazysnap::registry {

struct Credentials {
  std::string username;
  std::string password;
  std::string identity_token;  // an OAuth2 refresh token (docker login with an IdP)
};

// Credentials by registry host. Build it once (Add*), then share it read-only: const methods
// are thread-safe, the others are not.
class CredentialStore {
 public:
  // Adds the `auths` of a Docker config JSON document. Entries later added for the same host
  // win. Malformed JSON or a bad base64 `auth` is InvalidArgument (naming the host, not the
  // secret). credsStore / credHelpers are ignored. Never throws.
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
  // one), or nullopt.
  std::optional<Credentials> Lookup(std::string_view host) const;

 private:
  std::map<std::string, Credentials, std::less<>> by_host_;
};

// "https://index.docker.io/v1/" -> "docker.io", "http://h:5000/x" -> "h:5000".
std::string NormalizeCredentialHost(std::string_view key);

// The Docker config path docker and containerd's tools use: $DOCKER_CONFIG/config.json, else
// $HOME/.docker/config.json, else the passwd home of the calling user (a service started
// without HOME), else "". Reads the environment: not safe against concurrent setenv.
std::string DefaultDockerConfigPath();

}  // namespace lazysnap::registry

#endif  // LAZYSNAP_REGISTRY_CREDENTIALS_H_

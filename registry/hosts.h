// Registry endpoints from containerd's hosts.toml (CONFIG_DIR/HOST[:PORT]/hosts.toml, falling
// back to CONFIG_DIR/_default/hosts.toml): mirrors in file order, then the origin (`server`,
// default https://HOST, https://registry-1.docker.io for docker.io, http:// for localhost,
// http:// for registries forced to plain HTTP).
#ifndef LAZYSNAP_REGISTRY_HOSTS_H_
#define LAZYSNAP_REGISTRY_HOSTS_H_

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "registry/transport.h"

namespace lazysnap::registry {

enum Capability : uint32_t { kCapPull = 1, kCapResolve = 2, kCapPush = 4 };

// One place to send registry API requests to. Value type.
struct RegistryEndpoint {
  std::string scheme = "https";  // "https" or "http"
  std::string host;              // "mirror.example:5000"
  std::string path = "/v2";      // API root ("/v2" unless override_path)
  uint32_t capabilities = kCapPull | kCapResolve | kCapPush;
  TlsOptions tls;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (`header`)
  bool is_origin = false;                                    // the registry itself, not a mirror

  std::string ApiUrl() const { return scheme + "://" + host + path; }  // ".../v2"
  std::string Root() const { return scheme + "://" + host; }
};

// Parses the text of a hosts.toml for registry `domain`. Relative `ca` / `client` paths are
// resolved against `dir` (the file's directory). Malformed TOML, a bad URL or a wrongly typed
// field is InvalidArgument. Never throws.
absl::StatusOr<std::vector<RegistryEndpoint>> ParseHostsToml(std::string_view domain,
                                                             std::string_view text,
                                                             std::string_view dir);

// Registries to reach over plain HTTP (the `--plain-http` of `lazysnap` and `ctr`): every
// registry (`all`) or the named ones ("127.0.0.1:5000"). A registry with a hosts.toml of its
// own (CONFIG_DIR/HOST/hosts.toml) is configured by that file instead. Value type.
struct PlainHttp {
  bool all = false;
  std::set<std::string, std::less<>> hosts;
  bool Applies(std::string_view domain) const { return all || hosts.count(domain) > 0; }
};

// The endpoints for `domain` when there is no hosts.toml: the origin alone (over http when
// `plain_http`).
std::vector<RegistryEndpoint> DefaultEndpoints(std::string_view domain, bool plain_http = false);

// Reads the hosts.toml for `domain` under `config_dir` (empty: none) or returns the default.
// For a registry `plain_http` applies to: its own hosts.toml if there is one, else its origin
// over http (CONFIG_DIR/_default/hosts.toml is not used for it).
absl::StatusOr<std::vector<RegistryEndpoint>> LoadEndpoints(std::string_view config_dir,
                                                            std::string_view domain,
                                                            const PlainHttp& plain_http = {});

// The endpoints of `all` having `capability`, in order.
std::vector<RegistryEndpoint> WithCapability(const std::vector<RegistryEndpoint>& all,
                                             Capability capability);

}  // namespace lazysnap::registry

#endif  // LAZYSNAP_REGISTRY_HOSTS_H_

// lazysnapd's configuration: /etc/lazysnap/config.toml (schema in docs/configuration.md),
// overridden by command-line flags. Plain value type.
#ifndef LAZYSNAP_CMD_LAZYSNAPD_CONFIG_H_
#define LAZYSNAP_CMD_LAZYSNAPD_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "prefetch/manager.h"

namespace lazysnap {

inline constexpr char kDefaultConfigPath[] = "/etc/lazysnap/config.toml";

struct DaemonConfig {
  std::string root = "/var/lib/lazysnap";               // state directory
  std::string address = "/run/lazysnap/lazysnapd.sock";  // gRPC unix socket
  std::string log_level = "info";                       // debug, info, warn, error
  std::string registry_config_path = "/etc/containerd/certs.d";  // [registry] config_path
  // [registry] docker_config: a Docker config.json whose `auths` give registry credentials.
  // nullopt: registry::DefaultDockerConfigPath(); "": none.
  std::optional<std::string> docker_config;
  // The config file's text when it has [registry.auths."HOST"] tables (validated by the
  // parse), for CredentialStore::AddLazysnapConfig; "" otherwise. Holds secrets: never log.
  std::string registry_auths_toml;
  uint64_t cache_max_bytes = 10ull << 30;               // [cache] max_bytes; 0: no limit
  bool lazy_pull = true;  // mount seekable layers lazily; false: plain overlayfs snapshotter
  // [fuse] passthrough_min_bytes: FUSE passthrough for fully cached files of at least this
  // size (LayerFsOptions::passthrough_min_bytes; docs/fusefs.md); 0: off.
  uint64_t fuse_passthrough_min_bytes = 1ull << 20;
  // [prefetch]: access-trace recording, replay, landmark and background prefetch
  // (docs/prefetch.md). The defaults of PrefetchConfig unless the file says otherwise.
  PrefetchConfig prefetch;

  // Keys the file had that lazysnapd does not know (reported as warnings, not errors, so
  // that one file can serve several versions).
  std::vector<std::string> unknown_keys;
};

// Parses TOML text over the defaults. Wrong types, a bad log_level, a negative max_bytes
// or a TOML syntax error are InvalidArgument naming the key or line.
absl::StatusOr<DaemonConfig> ParseDaemonConfig(std::string_view toml_text);

// Reads and parses `path`. A missing file is NotFound.
absl::StatusOr<DaemonConfig> LoadDaemonConfig(const std::string& path);

}  // namespace lazysnap

#endif  // LAZYSNAP_CMD_LAZYSNAPD_CONFIG_H_

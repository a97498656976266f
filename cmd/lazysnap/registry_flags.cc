#include "cmd/lazysnap/registry_flags.h"

#include <algorithm>

#include "base/status_macros.h"
#include "base/strings.h"

namespace lazysnap::cli {

void AddRegistryFlags(CLI::App& cmd, RegistryFlags* f, const std::string& timeout_name) {
  cmd.add_flag("--plain-http", f->plain_http,
               "talk plain HTTP to the registries (those without a hosts.toml of their own in "
               "--hosts-dir)");
  cmd.add_option("--hosts-dir", f->hosts_dir,
                 "containerd hosts.toml directory (e.g. /etc/containerd/certs.d): mirrors, "
                 "CAs, client certificates, plain HTTP per registry")
      ->check(CLI::ExistingDirectory);
  cmd.add_option("--docker-config", f->docker_config,
                 "registry credentials (default $DOCKER_CONFIG/config.json, else "
                 "~/.docker/config.json; a missing file means none)");
  cmd.add_option(timeout_name, f->timeout_seconds,
                 "seconds per registry operation, retries included")
      ->check(CLI::Range(1.0, 86400.0))
      ->capture_default_str();
}

absl::StatusOr<std::unique_ptr<RegistryConnection>> ConnectRegistry(const RegistryFlags& f) {
  registry::ClientOptions options;
  options.hosts_dir = f.hosts_dir;
  options.plain_http.all = f.plain_http;
  options.retry.deadline = absl::Seconds(f.timeout_seconds);
  options.retry.attempt_timeout = std::min(options.retry.attempt_timeout, options.retry.deadline);
  auto c = std::make_unique<RegistryConnection>();
  c->credentials = std::make_unique<registry::CredentialStore>();
  std::string config = f.docker_config.empty() ? registry::DefaultDockerConfigPath() : f.docker_config;
  if (!config.empty()) {
    absl::Status s = c->credentials->AddDockerConfigFile(config);
    if (!s.ok()) {
      return absl::Status(s.code(), StrCat("docker config ", config, ": ", s.message()));
    }
  }
  ASSIGN_OR_RETURN(c->transport, registry::CurlTransport::Create());
  c->client = std::make_unique<registry::RegistryClient>(c->transport.get(), c->credentials.get(),
                                                         options);
  return c;
}

}  // namespace lazysnap::cli

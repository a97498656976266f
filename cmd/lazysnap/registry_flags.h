// The registry options every registry-using `lazysnap` command shares (--plain-http,
// --hosts-dir, --docker-config, --timeout) and the client they configure. Docker config
// credentials are loaded by default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json
// (a missing file is no error).
#ifndef LAZYSNAP_CMD_LAZYSNAP_REGISTRY_FLAGS_H_
#define LAZYSNAP_CMD_LAZYSNAP_REGISTRY_FLAGS_H_

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/status/statusor.h"
#include "registry/client.h"
#include "registry/credentials.h"
#include "registry/curl_transport.h"

namespace lazysnap::cli {

struct RegistryFlags {
  bool plain_http = false;      // talk http to registries without their own hosts.toml
  std::string hosts_dir;        // containerd certs.d; "" = none
  std::string docker_config;    // "" = $DOCKER_CONFIG/config.json or ~/.docker/config.json
  double timeout_seconds = 60;  // per registry operation, retries included
  std::string temp_dir;         // not a flag here: commands set it from their --temp-dir
};

// Registers --plain-http, --hosts-dir, --docker-config and --timeout on `cmd`, writing `*f`
// (which must outlive the parse). `timeout_name` renames --timeout (e.g. "--registry-timeout"
// where --timeout means something else).
void AddRegistryFlags(CLI::App& cmd, RegistryFlags* f,
                      const std::string& timeout_name = "--timeout");

// A registry client with what it needs, in destruction order. Not copyable; the client is
// thread-safe.
struct RegistryConnection {
  std::unique_ptr<registry::CurlTransport> transport;
  std::unique_ptr<registry::CredentialStore> credentials;
  std::unique_ptr<registry::RegistryClient> client;
  ~RegistryConnection() {
    client.reset();
    transport.reset();
  }
};

// Builds a client from the flags: plain HTTP, hosts.toml dir, retry deadline, credentials of
// the Docker config. A malformed Docker config is InvalidArgument naming the file.
absl::StatusOr<std::unique_ptr<RegistryConnection>> ConnectRegistry(const RegistryFlags& f);

}  // namespace lazysnap::cli

#endif  // LAZYSNAP_CMD_LAZYSNAP_REGISTRY_FLAGS_H_

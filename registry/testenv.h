// Test support (linked only into tests and benchmarks): scratch directories, commands, free
// loopback ports, and a real docker-registry process started with its own config and storage.
#ifndef LAZYSNAP_REGISTRY_TESTENV_H_
#define LAZYSNAP_REGISTRY_TESTENV_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace lazysnap::registry::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  static absl::StatusOr<std::unique_ptr<TempDir>> Create();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// Runs argv[0] (looked up in PATH) and waits; non-zero exit is Internal. Output goes to
// stderr.
absl::Status RunCommand(const std::vector<std::string>& argv);

// A TCP port on 127.0.0.1 nobody listens on right now.
absl::StatusOr<int> PickFreePort();

// Waits until something accepts connections on 127.0.0.1:port.
absl::Status WaitForPort(int port, absl::Duration timeout);

struct RegistryConfig {
  std::string tls_cert, tls_key;  // PEM files: serve HTTPS
  std::string tls_client_ca;      // PEM CA: require client certificates it signed
  std::string htpasswd_file;      // bcrypt htpasswd: basic auth
  std::string token_realm;        // token auth: realm URL, service, issuer, CA bundle of signer
  std::string token_service, token_issuer, token_root_bundle;
  std::string proxy_remote_url;  // pull-through cache of this registry
};

// A docker-registry (distribution 2.8) serving from its own storage dir on a free loopback
// port. Not thread-safe; one owner.
class RegistryProcess {
 public:
  static constexpr char kBinary[] = "/usr/bin/docker-registry";
  static bool Available();
  // Writes config.yml into `dir`, stores blobs under dir/storage, starts the registry on a
  // free port (or `port` if non-zero) and waits for it to listen.
  static absl::StatusOr<std::unique_ptr<RegistryProcess>> Start(const RegistryConfig& config,
                                                                const std::string& dir,
                                                                int port = 0);
  ~RegistryProcess() { Stop(); }
  // Kills the registry (SIGKILL) and reaps it. Idempotent.
  void Stop();

  int port() const { return port_; }
  std::string host() const;  // "127.0.0.1:PORT"

 private:
  RegistryProcess(pid_t pid, int port) : pid_(pid), port_(port) {}
  pid_t pid_;
  int port_;
};

}  // namespace lazysnap::registry::testing

#endif  // LAZYSNAP_REGISTRY_TESTENV_H_

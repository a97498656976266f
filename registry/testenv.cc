#include "registry/testenv.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "base/errors.h"
#include "base/status_macros.h"
#include "base/stream.h"
#include "base/strings.h"

extern char** environ;

namespace lazysnap::registry::testing {
namespace {

// Starts argv; its stdout and stderr go to `log` when not empty.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const std::string& log = "") {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!log.empty()) {
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  }
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return ErrnoToStatus(rc, StrCat("spawn ", argv[0]));
  return pid;
}

bool CanConnect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TempDir>> TempDir::Create() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = StrCat(base != nullptr && *base ? base : "/tmp", "/lazysnap-reg-XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) return ErrnoToStatus(errno, "mkdtemp");
  return std::unique_ptr<TempDir>(new TempDir(tmpl));
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

absl::Status RunCommand(const std::vector<std::string>& argv) {
  ASSIGN_OR_RETURN(pid_t pid, Spawn(argv, "/dev/null"));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoToStatus(errno, "waitpid");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(StrCat(argv[0], " failed (status ", status, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> PickFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int e = errno;
    ::close(fd);
    return ErrnoToStatus(e, "bind");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

absl::Status WaitForPort(int port, absl::Duration timeout) {
  absl::Time end = absl::Now() + timeout;
  while (!CanConnect(port)) {
    if (absl::Now() > end) return absl::DeadlineExceededError(StrCat("nothing on port ", port));
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::OkStatus();
}

bool RegistryProcess::Available() { return ::access(kBinary, X_OK) == 0; }

std::string RegistryProcess::host() const { return StrCat("127.0.0.1:", port_); }

absl::StatusOr<std::unique_ptr<RegistryProcess>> RegistryProcess::Start(const RegistryConfig& c,
                                                                        const std::string& dir,
                                                                        int port) {
  if (port == 0) {
    ASSIGN_OR_RETURN(port, PickFreePort());
  }
  std::string yml = StrCat(
      "version: 0.1\n"
      "log:\n  level: error\n  accesslog:\n    disabled: true\n"
      "storage:\n  filesystem:\n    rootdirectory: ",
      dir,
      "/storage\n"
      "  delete:\n    enabled: true\n"
      "http:\n  addr: 127.0.0.1:",
      port, "\n  secret: lazysnap-test-secret\n");
  if (!c.tls_cert.empty()) {
    StrAppend(&yml, "  tls:\n    certificate: ", c.tls_cert, "\n    key: ", c.tls_key, "\n");
    if (!c.tls_client_ca.empty())
      StrAppend(&yml, "    clientcas:\n      - ", c.tls_client_ca, "\n");
  }
  if (!c.htpasswd_file.empty()) {
    StrAppend(&yml, "auth:\n  htpasswd:\n    realm: lazysnap-test\n    path: ", c.htpasswd_file,
              "\n");
  } else if (!c.token_realm.empty()) {
    StrAppend(&yml, "auth:\n  token:\n    realm: ", c.token_realm,
              "\n    service: ", c.token_service, "\n    issuer: ", c.token_issuer,
              "\n    rootcertbundle: ", c.token_root_bundle, "\n");
  }
  if (!c.proxy_remote_url.empty()) {
    StrAppend(&yml, "proxy:\n  remoteurl: ", c.proxy_remote_url, "\n");
  }
  std::string config = dir + "/config.yml";
  RETURN_IF_ERROR(WriteFileAtomically(config, yml));
  ASSIGN_OR_RETURN(pid_t pid, Spawn({kBinary, "serve", config}, dir + "/registry.log"));
  auto proc = std::unique_ptr<RegistryProcess>(new RegistryProcess(pid, port));
  absl::Time end = absl::Now() + absl::Seconds(20);
  while (!CanConnect(port)) {
    int status;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      proc->pid_ = -1;
      return absl::InternalError(StrCat("docker-registry exited early (status ", status, ")"));
    }
    if (absl::Now() > end) return absl::DeadlineExceededError("docker-registry did not start");
    absl::SleepFor(absl::Milliseconds(20));
  }
  return proc;
}

void RegistryProcess::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

}  // namespace lazysnap::registry::testing

// lazysnapd: serves containerd's Snapshots gRPC API on a unix socket, for containerd's
// `[proxy_plugins.lazysnap]`. Flags override the config file (docs/configuration.md).
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <grpcpp/grpcpp.h>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "base/errors.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "cmd/lazysnapd/config.h"
#include "prefetch/registry_traces.h"
#include "registry/credentials.h"
#include "remote/registry_mounter.h"
#include "snapshotter/grpc_service.h"
#include "snapshotter/overlay_snapshotter.h"
#include "snapshotter/remote_layer.h"

namespace lazysnap {
namespace {

constexpr auto kShutdownGrace = std::chrono::seconds(10);

// True when a server accepts connections on the unix socket `path`.
bool SocketAlive(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool alive = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return alive;
}

// Creates the socket's directory (0700 when lazysnapd creates it) and removes a stale socket
// left by a daemon that did not stop cleanly. A live socket or a non-socket file is an error.
absl::Status PrepareSocketPath(const std::string& address) {
  if (address.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(StrCat("socket path too long: ", address));
  }
  std::filesystem::path dir = std::filesystem::path(address).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) {
      std::filesystem::create_directories(dir.parent_path(), ec);
      if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        return ErrnoToStatus(errno, StrCat("mkdir ", dir.string()));
      }
    }
  }
  struct stat st;
  if (lstat(address.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(StrCat(address, " exists and is not a socket"));
    }
    if (SocketAlive(address)) {
      return absl::FailedPreconditionError(StrCat(address, " is in use by a running server"));
    }
    LZ_LOG(kInfo, "removing stale socket ", address);
    if (unlink(address.c_str()) != 0) return ErrnoToStatus(errno, StrCat("unlink ", address));
  }
  return absl::OkStatus();
}

absl::Status Run(const DaemonConfig& config, const sigset_t& signals) {
  RETURN_IF_ERROR(PrepareSocketPath(config.address));
  std::unique_ptr<RemoteLayerMounter> mounter;
  RegistryLayerMounter* remote = nullptr;  // owned by the snapshotter; for SIGUSR1
  if (config.lazy_pull) {
    // The cache lives under root, which the snapshotter creates (mode 0700) only below.
    std::error_code ec;
    std::filesystem::create_directories(config.root, ec);
    if (ec) return absl::InternalError(StrCat("create ", config.root, ": ", ec.message()));
    if (chmod(config.root.c_str(), 0700) != 0) return ErrnoToStatus(errno, StrCat("chmod ", config.root));
    RegistryMounterOptions options;
    options.cache_root = StrCat(config.root, "/cache");
    options.cache_max_bytes = config.cache_max_bytes;
    options.hosts_dir = config.registry_config_path;
    options.docker_config = config.docker_config.value_or(registry::DefaultDockerConfigPath());
    options.auths_toml = config.registry_auths_toml;
    options.prefetch = config.prefetch;
    options.fs.passthrough_min_bytes = config.fuse_passthrough_min_bytes;
    options.trace_root = config.root;
    if (!options.docker_config.empty()) {
      std::error_code exists_ec;
      bool found = std::filesystem::exists(options.docker_config, exists_ec);
      LZ_LOG(kInfo, "registry credentials: Docker config ", options.docker_config,
             found ? "" : " (not present)",
             options.auths_toml.empty() ? "" : ", and [registry.auths] of the config file");
    }
    ASSIGN_OR_RETURN(std::unique_ptr<RegistryLayerMounter> m, RegistryLayerMounter::Create(options));
    remote = m.get();
    if (PrefetchManager* prefetch = m->prefetch(); prefetch && config.prefetch.registry_lookup) {
      // Images without a local trace: look one up in their repository (prefetch/registry_traces.h).
      prefetch->SetTraceSource(
          std::make_shared<RegistryTraceSource>(&m->registry_client(), &prefetch->store()));
    }
    mounter = std::move(m);
  } else {
    LZ_LOG(kInfo, "lazy pulling disabled: every layer is pulled and unpacked by containerd");
    mounter = NewUnavailableRemoteLayerMounter();
  }
  ASSIGN_OR_RETURN(auto snapshotter, OverlaySnapshotter::Open(config.root, std::move(mounter)));
  // Before serving: containers may already run on the remote layers of the last process.
  ASSIGN_OR_RETURN(OverlaySnapshotter::RestoreResult restored, snapshotter->RestoreRemoteLayers());
  if (restored.restored + restored.failed > 0) {
    LZ_LOG(kInfo, "remote snapshots restored: ", restored.restored, ", failed: ", restored.failed);
  }
  SnapshotsService service(snapshotter.get());
  grpc::ServerBuilder builder;
  builder.AddListeningPort(StrCat("unix:", config.address), grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  // The socket is root's only: created under umask 077, then chmod'ed to be sure.
  mode_t old_umask = umask(077);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  umask(old_umask);
  if (!server) return absl::UnavailableError(StrCat("cannot listen on ", config.address));
  if (chmod(config.address.c_str(), 0600) != 0) {
    server->Shutdown();
    return ErrnoToStatus(errno, StrCat("chmod ", config.address));
  }
  LZ_LOG(kInfo, "lazysnapd serving on ", config.address, ", root ", config.root);

  std::thread waiter([&server, &signals, &snapshotter, remote] {
    int sig = 0;
    while (sigwait(&signals, &sig) == 0 && sig == SIGUSR1) {
      // SIGUSR1: log every mounted remote layer's figures (fetched bytes, cached chunks).
      OverlaySnapshotter::RemoteCounters counters = snapshotter->remote_counters();
      LZ_LOG(kInfo, "remote snapshots: ", counters.prepared, " prepared, ", counters.fallbacks,
             " fell back to an ordinary pull");
      if (remote == nullptr) continue;
      LayerCacheStats sum;
      for (const RemoteLayerStats& s : remote->Stats()) {
        LZ_LOG(kInfo, "remote layer stats: ", RegistryLayerMounter::Describe(s));
        sum.requests += s.cache.requests;
        sum.chunks_fetched += s.cache.chunks_fetched;
        sum.prefetch_requests += s.cache.prefetch_requests;
        sum.prefetch_bytes_fetched += s.cache.prefetch_bytes_fetched;
        sum.prefetch_chunks += s.cache.prefetch_chunks;
        sum.prefetch_chunk_bytes += s.cache.prefetch_chunk_bytes;
        sum.prefetch_hits += s.cache.prefetch_hits;
        sum.prefetch_hit_bytes += s.cache.prefetch_hit_bytes;
      }
      // One line over every mounted layer (docs/prefetch.md; test/integration/prefetch_test.sh).
      LZ_LOG(kInfo, "prefetch totals: prefetched_chunks=", sum.prefetch_chunks,
             " prefetch_requests=", sum.prefetch_requests,
             " prefetch_bytes=", sum.prefetch_bytes_fetched,
             " prefetched_chunks_read=", sum.prefetch_hits,
             " prefetched_bytes_unread=", sum.prefetch_unused_bytes(),
             " ondemand_chunks=", sum.ondemand_chunks(),
             " ondemand_requests=", sum.requests - sum.prefetch_requests);
    }
    LZ_LOG(kInfo, "signal ", sig, " (", strsignal(sig), "): shutting down");
    server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  });
  server->Wait();
  waiter.join();
  unlink(config.address.c_str());
  LZ_LOG(kInfo, "lazysnapd stopped");
  return absl::OkStatus();
}

}  // namespace
}  // namespace lazysnap

int main(int argc, char** argv) {
  using namespace lazysnap;
  CLI::App app{"lazysnapd: containerd snapshotter with lazily pulled image layers"};
  std::string config_path = kDefaultConfigPath;
  std::optional<std::string> root, address, log_level;
  auto* config_opt = app.add_option("--config", config_path, "TOML config file")
                         ->capture_default_str();
  app.add_option("--root", root, "state directory (default /var/lib/lazysnap)");
  app.add_option("--address", address,
                 "gRPC unix socket (default /run/lazysnap/lazysnapd.sock)");
  app.add_option("--log-level", log_level, "debug, info, warn or error (default info)");
  CLI11_PARSE(app, argc, argv);

  DaemonConfig config;
  auto loaded = LoadDaemonConfig(config_path);
  if (loaded.ok()) {
    config = *loaded;
  } else if (!absl::IsNotFound(loaded.status()) || config_opt->count() > 0) {
    LogLine(LogLevel::kError, StrCat("lazysnapd: ", loaded.status().ToString()));
    return 2;
  }
  if (root) config.root = *root;
  if (address) config.address = *address;
  if (log_level) config.log_level = *log_level;
  LogLevel level;
  if (!ParseLogLevel(config.log_level, &level)) {
    LogLine(LogLevel::kError, StrCat("lazysnapd: unknown log level ", config.log_level));
    return 2;
  }
  SetLogLevel(level);
  for (const std::string& k : config.unknown_keys) {
    LZ_LOG(kWarning, config_path, ": unknown key ", k, " ignored");
  }
  struct stat config_stat;
  if (!config.registry_auths_toml.empty() && stat(config_path.c_str(), &config_stat) == 0 &&
      (config_stat.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(config_stat.st_mode & 07777));
    LZ_LOG(kWarning, config_path, " holds registry credentials and is readable by others (mode ",
           mode, "): chmod 600 it");
  }

  // Block the shutdown signals in every thread (gRPC's included); one thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::Status s = Run(config, signals);
  if (!s.ok()) {
    LogLine(LogLevel::kError, StrCat("lazysnapd: ", s.ToString()));
    return 1;
  }
  return 0;
}

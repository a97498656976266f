#include "cmd/lazysnapd/daemon_testenv.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <grpcpp/grpcpp.h>
#include <set>
#include <sstream>
#include <thread>

#include "base/stream.h"
#include "base/strings.h"
#include "format/convert.h"
#include "format/estargz_testutil.h"

namespace lazysnap::testing {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

absl::StatusOr<TestLayer> MakeEstargzLayer(const std::map<std::string, std::string>& files,
                                           uint32_t chunk_size) {
  std::string tar;
  std::set<std::string> dirs;
  for (const auto& [path, data] : files) {
    for (size_t slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      std::string dir = path.substr(0, slash + 1);
      if (dirs.insert(dir).second) tar += UstarHeader(dir, '5', 0, {}, 0755);
    }
    tar += UstarHeader(path, '0', data.size());
    tar += data;
    tar += TarPad(data.size());
  }
  tar += std::string(1024, '\0');
  StringInputStream in(std::move(tar));
  StringOutputStream out;
  ConvertOptions options;
  options.format = LayerFormat::kEstargz;
  if (chunk_size != 0) options.chunk_size = chunk_size;
  options.threads = 1;
  auto converted = ConvertLayer(in, out, options);
  if (!converted.ok()) return converted.status();
  TestLayer layer;
  layer.blob = std::move(out.data());
  layer.digest = converted->blob_digest;
  layer.toc_digest = converted->toc_digest;
  return layer;
}

std::map<std::string, std::string> RemoteLayerLabels(const std::string& ref,
                                                     const std::string& layer_digest,
                                                     const std::string& toc_digest,
                                                     const std::string& chain_id) {
  return {{"containerd.io/snapshot.ref", chain_id},
          {"containerd.io/snapshot/remote/stargz.reference", ref},
          {"containerd.io/snapshot/remote/stargz.digest", layer_digest},
          {"containerd.io/snapshot/remote/stargz.layers", layer_digest},
          {"containerd.io/snapshot/stargz/toc.digest", toc_digest}};
}

std::string LazysnapdBinary() {
  if (const char* env = getenv("LAZYSNAPD")) return env;
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path();
  for (const char* rel : {"cmd/lazysnapd/lazysnapd", "../cmd/lazysnapd/lazysnapd", "lazysnapd"}) {
    std::filesystem::path p = self / rel;
    if (access(p.c_str(), X_OK) == 0) return p.lexically_normal().string();
  }
  return "lazysnapd";
}

absl::StatusOr<std::unique_ptr<DaemonProcess>> DaemonProcess::Start(const std::string& binary,
                                                                   const std::string& dir,
                                                                   const std::string& extra_toml,
                                                                   absl::Duration timeout) {
  const std::string config = StrCat(dir, "/config.toml");
  const std::string socket = StrCat(dir, "/s.sock");
  const std::string log = StrCat(dir, "/lazysnapd.log");
  {
    std::ofstream out(config);
    out << "root = \"" << dir << "/root\"\naddress = \"" << socket << "\"\n" << extra_toml << "\n";
    if (!out) return absl::InternalError(StrCat("write ", config));
  }
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork");
  if (pid == 0) {
    FILE* f = freopen(log.c_str(), "a", stderr);
    if (f == nullptr) _exit(126);
    dup2(STDERR_FILENO, STDOUT_FILENO);
    execl(binary.c_str(), binary.c_str(), "--config", config.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  auto d = std::unique_ptr<DaemonProcess>(new DaemonProcess(pid, dir, socket));
  absl::Time deadline = absl::Now() + timeout;
  while (d->Log().find("lazysnapd serving on") == std::string::npos) {
    if (!d->Alive()) {
      return absl::InternalError(StrCat(binary, " exited (status ", d->exit_status_, "): ", d->Log()));
    }
    if (absl::Now() > deadline) return absl::DeadlineExceededError(StrCat(binary, ": ", d->Log()));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return d;
}

DaemonProcess::~DaemonProcess() { (void)Stop(); }

bool DaemonProcess::Alive() {
  if (reaped_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    exit_status_ = status;
    return false;
  }
  return r == 0;
}

absl::Status DaemonProcess::Stop() {
  if (Alive()) {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 150 && Alive(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (Alive()) {
      kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
      reaped_ = true;
      exit_status_ = status;
      return absl::DeadlineExceededError("lazysnapd did not stop on SIGTERM");
    }
  }
  if (WIFEXITED(exit_status_) && WEXITSTATUS(exit_status_) == 0) return absl::OkStatus();
  return absl::InternalError(StrCat("lazysnapd exit status ", exit_status_));
}

std::string DaemonProcess::Log() const { return ReadAll(StrCat(dir_, "/lazysnapd.log")); }

uint64_t DaemonProcess::RssBytes() const {
  std::ifstream in(StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

std::unique_ptr<snapshots_v1::Snapshots::Stub> DaemonProcess::NewStub() const {
  return snapshots_v1::Snapshots::NewStub(
      grpc::CreateChannel(StrCat("unix:", socket_), grpc::InsecureChannelCredentials()));
}

}  // namespace lazysnap::testing

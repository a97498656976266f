// Test and benchmark support (not linked into lazysnapd): the real lazysnapd binary started
// as a child process with its own root, socket and config, a gRPC client for it, and small
// eStargz layers made on the fly.
#ifndef LAZYSNAP_CMD_LAZYSNAPD_DAEMON_TESTENV_H_
#define LAZYSNAP_CMD_LAZYSNAPD_DAEMON_TESTENV_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/digest.h"
#include "containerd/services/snapshots/v1/snapshots.grpc.pb.h"

namespace lazysnap::testing {

namespace snapshots_v1 = ::containerd::services::snapshots::v1;

// An eStargz layer blob of `files` (path -> contents; directories implied), converted with
// format/convert.h. `chunk_size` 0: the converter's default.
struct TestLayer {
  std::string blob;
  Sha256 digest;
  Sha256 toc_digest;
};
absl::StatusOr<TestLayer> MakeEstargzLayer(const std::map<std::string, std::string>& files,
                                           uint32_t chunk_size = 0);

// The labels ctr-remote's rpull gives the Prepare of one layer: the chain ID to commit
// under, the image reference, the layer digest and its TOC digest annotation.
std::map<std::string, std::string> RemoteLayerLabels(const std::string& ref,
                                                     const std::string& layer_digest,
                                                     const std::string& toc_digest,
                                                     const std::string& chain_id);

// The lazysnapd binary next to the test binaries: $LAZYSNAPD, else
// <dir of /proc/self/exe>/(cmd/lazysnapd/|../cmd/lazysnapd/)lazysnapd.
std::string LazysnapdBinary();

// A lazysnapd process. One owner; not thread-safe.
class DaemonProcess {
 public:
  // Writes DIR/config.toml (root DIR/root, address DIR/s.sock, then `extra_toml`), starts
  // `binary --config DIR/config.toml` with stderr to DIR/lazysnapd.log and waits (up to
  // `timeout`) until it logs that it serves. Exiting before that is an error quoting its log.
  static absl::StatusOr<std::unique_ptr<DaemonProcess>> Start(
      const std::string& binary, const std::string& dir, const std::string& extra_toml,
      absl::Duration timeout = absl::Seconds(30));
  ~DaemonProcess();  // Stop()

  // SIGTERM, then SIGKILL after 15 s; reaps it. OK when it exited 0. Idempotent.
  absl::Status Stop();
  // True while the process runs (not exited, not a zombie).
  bool Alive();
  pid_t pid() const { return pid_; }
  const std::string& socket() const { return socket_; }
  std::string Log() const;         // DIR/lazysnapd.log so far
  uint64_t RssBytes() const;       // VmRSS; 0 when unknown
  std::unique_ptr<snapshots_v1::Snapshots::Stub> NewStub() const;

 private:
  DaemonProcess(pid_t pid, std::string dir, std::string socket)
      : pid_(pid), dir_(std::move(dir)), socket_(std::move(socket)) {}
  pid_t pid_;
  bool reaped_ = false;
  int exit_status_ = 0;
  std::string dir_;
  std::string socket_;
};

}  // namespace lazysnap::testing

#endif  // LAZYSNAP_CMD_LAZYSNAPD_DAEMON_TESTENV_H_

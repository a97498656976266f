// FaultProxy (linked only into tests and benchmarks): an HTTP/1.1 proxy on loopback in front
// of one upstream server that breaks chosen exchanges: connection resets, stalls, 5xx and 429
// answers, truncated and corrupted bodies, wrong Content-Range headers.
#ifndef LAZYSNAP_REGISTRY_FAULT_PROXY_H_
#define LAZYSNAP_REGISTRY_FAULT_PROXY_H_

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace lazysnap::registry::testing {

enum class Fault {
  kNone,
  kReset,       // close the client connection with RST, no answer
  kStall,       // answer nothing for stall(), then close
  kStatus500,   // 500 Internal Server Error
  kStatus503,   // 503 Service Unavailable
  kStatus429,   // 429 Too Many Requests (Retry-After: 0)
  kTruncate,    // the real headers, half the body, then close
  kCorrupt,     // the real answer with one body byte flipped
  kWrongRange,  // the real answer with Content-Range shifted by one byte
};

class FaultProxy {
 public:
  // Listens on a free loopback port, forwarding to 127.0.0.1:upstream_port.
  static absl::StatusOr<std::unique_ptr<FaultProxy>> Start(int upstream_port);
  ~FaultProxy();  // closes every connection and joins its threads

  // Thread-safe. The next requests whose target contains `path_part` get `faults`, in order
  // (one each); requests after them pass through. (Matched against "METHOD target": a
  // `path_part` of "GET /v2/" takes GETs only.)
  void Inject(std::vector<Fault> faults, std::string path_part = "/blobs/");
  // Every request whose target contains `path_part` gets `fault` (kNone to clear).
  void Always(Fault fault, std::string path_part = "/blobs/");
  void set_stall(absl::Duration d);

  int port() const { return port_; }
  std::string host() const;  // "127.0.0.1:PORT"
  int requests() const;      // requests received
  int faults_injected() const;

 private:
  FaultProxy(int listen_fd, int port, int upstream_port);
  void AcceptLoop();
  void Serve(int fd);
  Fault Next(const std::string& target);

  const int listen_fd_;
  const int port_;
  const int upstream_port_;
  mutable absl::Mutex mu_;
  std::deque<std::pair<std::string, Fault>> queued_ ABSL_GUARDED_BY(mu_);
  std::pair<std::string, Fault> always_ ABSL_GUARDED_BY(mu_) = {"", Fault::kNone};
  absl::Duration stall_ ABSL_GUARDED_BY(mu_) = absl::Seconds(5);
  int requests_ ABSL_GUARDED_BY(mu_) = 0;
  int injected_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<int> client_fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::thread acceptor_;
};

}  // namespace lazysnap::registry::testing

#endif  // LAZYSNAP_REGISTRY_FAULT_PROXY_H_

#include "registry/fault_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "base/errors.h"
#include "base/strings.h"
#include "registry/ranges.h"

namespace lazysnap::registry::testing {
namespace {

bool RecvMore(int fd, std::string* buf) {
  char tmp[65536];
  ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
  if (n <= 0) return false;
  buf->append(tmp, static_cast<size_t>(n));
  return true;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

struct Message {
  std::string first_line;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string Get(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
  void Drop(std::string_view name) {
    headers.erase(std::remove_if(headers.begin(), headers.end(),
                                 [&](const auto& h) { return h.first == name; }),
                  headers.end());
  }
  void Set(std::string name, std::string value) {
    Drop(name);
    headers.emplace_back(std::move(name), std::move(value));
  }
  std::string Serialize() const {
    std::string out = first_line + "\r\n";
    for (const auto& [k, v] : headers) StrAppend(&out, k, ": ", v, "\r\n");
    out += "\r\n";
    return out;
  }
};

Message ParseHead(std::string_view head) {
  Message m;
  size_t eol = head.find("\r\n");
  m.first_line = std::string(head.substr(0, eol));
  head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
  while (!head.empty()) {
    eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    absl::AsciiStrToLower(&name);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    m.headers.emplace_back(std::move(name), std::string(value));
  }
  return m;
}

// Decodes a chunked body; false when malformed.
bool Dechunk(std::string_view in, std::string* out) {
  while (true) {
    size_t eol = in.find("\r\n");
    if (eol == std::string_view::npos) return false;
    std::string_view size_str = in.substr(0, in.find_first_of(";\r"));
    uint64_t n = 0;
    if (!absl::SimpleHexAtoi(AV(size_str), &n)) return false;
    in.remove_prefix(eol + 2);
    if (n == 0) return true;
    if (in.size() < n + 2) return false;
    out->append(in.substr(0, n));
    in.remove_prefix(n + 2);
  }
}

absl::StatusOr<int> ConnectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int e = errno;
    ::close(fd);
    return ErrnoToStatus(e, "connect upstream");
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FaultProxy>> FaultProxy::Start(int upstream_port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 128) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int e = errno;
    ::close(fd);
    return ErrnoToStatus(e, "fault proxy listen");
  }
  auto proxy = std::unique_ptr<FaultProxy>(new FaultProxy(fd, ntohs(addr.sin_port), upstream_port));
  FaultProxy* raw = proxy.get();
  proxy->acceptor_ = std::thread([raw] { raw->AcceptLoop(); });
  return proxy;
}

FaultProxy::FaultProxy(int listen_fd, int port, int upstream_port)
    : listen_fd_(listen_fd), port_(port), upstream_port_(upstream_port) {}

FaultProxy::~FaultProxy() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
    for (int fd : client_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  acceptor_.join();
  {
    absl::MutexLock l(&mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
  ::close(listen_fd_);
}

std::string FaultProxy::host() const { return StrCat("127.0.0.1:", port_); }

void FaultProxy::Inject(std::vector<Fault> faults, std::string path_part) {
  absl::MutexLock l(&mu_);
  for (Fault f : faults) queued_.emplace_back(path_part, f);
}

void FaultProxy::Always(Fault fault, std::string path_part) {
  absl::MutexLock l(&mu_);
  always_ = {std::move(path_part), fault};
}

void FaultProxy::set_stall(absl::Duration d) {
  absl::MutexLock l(&mu_);
  stall_ = d;
}

int FaultProxy::requests() const {
  absl::MutexLock l(&mu_);
  return requests_;
}

int FaultProxy::faults_injected() const {
  absl::MutexLock l(&mu_);
  return injected_;
}

Fault FaultProxy::Next(const std::string& target) {
  absl::MutexLock l(&mu_);
  ++requests_;
  Fault f = Fault::kNone;
  if (!queued_.empty() && target.find(queued_.front().first) != std::string::npos) {
    f = queued_.front().second;
    queued_.pop_front();
  } else if (always_.second != Fault::kNone && target.find(always_.first) != std::string::npos) {
    f = always_.second;
  }
  if (f != Fault::kNone) ++injected_;
  return f;
}

void FaultProxy::AcceptLoop() {
  while (true) {
    {
      absl::MutexLock l(&mu_);
      if (stopping_) return;
    }
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    absl::MutexLock l(&mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    client_fds_.push_back(fd);
    threads_.emplace_back([this, fd] {
      Serve(fd);
      absl::MutexLock l(&mu_);
      client_fds_.erase(std::find(client_fds_.begin(), client_fds_.end(), fd));
      ::close(fd);
    });
  }
}

void FaultProxy::Serve(int fd) {
  std::string in;
  while (true) {
    size_t hend;
    while ((hend = in.find("\r\n\r\n")) == std::string::npos) {
      if (!RecvMore(fd, &in)) return;
    }
    Message req = ParseHead(std::string_view(in).substr(0, hend + 2));
    in.erase(0, hend + 4);
    uint64_t body_len = 0;
    (void)absl::SimpleAtoi(req.Get("content-length"), &body_len);
    while (in.size() < body_len) {
      if (!RecvMore(fd, &in)) return;
    }
    std::string body = in.substr(0, body_len);
    in.erase(0, body_len);
    std::string method = req.first_line.substr(0, req.first_line.find(' '));
    std::string target = req.first_line.substr(method.size() + 1);
    target = target.substr(0, target.find(' '));
    const Fault fault = Next(StrCat(method, " ", target));  // "GET /v2/..."
    switch (fault) {
      case Fault::kReset: {
        linger lg{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        return;
      }
      case Fault::kStall: {
        absl::MutexLock l(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stopping_), stall_);
        return;
      }
      case Fault::kStatus500:
      case Fault::kStatus503:
      case Fault::kStatus429: {
        const char* line = fault == Fault::kStatus500   ? "500 Internal Server Error"
                           : fault == Fault::kStatus503 ? "503 Service Unavailable"
                                                        : "429 Too Many Requests";
        if (!SendAll(
                fd, StrCat("HTTP/1.1 ", line, "\r\nContent-Length: 0\r\nRetry-After: 0\r\n\r\n"))) {
          return;
        }
        continue;
      }
      default:
        break;
    }
    auto up = ConnectLoopback(upstream_port_);
    if (!up.ok()) return;  // upstream down: the client sees the connection close
    req.Drop("connection");
    req.Drop("keep-alive");
    req.Set("connection", "close");
    bool sent = SendAll(*up, req.Serialize()) && SendAll(*up, body);
    std::string raw;
    while (sent && RecvMore(*up, &raw)) {
    }
    ::close(*up);
    size_t rend = raw.find("\r\n\r\n");
    if (!sent || rend == std::string::npos) return;
    Message resp = ParseHead(std::string_view(raw).substr(0, rend + 2));
    std::string resp_body = raw.substr(rend + 4);
    if (absl::AsciiStrToLower(resp.Get("transfer-encoding")).find("chunked") != std::string::npos) {
      std::string plain;
      if (!Dechunk(resp_body, &plain)) return;
      resp_body = std::move(plain);
      resp.Drop("transfer-encoding");
      resp.Set("content-length", StrCat(resp_body.size()));
    }
    resp.Drop("connection");
    if (method != "HEAD" && resp.Get("content-length").empty()) {
      resp.Set("content-length", StrCat(resp_body.size()));
    }
    if (fault == Fault::kCorrupt && !resp_body.empty()) resp_body[resp_body.size() / 2] ^= 0x5a;
    if (fault == Fault::kWrongRange) {
      // One byte later (or earlier at the end); a range covering the whole blob gets a
      // wrong total instead.
      if (auto cr = ParseContentRange(resp.Get("content-range")); cr.ok() && cr->total) {
        uint64_t first = cr->first, last = cr->last, total = *cr->total;
        if (last + 1 < total) {
          ++first, ++last;
        } else if (first > 0) {
          --first, --last;
        } else {
          ++total;
        }
        resp.Set("content-range", StrCat("bytes ", first, "-", last, "/", total));
      }
    }
    if (fault == Fault::kTruncate) {
      SendAll(fd, resp.Serialize());
      SendAll(fd, std::string_view(resp_body).substr(0, resp_body.size() / 2));
      return;
    }
    if (!SendAll(fd, resp.Serialize()) || !SendAll(fd, resp_body)) return;
  }
}

}  // namespace lazysnap::registry::testing

#include "bench/shaper/shaper.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <deque>
#include <vector>

#include "absl/strings/numbers.h"
#include "base/strings.h"

namespace lazysnap::shaper {
namespace {

constexpr size_t kMaxChunk = 256 << 10;
constexpr size_t kQueueCap = 32 << 20;  // bytes in flight per direction, at most

absl::Status Errno(std::string_view what) {
  return absl::InternalError(StrCat(what, ": ", std::strerror(errno)));
}

// Writes all of `data`; false on error (peer gone).
bool SendAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void NoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

absl::StatusOr<int> ConnectTcp(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) return absl::UnavailableError(StrCat("resolve ", host, ": ", gai_strerror(rc)));
  absl::Status last = absl::UnavailableError(StrCat("connect ", host, ":", port));
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      ::freeaddrinfo(res);
      return fd;
    }
    last = Errno(StrCat("connect ", host, ":", port));
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return last;
}

}  // namespace

std::string FormatStats(const ShaperStats& s) {
  return StrCat("connections=", s.connections, " active=", s.active, " bytes_up=", s.bytes_up,
                " bytes_down=", s.bytes_down, " upstream_failures=", s.upstream_failures);
}

std::string FormatStatsJson(const ShaperStats& s) {
  return StrCat("{\"connections\":", s.connections, ",\"active\":", s.active,
                ",\"bytes_up\":", s.bytes_up, ",\"bytes_down\":", s.bytes_down,
                ",\"upstream_failures\":", s.upstream_failures, "}");
}

absl::StatusOr<double> ParseRate(std::string_view text) {
  std::string t(text);
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "unlimited" || t == "0" || t == "none") return 0.0;
  struct Unit {
    const char* suffix;
    double bits;
  };
  // Longest suffixes first.
  static constexpr Unit kUnits[] = {
      {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1},
      {"gbps", 8e9}, {"mbps", 8e6}, {"kbps", 8e3}, {"bps", 8},
  };
  double mult = 1;
  for (const Unit& u : kUnits) {
    size_t n = std::strlen(u.suffix);
    if (t.size() > n && t.compare(t.size() - n, n, u.suffix) == 0) {
      t.resize(t.size() - n);
      mult = u.bits;
      break;
    }
  }
  double v;
  if (!absl::SimpleAtod(t, &v) || !(v >= 0) || std::isinf(v)) {
    return absl::InvalidArgumentError(StrCat("bad rate '", text, "' (e.g. 100mbit, 1gbit)"));
  }
  return v * mult;
}

absl::StatusOr<std::chrono::microseconds> ParseDuration(std::string_view text) {
  std::string t(text);
  double mult = 1000;  // bare numbers are milliseconds
  auto strip = [&t](const char* s) {
    size_t n = std::strlen(s);
    if (t.size() > n && t.compare(t.size() - n, n, s) == 0) {
      t.resize(t.size() - n);
      return true;
    }
    return false;
  };
  if (strip("us")) {
    mult = 1;
  } else if (strip("ms")) {
    mult = 1000;
  } else if (strip("s")) {
    mult = 1e6;
  }
  double v;
  if (!absl::SimpleAtod(t, &v) || !(v >= 0) || v * mult > 3600e6) {
    return absl::InvalidArgumentError(StrCat("bad duration '", text, "' (e.g. 20ms)"));
  }
  return std::chrono::microseconds(static_cast<int64_t>(std::llround(v * mult)));
}

// One proxied connection. Owns both sockets (closed by the destructor, after every thread
// using them has been joined), so Abort() never races with fd reuse.
struct Shaper::Conn {
  int client = -1;
  // Set once by ServeConn (under fd_mu, so that an Abort racing with the connect is not lost),
  // before the pump threads start; read without the lock by those threads.
  int upstream = -1;
  absl::Mutex fd_mu;
  bool aborted ABSL_GUARDED_BY(fd_mu) = false;
  Clock::time_point accepted;
  std::unique_ptr<TokenBucket> own_up, own_down;
  TokenBucket* up_bucket = nullptr;    // may be null: unlimited
  TokenBucket* down_bucket = nullptr;  // may be null: unlimited
  std::atomic<bool> done{false};

  // Delay queue of one direction (used when rtt > 0).
  struct Chunk {
    Clock::time_point release;
    std::vector<char> data;  // empty: end of stream
  };
  struct Queue {
    absl::Mutex mu;
    std::deque<Chunk> chunks ABSL_GUARDED_BY(mu);
    size_t bytes ABSL_GUARDED_BY(mu) = 0;
    bool aborted ABSL_GUARDED_BY(mu) = false;
  };
  Queue queues[2];  // [0] up, [1] down

  ~Conn() {
    if (client >= 0) ::close(client);
    if (upstream >= 0) ::close(upstream);
  }
  // Wakes every thread of this connection: sockets shut down, queues aborted. Thread-safe.
  void Abort() {
    {
      absl::MutexLock lock(&fd_mu);
      aborted = true;
      if (client >= 0) ::shutdown(client, SHUT_RDWR);
      if (upstream >= 0) ::shutdown(upstream, SHUT_RDWR);
    }
    for (Queue& q : queues) {
      absl::MutexLock lock(&q.mu);
      q.aborted = true;
    }
  }
};

Shaper::Shaper(ShaperOptions options) : options_(std::move(options)) {}

Shaper::~Shaper() { Stop(); }

absl::Status Shaper::Start() {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(options_.listen_port);
  if (::inet_pton(AF_INET, options_.listen_host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(StrCat("bad listen address '", options_.listen_host, "'"));
  }
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return Errno("socket");
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Errno("bind");
  }
  if (::listen(listen_fd_, 512) != 0) return Errno("listen");
  socklen_t len = sizeof(addr);
  if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Errno("getsockname");
  }
  port_ = ntohs(addr.sin_port);
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) return Errno("eventfd");
  if (options_.aggregate && options_.rate_bits_per_second > 0) {
    double rate = options_.rate_bits_per_second / 8;
    double burst = std::max(16384.0, rate * 0.005);
    shared_up_ = std::make_unique<TokenBucket>(rate, burst, Clock::now());
    shared_down_ = std::make_unique<TokenBucket>(rate, burst, Clock::now());
  }
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void Shaper::Stop() {
  if (stopping_.exchange(true)) return;
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof(one));
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  std::list<Worker> workers;
  {
    absl::MutexLock lock(&mu_);
    workers.swap(workers_);
  }
  for (Worker& w : workers) w.conn->Abort();
  for (Worker& w : workers) w.thread.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
  listen_fd_ = stop_fd_ = -1;
}

ShaperStats Shaper::Stats() const {
  ShaperStats s;
  s.connections = connections_.load();
  s.active = active_.load();
  s.bytes_up = bytes_up_.load();
  s.bytes_down = bytes_down_.load();
  s.upstream_failures = upstream_failures_.load();
  return s;
}

void Shaper::ReapFinished() {
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->conn->done.load()) {
      it->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

void Shaper::AcceptLoop() {
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  while (!stopping_.load()) {
    int n = ::poll(fds, 2, 1000);
    if (n < 0 && errno != EINTR) break;
    if (stopping_.load() || (fds[1].revents & POLLIN)) break;
    {
      absl::MutexLock lock(&mu_);
      ReapFinished();
    }
    if (n <= 0 || !(fds[0].revents & POLLIN)) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    auto conn = std::make_shared<Conn>();
    conn->client = fd;
    conn->accepted = Clock::now();
    connections_.fetch_add(1);
    active_.fetch_add(1);
    absl::MutexLock lock(&mu_);
    workers_.push_back(Worker{conn, std::thread([this, conn] { ServeConn(conn); })});
  }
}

void Shaper::ServeConn(std::shared_ptr<Conn> conn) {
  NoDelay(conn->client);
  absl::StatusOr<int> up = ConnectTcp(options_.upstream_host, options_.upstream_port);
  if (!up.ok()) {
    upstream_failures_.fetch_add(1);
    ::shutdown(conn->client, SHUT_RDWR);
  } else {
    {
      absl::MutexLock lock(&conn->fd_mu);
      conn->upstream = *up;
      if (conn->aborted) ::shutdown(conn->upstream, SHUT_RDWR);  // stopped while connecting
    }
    NoDelay(conn->upstream);
    if (options_.rate_bits_per_second > 0) {
      if (options_.aggregate) {
        conn->up_bucket = shared_up_.get();
        conn->down_bucket = shared_down_.get();
      } else {
        double rate = options_.rate_bits_per_second / 8;
        double burst = std::max(16384.0, rate * 0.005);
        conn->own_up = std::make_unique<TokenBucket>(rate, burst, conn->accepted);
        conn->own_down = std::make_unique<TokenBucket>(rate, burst, conn->accepted);
        conn->up_bucket = conn->own_up.get();
        conn->down_bucket = conn->own_down.get();
      }
    }
    // The handshake: one round trip before the first byte moves.
    std::this_thread::sleep_until(conn->accepted + options_.rtt);
    std::thread down([this, c = conn.get()] { Pump(c, /*up=*/false); });
    Pump(conn.get(), /*up=*/true);
    down.join();
  }
  active_.fetch_sub(1);
  conn->done.store(true);
}

void Shaper::Pump(Conn* conn, bool up) {
  const int src = up ? conn->client : conn->upstream;
  const int dst = up ? conn->upstream : conn->client;
  TokenBucket* bucket = up ? conn->up_bucket : conn->down_bucket;
  std::atomic<uint64_t>& counter = up ? bytes_up_ : bytes_down_;
  const auto delay = options_.rtt / 2;
  size_t chunk = kMaxChunk;
  if (bucket != nullptr) {
    chunk = std::clamp(static_cast<size_t>(bucket->rate() * 0.002), size_t{1460}, kMaxChunk);
  }
  Conn::Queue& q = conn->queues[up ? 0 : 1];

  // With a delay, a writer thread releases queued chunks at their time.
  std::thread writer;
  if (delay.count() > 0) {
    writer = std::thread([&] {
      for (;;) {
        Conn::Chunk c;
        {
          absl::MutexLock lock(&q.mu);
          q.mu.Await(absl::Condition(
              +[](Conn::Queue* q) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                return q->aborted || !q->chunks.empty();
              },
              &q));
          if (q.aborted) return;
          c = std::move(q.chunks.front());
          q.chunks.pop_front();
          q.bytes -= c.data.size();
        }
        std::this_thread::sleep_until(c.release);
        if (c.data.empty()) {
          ::shutdown(dst, SHUT_WR);
          return;
        }
        if (!SendAll(dst, c.data.data(), c.data.size())) {
          conn->Abort();
          return;
        }
        counter.fetch_add(c.data.size());
      }
    });
  }

  std::vector<char> buf(chunk);
  for (;;) {
    ssize_t n = ::recv(src, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      conn->Abort();
      break;
    }
    Clock::time_point paid = Clock::now();
    if (bucket != nullptr && n > 0) {
      paid = bucket->Take(static_cast<uint64_t>(n), paid);
      std::this_thread::sleep_until(paid);
    }
    if (delay.count() == 0) {
      if (n == 0) {
        ::shutdown(dst, SHUT_WR);
        break;
      }
      if (!SendAll(dst, buf.data(), static_cast<size_t>(n))) {
        conn->Abort();
        break;
      }
      counter.fetch_add(static_cast<uint64_t>(n));
      continue;
    }
    absl::MutexLock lock(&q.mu);
    q.mu.Await(absl::Condition(
        +[](Conn::Queue* q) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return q->aborted || q->bytes < kQueueCap;
        },
        &q));
    if (q.aborted) break;
    q.chunks.push_back(Conn::Chunk{paid + delay, std::vector<char>(buf.data(), buf.data() + n)});
    q.bytes += static_cast<size_t>(n);
    if (n == 0) break;
  }
  if (writer.joinable()) writer.join();
}

}  // namespace lazysnap::shaper

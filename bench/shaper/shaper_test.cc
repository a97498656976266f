#include "bench/shaper/shaper.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace lazysnap::shaper {
namespace {

using std::chrono::duration;
using std::chrono::milliseconds;

// A loopback server on a free port. For each connection it runs `handler(fd)` on its own
// thread, then closes fd. Serves until destroyed.
class TestServer {
 public:
  explicit TestServer(std::function<void(int)> handler) : handler_(std::move(handler)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        conns_.emplace_back([this, c] {
          handler_(c);
          ::close(c);
        });
      }
    });
  }
  ~TestServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    for (auto& t : conns_) t.join();
  }
  uint16_t port() const { return port_; }

 private:
  std::function<void(int)> handler_;
  int fd_;
  uint16_t port_;
  std::thread thread_;
  std::vector<std::thread> conns_;
};

int Connect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return fd;
}

bool WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string ReadToEof(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

std::string RandomBytes(size_t n) {
  std::mt19937_64 rng(42);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// Echoes everything back until the client half-closes.
void Echo(int fd) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    if (!WriteAll(fd, std::string(buf, static_cast<size_t>(n)))) break;
  }
  ::shutdown(fd, SHUT_WR);
}

std::unique_ptr<Shaper> StartShaper(uint16_t upstream, double rate_bits, milliseconds rtt,
                                    bool aggregate = false) {
  ShaperOptions o;
  o.upstream_port = upstream;
  o.rate_bits_per_second = rate_bits;
  o.rtt = rtt;
  o.aggregate = aggregate;
  auto s = std::make_unique<Shaper>(o);
  EXPECT_TRUE(s->Start().ok());
  return s;
}

// Sends `data` through the shaper to an echo server; returns what came back.
std::string EchoThrough(uint16_t port, const std::string& data) {
  int fd = Connect(port);
  std::thread writer([&] {
    WriteAll(fd, data);
    ::shutdown(fd, SHUT_WR);
  });
  std::string got = ReadToEof(fd);
  writer.join();
  ::close(fd);
  return got;
}

TEST(ShaperTest, BytesArriveIntactBothWays) {
  TestServer server(Echo);
  const std::string data = RandomBytes(8 << 20);
  for (auto rtt : {milliseconds(0), milliseconds(4)}) {
    auto shaper = StartShaper(server.port(), 0, rtt);
    EXPECT_TRUE(EchoThrough(shaper->port(), data) == data) << "rtt " << rtt.count();
    shaper->Stop();
    ShaperStats s = shaper->Stats();
    EXPECT_EQ(s.connections, 1u);
    EXPECT_EQ(s.active, 0u);
    EXPECT_EQ(s.bytes_up, data.size());
    EXPECT_EQ(s.bytes_down, data.size());
  }
}

TEST(ShaperTest, RateLimitsATransfer) {
  const std::string data = RandomBytes(1 << 20);
  TestServer server([&](int fd) { WriteAll(fd, data); });
  auto shaper = StartShaper(server.port(), 10e6, milliseconds(0));
  auto start = std::chrono::steady_clock::now();
  int fd = Connect(shaper->port());
  std::string got = ReadToEof(fd);
  double secs = duration<double>(std::chrono::steady_clock::now() - start).count();
  ::close(fd);
  EXPECT_TRUE(got == data);
  // 1 MiB at 10 Mbit/s is 0.84 s.
  EXPECT_GT(secs, 0.6);
  EXPECT_LT(secs, 3.0);
}

TEST(ShaperTest, RequestResponseCostsOneRoundTripAfterTheHandshake) {
  TestServer server(Echo);
  auto shaper = StartShaper(server.port(), 0, milliseconds(200));
  auto start = std::chrono::steady_clock::now();
  int fd = Connect(shaper->port());
  ASSERT_TRUE(WriteAll(fd, "ping"));
  char buf[4];
  ASSERT_EQ(::recv(fd, buf, 4, MSG_WAITALL), 4);
  double first = duration<double>(std::chrono::steady_clock::now() - start).count();
  auto second_start = std::chrono::steady_clock::now();
  ASSERT_TRUE(WriteAll(fd, "pong"));
  ASSERT_EQ(::recv(fd, buf, 4, MSG_WAITALL), 4);
  double second = duration<double>(std::chrono::steady_clock::now() - second_start).count();
  ::close(fd);
  // Handshake (one RTT) plus the exchange (one RTT); then one RTT per exchange.
  EXPECT_GT(first, 0.38);
  EXPECT_LT(first, 1.5);
  EXPECT_GT(second, 0.18);
  EXPECT_LT(second, 1.0);
}

TEST(ShaperTest, AggregateRateIsShared) {
  const std::string data = RandomBytes(512 << 10);
  TestServer server([&](int fd) { WriteAll(fd, data); });
  auto run = [&](bool aggregate) {
    auto shaper = StartShaper(server.port(), 10e6, milliseconds(0), aggregate);
    auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> clients;
    for (int i = 0; i < 2; ++i) {
      clients.emplace_back([&] {
        int fd = Connect(shaper->port());
        EXPECT_EQ(ReadToEof(fd).size(), data.size());
        ::close(fd);
      });
    }
    for (auto& t : clients) t.join();
    return duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  // Two 512 KiB transfers: ~0.42 s each at 10 Mbit/s per connection, ~0.84 s shared.
  double per_conn = run(false);
  double shared = run(true);
  EXPECT_GT(per_conn, 0.3);
  EXPECT_LT(per_conn, 0.8 * shared);  // relative: a loaded machine slows both
  EXPECT_GT(shared, 0.65);
  EXPECT_LT(shared, 3.0);
}

TEST(ShaperTest, UpstreamDownClosesTheClientAndCounts) {
  uint16_t dead_port;
  {
    TestServer gone([](int) {});
    dead_port = gone.port();
  }
  auto shaper = StartShaper(dead_port, 0, milliseconds(0));
  int fd = Connect(shaper->port());
  EXPECT_EQ(ReadToEof(fd), "");
  ::close(fd);
  shaper->Stop();
  EXPECT_EQ(shaper->Stats().upstream_failures, 1u);
}

TEST(ShaperTest, StopEndsOpenConnections) {
  TestServer server(Echo);
  auto shaper = StartShaper(server.port(), 1e6, milliseconds(50));
  int fd = Connect(shaper->port());
  ASSERT_TRUE(WriteAll(fd, "x"));
  shaper->Stop();  // must not hang on the open connection
  EXPECT_EQ(shaper->Stats().active, 0u);
  ::close(fd);
}

TEST(TokenBucketTest, PacesAfterTheBurst) {
  Clock::time_point t0;
  TokenBucket b(1000, 100, t0);  // 1000 B/s, burst 100 B
  EXPECT_EQ(b.Take(100, t0), t0);
  EXPECT_EQ(b.Take(500, t0), t0 + milliseconds(500));
  // Still in debt at 0.2 s: queued behind it.
  EXPECT_EQ(b.Take(100, t0 + milliseconds(200)), t0 + milliseconds(600));
  // Idle for long: refills only up to the burst.
  EXPECT_EQ(b.Take(100, t0 + std::chrono::seconds(10)), t0 + std::chrono::seconds(10));
  EXPECT_EQ(b.Take(100, t0 + std::chrono::seconds(10)),
            t0 + std::chrono::seconds(10) + milliseconds(100));
}

TEST(ParseTest, RatesAndDurations) {
  EXPECT_DOUBLE_EQ(*ParseRate("100mbit"), 100e6);
  EXPECT_DOUBLE_EQ(*ParseRate("1Gbit"), 1e9);
  EXPECT_DOUBLE_EQ(*ParseRate("10mbps"), 80e6);
  EXPECT_DOUBLE_EQ(*ParseRate("unlimited"), 0);
  EXPECT_DOUBLE_EQ(*ParseRate("2500"), 2500);
  EXPECT_FALSE(ParseRate("fast").ok());
  EXPECT_FALSE(ParseRate("-1mbit").ok());
  EXPECT_EQ(*ParseDuration("20ms"), std::chrono::microseconds(20000));
  EXPECT_EQ(*ParseDuration("0.5s"), std::chrono::microseconds(500000));
  EXPECT_EQ(*ParseDuration("150us"), std::chrono::microseconds(150));
  EXPECT_EQ(*ParseDuration("2"), std::chrono::microseconds(2000));
  EXPECT_FALSE(ParseDuration("soon").ok());
}

}  // namespace
}  // namespace lazysnap::shaper

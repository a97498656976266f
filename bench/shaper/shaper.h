// lazysnap-shaper: a TCP proxy on loopback that shapes the link to an upstream server, for
// benchmarks on a network slower and longer than loopback (netem is not available here).
// Each direction of each connection is limited by a token bucket (per connection, or one
// bucket per direction shared by every connection) and delayed by rtt/2: bytes read at t are
// written at t + rtt/2 (after the rate limit), so a request/response exchange costs one RTT.
// A new connection waits one RTT before its first byte is forwarded (the TCP handshake).
// It counts connections and bytes in both directions.
#ifndef LAZYSNAP_BENCH_SHAPER_SHAPER_H_
#define LAZYSNAP_BENCH_SHAPER_SHAPER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "bench/shaper/token_bucket.h"

namespace lazysnap::shaper {

struct ShaperOptions {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 0;  // 0: any free port
  std::string upstream_host = "127.0.0.1";
  uint16_t upstream_port = 0;
  double rate_bits_per_second = 0;  // 0: unlimited
  bool aggregate = false;           // one bucket per direction for all connections
  std::chrono::microseconds rtt{0};
};

struct ShaperStats {
  uint64_t connections = 0;         // accepted
  uint64_t active = 0;              // open now
  uint64_t bytes_up = 0;            // client -> upstream, forwarded
  uint64_t bytes_down = 0;          // upstream -> client, forwarded
  uint64_t upstream_failures = 0;   // connections whose upstream connect failed
};

// "connections=N active=N bytes_up=N bytes_down=N upstream_failures=N".
std::string FormatStats(const ShaperStats& s);
// {"connections":N,...} on one line.
std::string FormatStatsJson(const ShaperStats& s);

// Parses "100mbit", "1gbit", "500kbit", "12345" (bit/s), "10mbps" (bytes/s: MB/s),
// "0"/"unlimited". Returns bits per second.
absl::StatusOr<double> ParseRate(std::string_view text);
// Parses "20ms", "0.5s", "150us", "20" (milliseconds).
absl::StatusOr<std::chrono::microseconds> ParseDuration(std::string_view text);

class Shaper {
 public:
  explicit Shaper(ShaperOptions options);
  // Stops and joins everything (as Stop()).
  ~Shaper();
  Shaper(const Shaper&) = delete;
  Shaper& operator=(const Shaper&) = delete;

  // Binds and listens, then serves on a background thread. Call once.
  absl::Status Start();
  // The bound port (after Start).
  uint16_t port() const { return port_; }
  // Closes the listener and every connection; joins all threads. Idempotent.
  void Stop();
  // A consistent-enough snapshot (each counter read atomically). Thread-safe.
  ShaperStats Stats() const;

 private:
  struct Conn;
  void AcceptLoop();
  void ServeConn(std::shared_ptr<Conn> conn);
  void Pump(Conn* conn, bool up);
  void ReapFinished() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ShaperOptions options_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: wakes the accept loop
  uint16_t port_ = 0;
  std::thread accept_thread_;
  std::unique_ptr<TokenBucket> shared_up_;    // aggregate mode only
  std::unique_ptr<TokenBucket> shared_down_;  // aggregate mode only

  std::atomic<uint64_t> connections_{0}, active_{0}, bytes_up_{0}, bytes_down_{0},
      upstream_failures_{0};
  std::atomic<bool> stopping_{false};

  absl::Mutex mu_;
  struct Worker {
    std::shared_ptr<Conn> conn;
    std::thread thread;
  };
  std::list<Worker> workers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lazysnap::shaper

#endif  // LAZYSNAP_BENCH_SHAPER_SHAPER_H_

// lazysnap-shaper: a shaping TCP proxy for benchmarks (see shaper.h).
//   lazysnap-shaper --upstream 127.0.0.1:5000 --rate 100mbit --rtt 20ms [--aggregate]
//                   [--listen 127.0.0.1:0] [--stats-file PATH]
// Prints the port it listens on (one line on stdout), then serves until SIGINT/SIGTERM. On
// SIGUSR1 and at exit it prints a stats line to stderr; with --stats-file it also keeps PATH
// up to date (JSON, rewritten atomically every 100 ms while counters change, and at exit).
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>

#include "bench/shaper/shaper.h"
#include "base/strings.h"

namespace lazysnap::shaper {
namespace {

bool SplitHostPort(const std::string& s, std::string* host, uint16_t* port) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  *host = s.substr(0, colon);
  if (host->empty()) *host = "127.0.0.1";
  try {
    int p = std::stoi(s.substr(colon + 1));
    if (p < 0 || p > 65535) return false;
    *port = static_cast<uint16_t>(p);
  } catch (...) {
    return false;
  }
  return true;
}

void WriteStatsFile(const std::string& path, const ShaperStats& s) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << FormatStatsJson(s) << "\n";
  }
  std::rename(tmp.c_str(), path.c_str());
}

int Main(int argc, char** argv) {
  CLI::App app("lazysnap-shaper: a TCP proxy that limits bandwidth and adds round-trip time",
               "lazysnap-shaper");
  std::string listen = "127.0.0.1:0", upstream, rate = "unlimited", rtt = "0", stats_file;
  bool aggregate = false;
  app.add_option("--listen", listen, "HOST:PORT to listen on (port 0: any)")->capture_default_str();
  app.add_option("--upstream", upstream, "HOST:PORT to forward to")->required();
  app.add_option("--rate", rate, "bandwidth each way: 100mbit, 1gbit, 10mbps (MB/s), unlimited")
      ->capture_default_str();
  app.add_option("--rtt", rtt, "round-trip time added: 20ms, 0.5s, 150us")->capture_default_str();
  app.add_flag("--aggregate", aggregate,
               "the rate is shared by all connections (default: each connection gets it)");
  app.add_option("--stats-file", stats_file, "keep a JSON stats file up to date");
  CLI11_PARSE(app, argc, argv);

  ShaperOptions opts;
  if (!SplitHostPort(listen, &opts.listen_host, &opts.listen_port) ||
      !SplitHostPort(upstream, &opts.upstream_host, &opts.upstream_port)) {
    std::fprintf(stderr, "lazysnap-shaper: bad HOST:PORT\n");
    return 2;
  }
  absl::StatusOr<double> r = ParseRate(rate);
  absl::StatusOr<std::chrono::microseconds> d = ParseDuration(rtt);
  if (!r.ok() || !d.ok()) {
    std::fprintf(stderr, "lazysnap-shaper: %s\n",
                 std::string((!r.ok() ? r.status() : d.status()).message()).c_str());
    return 2;
  }
  opts.rate_bits_per_second = *r;
  opts.rtt = *d;
  opts.aggregate = aggregate;

  // Signals are taken synchronously by this thread; every other thread has them blocked.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Shaper shaper(opts);
  absl::Status st = shaper.Start();
  if (!st.ok()) {
    std::fprintf(stderr, "lazysnap-shaper: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  std::printf("%u\n", shaper.port());
  std::fflush(stdout);
  std::fprintf(stderr, "lazysnap-shaper: 127.0.0.1:%u -> %s, rate %s, rtt %s%s\n", shaper.port(),
               upstream.c_str(), rate.c_str(), rtt.c_str(), aggregate ? ", aggregate" : "");

  std::string last;
  if (!stats_file.empty()) WriteStatsFile(stats_file, shaper.Stats());
  timespec tick{0, 100 * 1000 * 1000};
  for (;;) {
    int sig = sigtimedwait(&set, nullptr, &tick);
    ShaperStats s = shaper.Stats();
    if (!stats_file.empty()) {
      std::string now = FormatStatsJson(s);
      if (now != last) {
        WriteStatsFile(stats_file, s);
        last = now;
      }
    }
    if (sig == SIGUSR1) {
      std::fprintf(stderr, "lazysnap-shaper: %s\n", FormatStats(s).c_str());
    } else if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
      break;
    }
  }
  shaper.Stop();
  ShaperStats s = shaper.Stats();
  if (!stats_file.empty()) WriteStatsFile(stats_file, s);
  std::fprintf(stderr, "lazysnap-shaper: %s\n", FormatStats(s).c_str());
  return 0;
}

}  // namespace
}  // namespace lazysnap::shaper

int main(int argc, char** argv) { return lazysnap::shaper::Main(argc, argv); }

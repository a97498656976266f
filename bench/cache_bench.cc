// cache_bench: read throughput of a fully cached layer (LayerCache::ReadFile) against pread(2)
// of a plain file holding the same bytes, for random and sequential reads; plus the cold fill
// rate (fetch from an in-memory blob, verify with SHA-256, write). Prints figures.
//
//   cache_bench [total_MiB=256] [chunk_KiB=256] [seconds_per_case=1]
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>

#include "absl/time/clock.h"
#include "cache/layer_cache.h"
#include "cache/testing.h"

namespace lazysnap {
namespace {

using cache_testing::MakeTestLayer;
using cache_testing::TestLayer;

struct Result {
  double mb_per_s;
  double us_per_op;
};

// Runs `op(thread, rng)` (returns bytes read) on `threads` threads for `seconds`.
template <typename Op>
Result Run(int threads, double seconds, Op op) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bytes{0}, ops{0};
  std::vector<std::thread> ts;
  absl::Time start = absl::Now();
  for (int t = 0; t < threads; t++) {
    ts.emplace_back([&, t] {
      std::mt19937_64 rng(t + 1);
      uint64_t b = 0, n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        b += op(t, rng);
        n++;
      }
      bytes += b;
      ops += n;
    });
  }
  absl::SleepFor(absl::Seconds(seconds));
  stop = true;
  for (auto& t : ts) t.join();
  double secs = absl::ToDoubleSeconds(absl::Now() - start);
  return {bytes / secs / 1e6, secs * 1e6 * threads / std::max<uint64_t>(1, ops)};
}

int Main(int argc, char** argv) {
  uint64_t total_mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 256;
  uint32_t chunk_kib = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 256;
  double seconds = argc > 3 ? std::strtod(argv[3], nullptr) : 1.0;
  const uint64_t file_size = 4 << 20;
  std::vector<uint64_t> sizes(std::max<uint64_t>(1, (total_mib << 20) / file_size), file_size);
  TestLayer layer = MakeTestLayer(sizes, chunk_kib << 10);
  cache_testing::TempDir dir;
  std::printf("layer: %zu files x %llu MiB, %zu chunks of %u KiB, dir %s\n", sizes.size(),
              static_cast<unsigned long long>(file_size >> 20), layer.chunks.size(), chunk_kib,
              dir.path().c_str());

  auto source = std::make_shared<MemoryBlobSource>(layer.blob);
  auto cache = LayerCache::Open(dir.path(), Sha256::Of("bench"), layer.chunks, source,
                                std::make_shared<cache_testing::PlainChunkDecoder>());
  if (!cache.ok()) {
    std::fprintf(stderr, "open: %s\n", cache.status().ToString().c_str());
    return 1;
  }
  LayerCache& c = **cache;
  std::vector<uint32_t> all(layer.chunks.size());
  for (uint32_t i = 0; i < all.size(); i++) all[i] = i;
  absl::Time t0 = absl::Now();
  if (auto s = c.EnsureChunks(all); !s.ok()) {
    std::fprintf(stderr, "fill: %s\n", s.ToString().c_str());
    return 1;
  }
  if (auto s = c.Flush(); !s.ok()) std::fprintf(stderr, "flush: %s\n", s.ToString().c_str());
  double fill = absl::ToDoubleSeconds(absl::Now() - t0);
  auto st = c.stats();
  std::printf(
      "cold fill (memory blob, sha256 verify, write, fdatasync): %.0f MB/s, %llu requests\n",
      st.total_bytes / fill / 1e6, static_cast<unsigned long long>(st.requests));

  // The plain file: the same bytes, file after file, as the data file lays them out.
  std::string plain_path = dir.path() + "/plain";
  int pfd = ::open(plain_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  for (const std::string& data : layer.contents) {
    if (::write(pfd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) return 1;
  }
  ::fsync(pfd);
  std::vector<uint64_t> file_start(sizes.size());
  for (size_t f = 0; f < sizes.size(); f++) file_start[f] = f * file_size;
  layer.blob.clear();

  const uint64_t kReads[] = {4 << 10, 128 << 10};
  for (int threads : {1, 2}) {
    for (uint64_t n : kReads) {
      for (bool random : {true, false}) {
        std::vector<std::string> bufs(threads, std::string(n, '\0'));
        std::vector<uint64_t> pos(threads, 0);
        auto pick = [&](int t, std::mt19937_64& rng, size_t* f, uint64_t* off) {
          if (random) {
            *f = rng() % sizes.size();
            *off = (rng() % (file_size / n)) * n;
          } else {
            uint64_t p = pos[t];
            pos[t] = (p + n) % (sizes.size() * file_size);
            *f = p / file_size;
            *off = p % file_size;
          }
        };
        Result rc = Run(threads, seconds, [&](int t, std::mt19937_64& rng) -> uint64_t {
          size_t f;
          uint64_t off;
          pick(t, rng, &f, &off);
          auto got = c.ReadFile(layer.files[f], off, absl::MakeSpan(bufs[t]));
          return got.ok() ? *got : 0;
        });
        std::fill(pos.begin(), pos.end(), 0);
        Result rp = Run(threads, seconds, [&](int t, std::mt19937_64& rng) -> uint64_t {
          size_t f;
          uint64_t off;
          pick(t, rng, &f, &off);
          ssize_t got = ::pread(pfd, bufs[t].data(), n, file_start[f] + off);
          return got > 0 ? got : 0;
        });
        std::printf(
            "%-10s %4llu KiB reads, %d thread(s): cache %7.0f MB/s (%6.2f us/op)   "
            "pread %7.0f MB/s (%6.2f us/op)   cache/pread %.2f\n",
            random ? "random" : "sequential", static_cast<unsigned long long>(n >> 10), threads,
            rc.mb_per_s, rc.us_per_op, rp.mb_per_s, rp.us_per_op, rc.mb_per_s / rp.mb_per_s);
      }
    }
  }
  ::close(pfd);
  return 0;
}

}  // namespace
}  // namespace lazysnap

int main(int argc, char** argv) { return lazysnap::Main(argc, argv); }

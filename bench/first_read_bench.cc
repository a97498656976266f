// first_read_bench: the first run of a command (python3 -c pass) chrooted in a lazily mounted
// layer (LayerFs over a fresh LayerCache), the blob read through a link of a given bandwidth
// and round-trip time (a rate-limited BlobSource over the local blob file: one shared link,
// every request waits one RTT). For each coalescing gap (LayerCacheOptions::max_gap_bytes) and
// mount readahead (LayerFsOptions::read_ahead_kb) it prints the run time, the requests, the
// bytes fetched, and the compressed bytes of the chunks fetched: the ratio of the two is what
// coalescing costs over the bytes that hold the data read (target: within 1.2x).
// Needs root (FUSE, chroot). Not a test. bench/first_read_bench.sh runs it on the python image.
//
//   first_read_bench --blob=FILE --dir=DIR [--rate_mbit=100] [--rtt_ms=0]
//                    [--gaps_kib=0,32,128] [--readahead_kib=128,1024] [--repeat=1]
//                    [--cmd=python3 -c pass]
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "base/blob_source.h"
#include "base/strings.h"
#include "cache/access_log.h"
#include "cache/cache_manager.h"
#include "format/layer.h"
#include "fusefs/layer_fs.h"

using namespace lazysnap;

namespace {

std::string Flag(int argc, char** argv, const char* name, const std::string& def) {
  std::string prefix = StrCat("--", name, "=");
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) return argv[i] + prefix.size();
  }
  return def;
}

std::vector<long> List(const std::string& s) {
  std::vector<long> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t comma = s.find(',', pos);
    out.push_back(std::atol(s.substr(pos, comma - pos).c_str()));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "first_read_bench: %s\n", what.c_str());
  std::exit(1);
}

// One link shared by every request: a request waits one RTT, then its bytes go through the
// link after those of the requests before it, at `bytes_per_sec`.
class ShapedBlobSource : public BlobSource {
 public:
  ShapedBlobSource(std::shared_ptr<BlobSource> inner, double bytes_per_sec, absl::Duration rtt)
      : inner_(std::move(inner)), rate_(bytes_per_sec), rtt_(rtt) {}
  uint64_t Size() const override { return inner_->Size(); }
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override {
    absl::SleepFor(rtt_);
    absl::Time done;
    {
      absl::MutexLock l(&mu_);
      absl::Time start = std::max(absl::Now(), link_free_);
      link_free_ = start + (rate_ > 0 ? absl::Seconds(buf.size() / rate_) : absl::ZeroDuration());
      done = link_free_;
    }
    absl::SleepFor(done - absl::Now());
    return inner_->ReadAt(offset, buf);
  }

 private:
  const std::shared_ptr<BlobSource> inner_;
  const double rate_;
  const absl::Duration rtt_;
  absl::Mutex mu_;
  absl::Time link_free_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// Runs `cmd` (through sh) chrooted at `root`; seconds, or -1 when it failed.
double RunChrooted(const std::string& root, const std::string& cmd) {
  absl::Time start = absl::Now();
  pid_t pid = fork();
  if (pid == 0) {
    if (chroot(root.c_str()) != 0 || chdir("/") != 0) _exit(126);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  double secs = absl::ToDoubleSeconds(absl::Now() - start);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? secs : -1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string blob_path = Flag(argc, argv, "blob", "");
  const std::string dir = Flag(argc, argv, "dir", "");
  const double rate_mbit = std::atof(Flag(argc, argv, "rate_mbit", "100").c_str());
  const long rtt_ms = std::atol(Flag(argc, argv, "rtt_ms", "0").c_str());
  const std::vector<long> gaps = List(Flag(argc, argv, "gaps_kib", "0,32,128"));
  const std::vector<long> readaheads = List(Flag(argc, argv, "readahead_kib", "128,1024"));
  const int repeat = std::max(1, std::atoi(Flag(argc, argv, "repeat", "1").c_str()));
  const std::string cmd = Flag(argc, argv, "cmd", "python3 -c pass");
  if (blob_path.empty() || dir.empty()) Die("usage: first_read_bench --blob=FILE --dir=DIR ...");
  if (getuid() != 0) Die("needs root (FUSE, chroot)");

  auto file = FileBlobSource::Open(blob_path);
  if (!file.ok()) Die(file.status().ToString());
  std::shared_ptr<BlobSource> local = std::move(*file);
  auto opened = OpenLayer(*local, {});
  if (!opened.ok()) Die(opened.status().ToString());
  std::string().swap((*opened)->toc_json);
  std::shared_ptr<const SeekableLayer> layer = std::move(*opened);
  const auto shaped = std::make_shared<ShapedBlobSource>(local, rate_mbit * 1e6 / 8,
                                                         absl::Milliseconds(rtt_ms));
  std::printf("layer: %llu bytes, %zu chunks; link %.0f Mbit/s, RTT %ld ms; command: %s\n",
              static_cast<unsigned long long>(local->Size()), layer->index.chunks().size(),
              rate_mbit, rtt_ms, cmd.c_str());
  std::printf("%8s %10s %8s %9s %12s %8s %13s %7s %12s\n", "gap KiB", "readahead", "time s",
              "requests", "fetched B", "chunks", "chunk bytes B", "ratio", "FUSE read B");
  std::printf("(chunks: read / fetched; chunk bytes: compressed bytes of the chunks read; "
              "ratio: fetched / chunk bytes; FUSE read B: uncompressed bytes the kernel read)\n");
  std::fflush(stdout);
  const std::string mnt = StrCat(dir, "/mnt");
  std::filesystem::create_directories(mnt);
  int run = 0;
  for (long ra : readaheads) {
    for (long gap : gaps) {
      for (int r = 0; r < repeat; ++r) {
        const std::string cache_dir = StrCat(dir, "/cache-", run++);
        auto manager = CacheManager::Open(cache_dir, {});
        if (!manager.ok()) Die(manager.status().ToString());
        LayerCacheOptions cache_options;
        cache_options.max_gap_bytes = static_cast<uint64_t>(gap) << 10;
        auto cache = (*manager)->OpenLayer(layer->toc_digest, layer, shaped, cache_options);
        if (!cache.ok()) Die(cache.status().ToString());
        const uint32_t nchunks = static_cast<uint32_t>(layer->index.chunks().size());
        auto log = std::make_shared<AccessLog>(nchunks, nchunks, absl::InfiniteDuration());
        (*cache)->SetAccessLog(log);
        LayerFsOptions fs_options;
        fs_options.read_ahead_kb = static_cast<uint32_t>(ra);
        fs_options.fsname = "lazysnap-first-read-bench";
        auto fs = LayerFs::Mount(layer, *cache, mnt, fs_options);
        if (!fs.ok()) Die(fs.status().ToString());
        double secs = RunChrooted(mnt, cmd);
        LayerCacheStats s = (*cache)->stats();
        // The chunks reads asked for (the command's, and the kernel's readahead), not those
        // fetched only because they lay in a coalescing gap.
        uint64_t chunk_bytes = 0, touched = 0;
        for (const AccessLog::Access& a : log->Snapshot()) {
          chunk_bytes += layer->index.chunks()[a.chunk].compressed_size;
          ++touched;
        }
        const LayerFsStats fss = (*fs)->stats();
        absl::Status u = (*fs)->Unmount();
        if (!u.ok()) Die(u.ToString());
        fs->reset();
        cache->reset();
        manager->reset();
        std::filesystem::remove_all(cache_dir);
        if (secs < 0) Die(StrCat("`", cmd, "` failed in the mounted layer"));
        std::printf("%8ld %10s %8.3f %9llu %12llu %8s %13llu %7.3f %12llu\n", gap,
                    StrCat(ra, " KiB").c_str(), secs, static_cast<unsigned long long>(s.requests),
                    static_cast<unsigned long long>(s.bytes_fetched),
                    StrCat(touched, "/", s.chunks_fetched).c_str(),
                    static_cast<unsigned long long>(chunk_bytes),
                    chunk_bytes ? static_cast<double>(s.bytes_fetched) / chunk_bytes : 0.0,
                    static_cast<unsigned long long>(fss.read_bytes));
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

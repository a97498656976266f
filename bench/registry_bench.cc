// registry_bench: many small parallel range reads of one blob from a docker-registry on
// loopback, through lazysnap's connection pool (RegistryBlobSource), against the same reads
// done with the curl command (one process per read, and one `curl --parallel` process).
// Prints figures; not a test.
//
//   registry_bench [--blob_mib=64] [--reads=2000] [--read_kib=16] [--threads=8]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "base/stream.h"
#include "base/strings.h"
#include "registry/blob_reader.h"
#include "registry/client.h"
#include "registry/curl_transport.h"
#include "registry/testenv.h"

using namespace lazysnap;
using namespace lazysnap::registry;

namespace {

long Flag(int argc, char** argv, const char* name, long def) {
  std::string prefix = StrCat("--", name, "=");
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      return std::atol(argv[i] + prefix.size());
    }
  }
  return def;
}

// Prints one line of figures and resets `bad` (failed or wrong reads of that run).
void Report(const char* what, absl::Duration took, size_t reads, size_t bytes, uint64_t requests,
            std::atomic<int>& bad, int& total_bad) {
  double s = absl::ToDoubleSeconds(took);
  std::printf("%-34s %8.3f s %9.0f reads/s %8.1f MiB/s %7llu requests %4d errors\n", what, s,
              reads / s, bytes / s / (1 << 20), static_cast<unsigned long long>(requests),
              bad.load());
  total_bad += bad.exchange(0);
}

// Runs fn(i) for i in [0, n) on `threads` threads.
template <typename Fn>
absl::Duration Parallel(size_t n, int threads, Fn fn) {
  std::atomic<size_t> next{0};
  absl::Time start = absl::Now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i; (i = next++) < n;) fn(i);
    });
  }
  for (auto& th : pool) th.join();
  return absl::Now() - start;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t blob_size = static_cast<size_t>(Flag(argc, argv, "blob_mib", 64)) << 20;
  const size_t reads = static_cast<size_t>(Flag(argc, argv, "reads", 2000));
  const size_t read_size = static_cast<size_t>(Flag(argc, argv, "read_kib", 16)) << 10;
  const int threads = static_cast<int>(Flag(argc, argv, "threads", 8));
  if (!testing::RegistryProcess::Available()) {
    std::fprintf(stderr, "registry_bench: needs %s\n", testing::RegistryProcess::kBinary);
    return 1;
  }
  auto dir = std::move(testing::TempDir::Create()).value();
  auto reg = testing::RegistryProcess::Start({}, dir->path());
  if (!reg.ok()) {
    std::fprintf(stderr, "registry_bench: %s\n", reg.status().ToString().c_str());
    return 1;
  }
  auto transport = std::move(CurlTransport::Create()).value();
  RegistryClient client(transport.get(), nullptr, ClientOptions());
  Reference ref = *Reference::Parse(StrCat((*reg)->host(), "/bench/blob:1"));
  std::string blob(blob_size, '\0');
  std::mt19937_64 rng(42);
  for (size_t i = 0; i + 8 <= blob.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(&blob[i], &v, 8);
  }
  auto d = client.PushBlob(ref, blob);
  if (!d.ok()) {
    std::fprintf(stderr, "registry_bench: push: %s\n", d.status().ToString().c_str());
    return 1;
  }
  std::vector<uint64_t> offsets(reads);
  for (auto& o : offsets) o = rng() % (blob_size - read_size);
  std::printf(
      "blob %zu MiB on docker-registry (loopback, HTTP/1.1), %zu reads of %zu KiB at "
      "random offsets, %d threads\n",
      blob_size >> 20, reads, read_size >> 10, threads);

  // 1. lazysnap: ReadAt over the shared pool.
  auto src = std::move(client.OpenBlob(ref, d->digest, blob_size)).value();
  std::atomic<int> bad{0};
  int total_bad = 0;
  absl::Duration took = Parallel(reads, threads, [&](size_t i) {
    std::string buf(read_size, '\0');
    if (!src->ReadAt(offsets[i], absl::MakeSpan(buf)).ok() ||
        std::memcmp(buf.data(), blob.data() + offsets[i], read_size) != 0) {
      ++bad;
    }
  });
  Report("lazysnap pool, ReadAt", took, reads, reads * read_size, src->requests(), bad, total_bad);

  // 2. lazysnap: the same reads as multi-range requests of 16 ranges.
  const size_t batch = 16;
  uint64_t before = src->requests();
  took = Parallel((reads + batch - 1) / batch, threads, [&](size_t b) {
    size_t first = b * batch, n = std::min(batch, reads - first);
    std::vector<std::string> bufs(n, std::string(read_size, '\0'));
    std::vector<RangeRead> rr;
    for (size_t k = 0; k < n; ++k) rr.push_back({offsets[first + k], absl::MakeSpan(bufs[k])});
    if (!src->ReadRanges(rr).ok()) ++bad;
    for (size_t k = 0; k < n; ++k) {
      if (std::memcmp(bufs[k].data(), blob.data() + offsets[first + k], read_size) != 0) ++bad;
    }
  });
  Report("lazysnap pool, ReadRanges x16", took, reads, reads * read_size, src->requests() - before,
         bad, total_bad);

  const std::string url =
      StrCat("http://", (*reg)->host(), "/v2/", ref.repository, "/blobs/", d->digest.ToString());
  // 3. curl: one process per read, `threads` at a time.
  took = Parallel(reads, threads, [&](size_t i) {
    std::string range = StrCat(offsets[i], "-", offsets[i] + read_size - 1);
    if (!testing::RunCommand({"curl", "-sf", "-o", "/dev/null", "-r", range, url}).ok()) ++bad;
  });
  Report("curl, one process per read", took, reads, reads * read_size, reads, bad, total_bad);

  // 4. curl: one process, --parallel with connection reuse.
  std::string config;
  for (uint64_t o : offsets) {  // "next" separates the per-URL options (none after the last)
    StrAppend(&config, config.empty() ? "" : "next\n", "url = \"", url, "\"\nrange = \"", o, "-",
              o + read_size - 1, "\"\noutput = \"/dev/null\"\n");
  }
  std::string cfg_path = dir->path() + "/curl.cfg";
  (void)WriteFileAtomically(cfg_path, config);
  absl::Time start = absl::Now();
  if (!testing::RunCommand(
           {"curl", "-sf", "--parallel", "--parallel-max", std::to_string(threads), "-K", cfg_path})
           .ok()) {
    ++bad;
  }
  Report("curl --parallel, one process", absl::Now() - start, reads, reads * read_size, reads, bad,
         total_bad);
  return total_bad == 0 ? 0 : 1;
}

// Converts a layer file at several chunk sizes, thread counts and levels and prints speed
// and output size. Usage:
//   convert_bench LAYER [--format estargz|zstd] [--chunks 262144,1048576,4194304]
//                       [--threads 1,2] [--levels 0] [--out FILE] [--prioritize PATH]...
// (prioritized files make the converter read the whole input before compressing)
// Output goes to a null sink (or FILE, to inspect it). in_MB/s is uncompressed tar bytes per
// second of wall time, spooling included; MB/cpu_s per second of CPU time (user + system,
// all threads), the figure to compare on a loaded machine.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "base/blob_source.h"
#include "base/stream.h"
#include "base/strings.h"
#include "format/convert.h"
#include "format/layer.h"

namespace {

double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

class NullOutput : public lazysnap::OutputStream {
 public:
  absl::Status Write(std::string_view data) override { return absl::OkStatus(); }
};

std::vector<int64_t> ParseList(const char* s) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(s, ',')) {
    int64_t v;
    if (absl::SimpleAtoi(part, &v)) out.push_back(v);
  }
  return out;
}

// Lazy-loading view of a written layer: chunk count, TOC size, and the compressed bytes a
// reader fetches to serve one 4 KiB read at a uniformly random byte of file data (the whole
// chunk holding it).
void Analyze(const std::string& path, const lazysnap::ConvertResult& r) {
  auto blob = lazysnap::FileBlobSource::Open(path);
  if (!blob.ok()) return;
  lazysnap::OpenOptions o;
  o.annotations = r.annotations;
  auto layer = lazysnap::OpenLayer(**blob, o);
  if (!layer.ok()) {
    std::printf("  analyze: %s\n", layer.status().ToString().c_str());
    return;
  }
  double total = 0, weighted = 0;
  for (const auto& c : (*layer)->index.chunks()) {
    total += c.size;
    weighted += static_cast<double>(c.size) * c.compressed_size;
  }
  std::printf("  chunks %zu  toc_json_bytes %zu  blob_after_toc %llu  fetch_per_random_4k_read %.0f\n",
              (*layer)->index.chunks().size(), (*layer)->toc_json.size(),
              static_cast<unsigned long long>(r.blob_size - (*layer)->index.toc_offset()),
              total > 0 ? weighted / total : 0.0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s LAYER [--format estargz|zstd] [--chunks N,..] "
                 "[--threads N,..] [--levels N,..] [--out FILE]\n", argv[0]);
    return 2;
  }
  std::string path = argv[1];
  lazysnap::LayerFormat format = lazysnap::LayerFormat::kEstargz;
  std::vector<int64_t> chunks = {256 << 10, 1 << 20, 4 << 20};
  std::vector<int64_t> threads = {0};
  std::vector<int64_t> levels = {0};
  std::string out_path;
  std::vector<std::string> prioritized;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--format") {
      format = std::strcmp(argv[i + 1], "zstd") == 0 ? lazysnap::LayerFormat::kZstdChunked
                                                     : lazysnap::LayerFormat::kEstargz;
    } else if (flag == "--chunks") {
      chunks = ParseList(argv[i + 1]);
    } else if (flag == "--threads") {
      threads = ParseList(argv[i + 1]);
    } else if (flag == "--levels") {
      levels = ParseList(argv[i + 1]);
    } else if (flag == "--out") {
      out_path = argv[i + 1];
    } else if (flag == "--prioritize") {
      prioritized.push_back(argv[i + 1]);
    }
  }
  std::printf("%-8s %10s %7s %5s %8s %8s %9s %12s %12s\n", "format", "chunk", "threads",
              "level", "wall_s", "cpu_s", "in_MB/s", "MB/cpu_s", "out_bytes");
  for (int64_t level : levels) {
    for (int64_t t : threads) {
      for (int64_t c : chunks) {
        auto in = lazysnap::FileInputStream::Open(path);
        if (!in.ok()) {
          std::fprintf(stderr, "%s\n", in.status().ToString().c_str());
          return 1;
        }
        lazysnap::ConvertOptions o;
        o.format = format;
        o.chunk_size = static_cast<uint32_t>(c);
        o.threads = static_cast<int>(t);
        o.level = static_cast<int>(level);
        o.prioritized_files = prioritized;
        NullOutput null_out;
        std::unique_ptr<lazysnap::FileOutputStream> file_out;
        lazysnap::OutputStream* out = &null_out;
        if (!out_path.empty()) {
          auto f = lazysnap::FileOutputStream::Create(out_path);
          if (!f.ok()) return 1;
          file_out = *std::move(f);
          out = file_out.get();
        }
        auto start = std::chrono::steady_clock::now();
        double cpu_start = CpuSeconds();
        auto r = lazysnap::ConvertLayer(**in, *out, o);
        double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        double cpu = CpuSeconds() - cpu_start;
        if (!r.ok()) {
          std::fprintf(stderr, "convert: %s\n", r.status().ToString().c_str());
          return 1;
        }
        if (file_out) {
          (void)file_out->Close();
          file_out.reset();
        }
        std::printf("%-8s %10lld %7lld %5lld %8.2f %8.2f %9.1f %12.1f %12llu\n",
                    format == lazysnap::LayerFormat::kEstargz ? "estargz" : "zstd",
                    static_cast<long long>(c), static_cast<long long>(t),
                    static_cast<long long>(level), secs, cpu, r->uncompressed_size / 1e6 / secs,
                    r->uncompressed_size / 1e6 / cpu,
                    static_cast<unsigned long long>(r->blob_size));
        if (!out_path.empty()) Analyze(out_path, *r);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

// Converts a layer file at several chunk sizes, thread counts and levels and prints speed
// and output size. Usage:
//   convert_bench LAYER [--format estargz|zstd] [--chunks 262144,1048576,4194304]
//                       [--threads 1,2] [--levels 0] [--out FILE]
// Output goes to a counting sink (or FILE for the last run, to inspect it). Input MB/s is
// uncompressed tar bytes per second of wall time, spooling included.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "base/stream.h"
#include "base/strings.h"
#include "format/convert.h"

namespace {

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
    }
  }
  std::printf("%-8s %10s %7s %5s %10s %12s %12s\n", "format", "chunk", "threads", "level",
              "seconds", "in_MB/s", "out_bytes");
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
        auto r = lazysnap::ConvertLayer(**in, *out, o);
        double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (!r.ok()) {
          std::fprintf(stderr, "convert: %s\n", r.status().ToString().c_str());
          return 1;
        }
        if (file_out) (void)file_out->Close();
        std::printf("%-8s %10lld %7lld %5lld %10.2f %12.1f %12llu\n",
                    format == lazysnap::LayerFormat::kEstargz ? "estargz" : "zstd",
                    static_cast<long long>(c), static_cast<long long>(t),
                    static_cast<long long>(level), secs, r->uncompressed_size / 1e6 / secs,
                    static_cast<unsigned long long>(r->blob_size));
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

// Benchmark: TOC JSON parsing speed and LayerIndex memory. Prints figures, asserts nothing.
//
//   toc_bench [ENTRIES]                    a generated eStargz TOC (default 150000 entries)
//   toc_bench PATH/stargz.index.json [zstd] a real TOC (zstd: zstd:chunked dialect)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include <simdjson.h>

#include "base/digest.h"
#include "base/stream.h"
#include "base/strings.h"
#include "format/toc.h"

namespace lazysnap {
namespace {

// A TOC shaped like a distribution + language runtime layer, written the way the Go estargz
// writer writes it (tab-indented): ~12% dirs, ~60% files (a few large, chunked at 4 MiB),
// ~25% symlinks, ~2% hard links.
std::string GenerateToc(size_t target, size_t* toc_entries, uint64_t* toc_offset) {
  std::string out = "{\n\t\"version\": 1,\n\t\"entries\": [\n";
  uint64_t offset = 1000;
  uint32_t x = 12345;
  auto rnd = [&x]() { return x ^= x << 13, x ^= x >> 17, x ^= x << 5; };
  const char* tops[] = {"usr/lib/python3.11/site-packages", "usr/share/doc", "usr/lib/x86_64-linux-gnu",
                        "usr/share/locale", "usr/include", "opt/app/node_modules"};
  size_t n = 0;
  std::string last_file;
  bool first = true;
  auto entry = [&](const std::string& body) {
    if (!first) out += ",\n";
    first = false;
    out += "\t\t{\n" + body + "\n\t\t}";
    ++n;
  };
  for (size_t d = 0; n < target; ++d) {
    std::string dir = StrCat(tops[d % 6], "/package-", d, "-", rnd() % 1000);
    entry(StrCat("\t\t\t\"name\": \"", dir, "/\",\n\t\t\t\"type\": \"dir\",\n\t\t\t\"modtime\": "
                 "\"2023-06-01T10:20:30Z\",\n\t\t\t\"mode\": 493"));
    for (int f = 0; f < 7 && n < target; ++f) {
      uint32_t r = rnd() % 100;
      std::string name = StrCat(dir, "/module_", f, (r < 60 ? ".py" : r < 85 ? ".so" : ".txt"));
      if (r < 70) {
        uint64_t size = (r < 2) ? 9'000'000 + rnd() % 5'000'000 : 200 + rnd() % 30000;
        uint64_t chunk = 4u << 20;
        std::string body = StrCat(
            "\t\t\t\"name\": \"", name, "\",\n\t\t\t\"type\": \"reg\",\n\t\t\t\"size\": ", size,
            ",\n\t\t\t\"modtime\": \"2023-06-01T10:20:30Z\",\n\t\t\t\"mode\": 420,\n\t\t\t\"offset\": ",
            offset, ",\n\t\t\t\"digest\": \"", Sha256::Of(name).ToString(), "\"");
        if (size > chunk) StrAppend(&body, ",\n\t\t\t\"chunkSize\": ", chunk);
        StrAppend(&body, ",\n\t\t\t\"chunkDigest\": \"", Sha256::Of(name + "0").ToString(), "\"");
        entry(body);
        last_file = name;
        offset += size / 3 + 100;
        for (uint64_t co = chunk; co < size; co += chunk) {
          std::string c = StrCat("\t\t\t\"name\": \"", name, "\",\n\t\t\t\"type\": \"chunk\",\n\t\t\t"
                                 "\"offset\": ", offset, ",\n\t\t\t\"chunkOffset\": ", co);
          if (co + chunk < size) StrAppend(&c, ",\n\t\t\t\"chunkSize\": ", chunk);
          StrAppend(&c, ",\n\t\t\t\"chunkDigest\": \"", Sha256::Of(name + std::to_string(co)).ToString(), "\"");
          entry(c);
          offset += chunk / 3;
        }
      } else if (r < 97) {
        entry(StrCat("\t\t\t\"name\": \"", name, "\",\n\t\t\t\"type\": \"symlink\",\n\t\t\t"
                     "\"modtime\": \"2023-06-01T10:20:30Z\",\n\t\t\t\"linkName\": \"../../lib/libfoo.so.", f,
                     "\",\n\t\t\t\"mode\": 511"));
      } else if (!last_file.empty()) {
        entry(StrCat("\t\t\t\"name\": \"", name, "\",\n\t\t\t\"type\": \"hardlink\",\n\t\t\t"
                     "\"linkName\": \"", last_file, "\""));
      }
    }
  }
  out += "\n\t]\n}\n";
  *toc_entries = n;
  *toc_offset = offset;
  return out;
}

double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int Main(int argc, char** argv) {
  std::string json;
  size_t toc_entries = 0;
  LayerFormat format = LayerFormat::kEstargz;
  uint64_t toc_offset = 1ull << 50;  // for a real TOC: past every chunk
  const char* arg = argc > 1 ? argv[1] : nullptr;
  if (arg != nullptr && std::atoll(arg) == 0) {
    auto data = ReadFileToString(arg);
    if (!data.ok()) {
      fprintf(stderr, "%s\n", std::string(data.status().message()).c_str());
      return 1;
    }
    json = std::move(*data);
    if (argc > 2 && std::string(argv[2]) == "zstd") format = LayerFormat::kZstdChunked;
    for (size_t p = 0; (p = json.find("\"type\"", p)) != std::string::npos; ++p) ++toc_entries;
    // The TOC offset of the blob is unknown here: put it just past the largest data offset.
    uint64_t max_offset = 0;
    for (const char* key : {"ffset\":", "ffset\": "}) {
      for (size_t p = 0; (p = json.find(key, p)) != std::string::npos; ++p) {
        max_offset = std::max<uint64_t>(max_offset, std::strtoull(json.c_str() + p + strlen(key), nullptr, 10));
      }
    }
    toc_offset = max_offset + (64 << 20);
    printf("TOC: %s\n", arg);
  } else {
    size_t target = arg != nullptr ? std::atoll(arg) : 150000;
    json = GenerateToc(target, &toc_entries, &toc_offset);
    printf("TOC: generated\n");
  }
  LayerLimits limits;
  limits.max_toc_bytes = std::max<uint64_t>(limits.max_toc_bytes, json.size());
  double best = 1e9, best_cpu = 1e9, best_json = 1e9;
  absl::StatusOr<LayerIndex> index;
  for (int i = 0; i < 7; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    double c0 = CpuSeconds();
    index = ParseToc(json, format, toc_offset, toc_offset + 100, limits);
    best_cpu = std::min(best_cpu, CpuSeconds() - c0);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!index.ok()) {
      fprintf(stderr, "parse failed: %s\n", std::string(index.status().message()).c_str());
      return 1;
    }
    best = std::min(best, s);
    // The floor: simdjson's DOM parse alone.
    simdjson::dom::parser parser;
    c0 = CpuSeconds();
    simdjson::dom::element doc;
    if (parser.parse(json.data(), json.size(), true).get(doc) == simdjson::SUCCESS) {
      best_json = std::min(best_json, CpuSeconds() - c0);
    }
  }
  size_t mem = index->MemoryUsage(), strings = index->StringBytes();
  printf("TOC JSON:          %.1f MB, %zu TOC entries (%.0f bytes each)\n", json.size() / 1e6,
         toc_entries, double(json.size()) / toc_entries);
  printf("index:             %zu entries, %zu chunks, %zu xattrs\n", index->size(),
         index->chunks().size(), index->xattrs().size());
  printf("parse (best of 7): %.1f ms wall, %.1f ms CPU: %.0f MB/s (CPU), %.2f M TOC entries/s\n",
         best * 1e3, best_cpu * 1e3, json.size() / best_cpu / 1e6, toc_entries / best_cpu / 1e6);
  printf("  of which JSON:   %.1f ms CPU (simdjson DOM alone: %.0f MB/s)\n", best_json * 1e3,
         json.size() / best_json / 1e6);
  printf("memory:            %.2f MB total, %.2f MB strings\n", mem / 1e6, strings / 1e6);
  printf("bytes beside strings: %.1f per TOC entry, %.1f per index entry "
         "(sizeof Entry %zu, Chunk %zu)\n",
         double(mem - strings) / toc_entries, double(mem - strings) / index->size(),
         sizeof(Entry), sizeof(Chunk));
  return 0;
}

}  // namespace
}  // namespace lazysnap

int main(int argc, char** argv) { return lazysnap::Main(argc, argv); }

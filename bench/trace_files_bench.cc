// Which files a trace's chunks belong to: the bytes a workload's cold start fetches, per file.
//
//   trace_files_bench LAYER_BLOB [TOP] < CHUNKS
//
// LAYER_BLOB is a seekable layer (eStargz or zstd:chunked) on disk; CHUNKS, on stdin, are chunk
// indices of that layer (whitespace-separated, e.g. a trace's `chunks` of the layer: `jq -r
// '.layers[0].chunks[][0]' TRACE.json`, or `lazysnap trace show --json`). Prints, for the TOP
// (default 25) files with the most compressed bytes: chunks, compressed and uncompressed bytes
// of the listed chunks, and the file's size; then totals. docs/benchmarks.md, "Bytes".
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "base/blob_source.h"
#include "format/layer.h"

int main(int argc, char** argv) {
  using namespace lazysnap;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s LAYER_BLOB [TOP] < CHUNK_INDICES\n", argv[0]);
    return 2;
  }
  const size_t top = argc > 2 ? std::stoul(argv[2]) : 25;
  auto blob = FileBlobSource::Open(argv[1]);
  if (!blob.ok()) {
    std::fprintf(stderr, "%s\n", blob.status().ToString().c_str());
    return 1;
  }
  auto layer = OpenLayer(**blob, OpenOptions{});
  if (!layer.ok()) {
    std::fprintf(stderr, "%s\n", layer.status().ToString().c_str());
    return 1;
  }
  const LayerIndex& index = (*layer)->index;
  const auto chunks = index.chunks();
  struct PerFile {
    uint64_t chunks = 0, compressed = 0, uncompressed = 0;
  };
  std::map<EntryId, PerFile> files;
  std::vector<bool> seen(chunks.size(), false);
  PerFile total;
  uint64_t c = 0;
  while (std::cin >> c) {
    if (c >= chunks.size() || seen[c]) continue;
    seen[c] = true;
    PerFile& f = files[chunks[c].entry];
    for (PerFile* p : {&f, &total}) {
      p->chunks++;
      p->compressed += chunks[c].compressed_size;
      p->uncompressed += chunks[c].size;
    }
  }
  std::vector<std::pair<EntryId, PerFile>> sorted(files.begin(), files.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second.compressed > b.second.compressed;
  });
  std::printf("%-60s %6s %12s %12s %12s\n", "file", "chunks", "compressed", "uncompressed",
              "file size");
  for (size_t i = 0; i < sorted.size() && i < top; i++) {
    const auto& [id, f] = sorted[i];
    std::printf("%-60s %6llu %12llu %12llu %12llu\n", index.Path(id).c_str(),
                static_cast<unsigned long long>(f.chunks),
                static_cast<unsigned long long>(f.compressed),
                static_cast<unsigned long long>(f.uncompressed),
                static_cast<unsigned long long>(index.entry(id).size));
  }
  std::printf("total: %zu files, %llu chunks, %llu compressed bytes, %llu uncompressed "
              "(layer: %zu chunks, blob %llu bytes)\n",
              files.size(), static_cast<unsigned long long>(total.chunks),
              static_cast<unsigned long long>(total.compressed),
              static_cast<unsigned long long>(total.uncompressed), chunks.size(),
              static_cast<unsigned long long>((*blob)->Size()));
  return 0;
}

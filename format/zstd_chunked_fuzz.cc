// libFuzzer target for the zstd:chunked reader: footer parsing, annotation parsing, locating,
// verifying and decompressing the manifest and tar-split, and the tar-split line parser.
//
// Input layout: byte 0 selects a mode; for the annotation modes, the bytes up to the first
// '\n' are the manifest-position annotation value and the rest is the blob.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "base/blob_source.h"
#include "format/zstd_chunked.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazysnap;
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 4;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);

  OpenOptions options;
  options.limits.max_toc_bytes = 1 << 20;  // keep memory small
  if (mode == 1 || mode == 2) {
    size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) return 0;
    options.annotations["io.github.containers.zstd-chunked.manifest-position"] =
        std::string(rest.substr(0, nl));
    if (mode == 2) {
      options.annotations["io.containers.zstd-chunked.tarsplit-position"] =
          std::string(rest.substr(0, nl)).substr(0, nl / 2);
    }
    rest.remove_prefix(nl + 1);
  }
  if (mode == 3) {
    (void)ForEachTarSplitEntry(rest, [](const TarSplitEntry& e) {
      return e.size > (1ull << 40) ? absl::OutOfRangeError("big") : absl::OkStatus();
    });
    return 0;
  }

  size_t tail = rest.size() < kZstdChunkedTailSize ? rest.size() : kZstdChunkedTailSize;
  (void)ParseZstdChunkedFooter(rest.substr(rest.size() - tail));

  MemoryBlobSource blob{std::string(rest)};
  auto toc = ReadZstdChunkedToc(blob, options);
  if (toc.ok() && toc->json.size() > options.limits.max_toc_bytes) __builtin_trap();
  auto loc = LocateZstdChunked(blob, options);
  if (loc.ok()) {
    auto ts = ReadZstdChunkedTarSplit(blob, *loc, std::nullopt, 1 << 20);
    if (ts.ok()) {
      if (ts->size() != loc->tar_split_uncompressed_length) __builtin_trap();
      (void)ForEachTarSplitEntry(*ts, [](const TarSplitEntry&) { return absl::OkStatus(); });
    }
  }
  return 0;
}

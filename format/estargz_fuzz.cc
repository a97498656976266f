// libFuzzer target: the eStargz footer parser and OpenLayer on an arbitrary blob, then every
// chunk of the opened layer read and decoded. Two shapes of input, picked by the first byte:
//   even: the rest is the whole blob (footer, TOC member and data all fuzzed);
//   odd:  byte 1 gives a split point; the rest is [data][TOC JSON], wrapped into a well-formed
//         TOC member and footer so the fuzzer reaches TOC parsing and chunk decoding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/blob_source.h"
#include "format/estargz.h"
#include "format/estargz_testutil.h"
#include "format/layer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazysnap;
  if (size < 2) return 0;
  std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string bytes;
  if (data[0] % 2 == 0) {
    bytes = rest;
  } else {
    size_t split = std::min<size_t>(rest.size() - 1, static_cast<size_t>(data[1]) * 8);
    bytes = rest.substr(1, split);
    bytes += testing::TocMember(std::string_view(rest).substr(1 + split));
    bytes += EncodeEstargzFooter(split);
  }
  (void)ParseEstargzFooter(bytes);
  MemoryBlobSource blob(bytes);
  OpenOptions options;
  options.limits.max_toc_bytes = 1 << 20;
  options.limits.max_entries = 10000;
  options.limits.max_chunk_size = 1 << 20;
  auto layer = OpenLayer(blob, options);
  if (!layer.ok()) return 0;
  std::string out;
  for (const Chunk& c : (*layer)->index.chunks()) {
    out.resize(c.size);
    (void)ReadChunk(blob, (*layer)->index, c, absl::MakeSpan(out));
  }
  return 0;
}

// libFuzzer target: the eStargz footer parser and OpenLayer on an arbitrary blob (footer,
// TOC member, TOC JSON), then every chunk of the opened layer read and decoded.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/blob_source.h"
#include "format/estargz.h"
#include "format/layer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazysnap;
  std::string bytes(reinterpret_cast<const char*>(data), size);
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
    (void)ReadChunk(blob, (*layer)->index.format(), c, absl::MakeSpan(out));
  }
  return 0;
}

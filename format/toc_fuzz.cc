// libFuzzer target: ParseToc on arbitrary bytes, both dialects. The first byte picks the
// dialect; the rest is the TOC JSON. Any input must give an index or an error, never a
// crash, and a returned index must be internally consistent.
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "format/toc.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  using namespace lazysnap;
  LayerFormat format = (data[0] & 1) ? LayerFormat::kZstdChunked : LayerFormat::kEstargz;
  std::string_view json(reinterpret_cast<const char*>(data + 1), size - 1);
  LayerLimits limits;
  limits.max_toc_bytes = 1 << 20;
  limits.max_entries = 10000;
  auto index = ParseToc(json, format, /*toc_offset=*/1 << 20, /*blob_size=*/(1 << 20) + 51,
                        limits);
  if (!index.ok()) return 0;
  // Invariants users rely on.
  for (EntryId id = 0; id < index->size(); ++id) {
    const Entry& e = index->entry(id);
    if (id != kRootEntry && index->Lookup(e.parent, index->name(id)) != id) abort();
    if (e.inode >= index->size()) abort();
    uint64_t pos = 0;
    for (const Chunk& c : index->ChunksOf(id)) {
      if (c.file_offset != pos) abort();
      pos += c.size;
      if (!c.zeros && c.compressed_offset + c.compressed_size > (1u << 20)) abort();
    }
    if (S_ISREG(e.mode) && e.chunks_count > 0 && pos != e.size) abort();
    if (!S_ISREG(e.mode) && !index->ChunksOf(id).empty()) abort();
    for (EntryId c : index->ChildrenOf(id)) {
      if (c >= index->size() || index->entry(c).parent != id) abort();
    }
    if (index->name(id).size() > 255) abort();
    if (S_ISLNK(e.mode) && index->link(id).size() != e.size) abort();
  }
  return 0;
}

// TOC JSON → LayerIndex. Both dialects: eStargz's stargz.index.json and zstd:chunked's
// manifest (containers/storage), which share one entry shape (see format/estargz.md and
// format/zstd-chunked.md). The TOC is untrusted: names are normalized and checked, links,
// chunks and offsets validated, and every count and size bounded by LayerLimits; anything
// wrong is an InvalidArgument error naming the entry.
#ifndef LAZYSNAP_FORMAT_TOC_H_
#define LAZYSNAP_FORMAT_TOC_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "format/index.h"
#include "format/layer.h"

namespace lazysnap {

// Parses `json` (the uncompressed TOC) of a layer of `format` whose TOC starts at blob
// offset `toc_offset` in a blob of `blob_size` bytes. Chunk data must lie below toc_offset.
// Pure function of its inputs; thread-safe.
absl::StatusOr<LayerIndex> ParseToc(std::string_view json, LayerFormat format,
                                    uint64_t toc_offset, uint64_t blob_size,
                                    const LayerLimits& limits);

// One TOC entry as it appears in the JSON, before any checking. Field names follow the JSON
// keys; absent fields are 0 / empty. Views need only live for the IndexBuilder::Add call.
struct TocEntry {
  std::string_view type;        // dir reg symlink hardlink char block fifo chunk
  std::string_view name;
  std::string_view link_name;
  int64_t size = 0;
  int64_t mode = 0;
  int64_t uid = 0, gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  int64_t dev_major = 0, dev_minor = 0;
  int64_t offset = 0;
  int64_t end_offset = 0;       // zstd:chunked
  int64_t inner_offset = 0;     // eStargz
  int64_t chunk_offset = 0;
  int64_t chunk_size = 0;       // 0: up to the end of the file
  std::string_view digest;
  std::string_view chunk_digest;
  std::string_view chunk_type;  // zstd:chunked: "" / "data" or "zeros"
  std::vector<std::pair<std::string_view, std::string>> xattrs;  // name, raw value
};

// Builds a LayerIndex from TocEntry records given in TOC order: the validation and layout
// half of ParseToc, usable by any front end (JSON parsers, tests, the converter).
// Not thread-safe; use one builder per index.
class IndexBuilder {
 public:
  IndexBuilder(LayerFormat format, uint64_t toc_offset, uint64_t blob_size,
               const LayerLimits& limits);
  ~IndexBuilder();
  IndexBuilder(const IndexBuilder&) = delete;
  IndexBuilder& operator=(const IndexBuilder&) = delete;

  // Hints the number of entries to come (reserves memory).
  void Reserve(size_t entries);
  // Adds the next entry. Errors are InvalidArgument naming the entry; after one, the builder
  // must not be used again.
  absl::Status Add(const TocEntry& e);
  // Resolves parents, hard links, chunk sizes and landmarks and returns the index. Call once.
  absl::StatusOr<LayerIndex> Finish();

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Parses an RFC 3339 time ("2006-01-02T15:04:05Z", optional fraction and ±hh:mm offset).
// Exposed for tests.
bool ParseRfc3339(std::string_view s, int64_t* sec, uint32_t* nsec);

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_TOC_H_

// LayerIndex: the compact in-memory form of a seekable layer's table of contents (TOC).
//
// Flat arrays and one string table, no JSON tree: an Entry (40 bytes) per file-system object,
// a Chunk per independently decompressible piece of a regular file's data, owner/xattr sets
// interned once per layer. Ids are assigned breadth-first, so the children of a directory are
// consecutive ids, sorted by name (binary-search lookup, no child array). Entry ids are dense
// (0 is the root directory) and stable for a given TOC, so fusefs/ uses them as inode numbers
// (id + 1). format/index.md describes the layout and its memory figures.
//
// The record types (Entry, Chunk, Xattr, EntryAttrs, IdRange) are in index_records.h.
//
// A LayerIndex is immutable once built (by ParseToc / the layer readers; see toc.h) and is
// safe to share between threads without locks.
#ifndef LAZYSNAP_FORMAT_INDEX_H_
#define LAZYSNAP_FORMAT_INDEX_H_

#include <sys/stat.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/types/span.h"
#include "base/digest.h"
#include "format/chunk_digest.h"
#include "format/index_records.h"

namespace lazysnap {

class LayerIndex {
 public:
  LayerIndex() = default;
  LayerIndex(LayerIndex&&) = default;
  LayerIndex& operator=(LayerIndex&&) = default;

  LayerFormat format() const { return format_; }
  // The key of this index's chunk fingerprints (random per index; never leaves the process).
  const DigestKey& digest_key() const { return digest_key_; }
  size_t size() const { return entries_.size(); }
  const Entry& entry(EntryId id) const { return entries_[id]; }
  absl::Span<const Entry> entries() const { return entries_; }
  absl::Span<const Chunk> chunks() const { return chunks_; }
  absl::Span<const Xattr> xattrs() const { return xattrs_; }

  std::string_view str(StrRef r) const { return std::string_view(strings_).substr(r.offset, r.size); }
  // The entry's base name ("" for the root). Names are stored in id order, so a name ends
  // where the next entry's begins.
  std::string_view name(EntryId id) const {
    const uint32_t end = id + 1 < entries_.size() ? entries_[id + 1].name_offset : names_end_;
    return std::string_view(strings_).substr(entries_[id].name_offset,
                                             end - entries_[id].name_offset);
  }
  // The symlink target of `id` ("" if it is not a symlink).
  std::string_view link(EntryId id) const {
    const Entry& e = entries_[id];
    return S_ISLNK(e.mode) ? str(StrRef{e.link_offset, e.link_size}) : std::string_view();
  }
  const EntryAttrs& attrs(EntryId id) const { return attrs_[entries_[id].attrs]; }
  // Modification time (seconds and nanoseconds since the epoch).
  struct timespec mtime(EntryId id) const {
    const uint32_t m = entries_[id].mtime;
    return {static_cast<time_t>(mtime_sec_[m]), static_cast<long>(mtime_nsec_[m])};
  }
  absl::Span<const Xattr> XattrsOf(EntryId id) const {
    const EntryAttrs& a = attrs(id);
    return absl::MakeConstSpan(xattrs_).subspan(a.xattrs_begin, a.xattrs_count);
  }
  // The entry's full path without a leading slash ("" for the root, "usr/bin/python3").
  std::string Path(EntryId id) const;

  // The child of directory `dir` called `name`, or kNoEntry. O(log children).
  EntryId Lookup(EntryId dir, std::string_view name) const;
  // The entry at slash-separated `path` relative to the root, or kNoEntry.
  EntryId LookupPath(std::string_view path) const;
  // The children of `dir` (empty if it is not a directory), sorted by name.
  IdRange ChildrenOf(EntryId dir) const {
    const Entry& e = entries_[dir];
    if (!S_ISDIR(e.mode)) return IdRange();
    return IdRange{e.children_begin, e.children_begin + e.children_count};
  }
  // The chunks of `file` (empty if it is not a regular file).
  absl::Span<const Chunk> ChunksOf(EntryId file) const {
    const Entry& e = entries_[file];
    if (!S_ISREG(e.mode)) return {};
    return absl::MakeConstSpan(chunks_).subspan(e.chunks_begin, e.chunks_count);
  }
  // Index (into chunks()) of the chunk of `file` holding byte `offset`; the end of its chunk
  // range if past the end of the file; chunks().size() if `file` is not a regular file.
  // O(log chunks of the file).
  uint32_t ChunkAt(EntryId file, uint64_t offset) const;

  // Blob offset of the prefetch landmark's data, if the layer has `.prefetch.landmark`:
  // chunks whose compressed_offset is below it are the layer's prioritized files.
  std::optional<uint64_t> prefetch_landmark_offset() const { return prefetch_landmark_; }
  bool has_no_prefetch_landmark() const { return no_prefetch_landmark_; }

  // Where the TOC itself sits in the blob, and the sum of regular-file sizes.
  uint64_t toc_offset() const { return toc_offset_; }
  uint64_t total_file_bytes() const { return total_file_bytes_; }

  // Bytes of memory held by this index, and the part of it that is strings.
  size_t MemoryUsage() const;
  size_t StringBytes() const { return strings_.capacity(); }

 private:
  friend class IndexBuilder;
  LayerFormat format_ = LayerFormat::kEstargz;
  DigestKey digest_key_;
  std::vector<Entry> entries_;
  std::vector<Chunk> chunks_;
  std::vector<Xattr> xattrs_;
  std::vector<EntryAttrs> attrs_;
  std::vector<int64_t> mtime_sec_;    // interned mtimes: a layer has few distinct ones
  std::vector<uint32_t> mtime_nsec_;
  std::string strings_;  // names in id order, then symlink targets and xattrs
  uint32_t names_end_ = 0;
  std::optional<uint64_t> prefetch_landmark_;
  bool no_prefetch_landmark_ = false;
  uint64_t toc_offset_ = 0;
  uint64_t total_file_bytes_ = 0;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_INDEX_H_

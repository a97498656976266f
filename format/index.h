// LayerIndex: the compact in-memory form of a seekable layer's table of contents (TOC).
//
// Flat arrays and one string table, no JSON tree: an Entry per file-system object, a Chunk per
// independently decompressible piece of a regular file's data, children of every directory
// stored contiguously and sorted by name (binary-search lookup), xattrs as string pairs.
// Entry ids are dense (0 is the root directory) and stable for a given TOC, so fusefs/ uses
// them as inode numbers (id + 1).
//
// A LayerIndex is immutable once built (by ParseToc / the layer readers; see toc.h) and is
// safe to share between threads without locks.
#ifndef LAZYSNAP_FORMAT_INDEX_H_
#define LAZYSNAP_FORMAT_INDEX_H_

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/types/span.h"
#include "base/digest.h"

namespace lazysnap {

using EntryId = uint32_t;
inline constexpr EntryId kRootEntry = 0;
inline constexpr EntryId kNoEntry = 0xffffffffu;

// A reference into LayerIndex's string table.
struct StrRef {
  uint32_t offset = 0;
  uint32_t size = 0;
};

// One file-system object. `mode` carries the S_IFMT type bits (S_IFREG, S_IFDIR, S_IFLNK,
// S_IFCHR, S_IFBLK, S_IFIFO) and the permission bits including setuid/setgid/sticky.
// Every field is meaningful for every type (0 / empty where it does not apply). A hard link's
// entry repeats its target's attributes, chunk and xattr ranges (inode != own id): walk
// entries with inode == id to visit each file's data once. `mode` and
// `xattrs_count` are 16-bit bit-fields (88 bytes an Entry): read and assign them as usual,
// but they cannot be bound to non-const references.
struct Entry {
  uint64_t size = 0;           // regular files: uncompressed size; symlinks: target length
  int64_t mtime_sec = 0;       // modification time, seconds since the epoch
  uint32_t mtime_nsec = 0;
  uint32_t mode : 16 = 0;
  uint32_t xattrs_count : 16 = 0;  // at most 65535 (IndexBuilder enforces it)
  uint32_t uid = 0, gid = 0;
  EntryId parent = kNoEntry;   // the root's parent is itself
  StrRef name;                 // base name ("" for the root)
  StrRef link;                 // symlink target
  uint32_t children_begin = 0, children_count = 0;  // into LayerIndex::children()
  uint32_t chunks_begin = 0, chunks_count = 0;      // into LayerIndex::chunks()
  uint32_t xattrs_begin = 0;                        // into LayerIndex::xattrs()
  uint32_t dev_major = 0, dev_minor = 0;
  uint32_t nlink = 1;          // directories: 2 + subdirectories; files: number of names
  EntryId inode = kNoEntry;    // the entry holding this object's data and attributes: itself,
                               // or for a hard link the entry it links to
};

// One chunk of a regular file. Chunks of a file are contiguous and sorted by file_offset,
// covering [0, size) without gaps or overlap. 64 bytes; `inner_offset`, `has_digest` and
// `zeros` are bit-fields (no non-const references to them).
struct Chunk {
  uint64_t compressed_offset = 0;  // where its compressed frame/member starts in the blob
  uint64_t file_offset = 0;        // where its data starts in the file
  uint32_t compressed_size = 0;    // bytes of blob to fetch from compressed_offset
  uint32_t size = 0;               // uncompressed bytes of file data
  uint32_t inner_offset : 30 = 0;  // eStargz innerOffset: data starts this far into the
                                   // decompressed stream (0 unless files share a member);
                                   // below 2^30 (IndexBuilder enforces it)
  bool has_digest : 1 = false;
  bool zeros : 1 = false;          // zstd:chunked "zeros" chunk: no data in the blob
  EntryId entry = kNoEntry;        // the regular file it belongs to
  Sha256 digest;                   // chunkDigest: sha256 of the `size` uncompressed bytes
};
static_assert(sizeof(Chunk) == 64);

static_assert(sizeof(Entry) == 88);

struct Xattr {
  StrRef name;
  StrRef value;  // raw bytes (base64-decoded from the TOC)
};

enum class LayerFormat : uint8_t { kEstargz, kZstdChunked };

class LayerIndex {
 public:
  LayerIndex() = default;
  LayerIndex(LayerIndex&&) = default;
  LayerIndex& operator=(LayerIndex&&) = default;

  LayerFormat format() const { return format_; }
  size_t size() const { return entries_.size(); }
  const Entry& entry(EntryId id) const { return entries_[id]; }
  absl::Span<const Entry> entries() const { return entries_; }
  absl::Span<const Chunk> chunks() const { return chunks_; }
  absl::Span<const EntryId> children() const { return children_; }
  absl::Span<const Xattr> xattrs() const { return xattrs_; }

  std::string_view str(StrRef r) const { return std::string_view(strings_).substr(r.offset, r.size); }
  std::string_view name(EntryId id) const { return str(entries_[id].name); }
  // The entry's full path without a leading slash ("" for the root, "usr/bin/python3").
  std::string Path(EntryId id) const;

  // The child of directory `dir` called `name`, or kNoEntry. O(log children).
  EntryId Lookup(EntryId dir, std::string_view name) const;
  // The entry at slash-separated `path` relative to the root, or kNoEntry.
  EntryId LookupPath(std::string_view path) const;
  absl::Span<const EntryId> ChildrenOf(EntryId dir) const {
    const Entry& e = entries_[dir];
    return absl::MakeConstSpan(children_).subspan(e.children_begin, e.children_count);
  }
  absl::Span<const Chunk> ChunksOf(EntryId file) const {
    const Entry& e = entries_[file];
    return absl::MakeConstSpan(chunks_).subspan(e.chunks_begin, e.chunks_count);
  }
  // Index (into chunks()) of the chunk of `file` holding byte `offset`; chunks_count if past
  // the end. O(log chunks of the file).
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
  std::vector<Entry> entries_;
  std::vector<Chunk> chunks_;
  std::vector<EntryId> children_;
  std::vector<Xattr> xattrs_;
  std::string strings_;
  std::optional<uint64_t> prefetch_landmark_;
  bool no_prefetch_landmark_ = false;
  uint64_t toc_offset_ = 0;
  uint64_t total_file_bytes_ = 0;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_INDEX_H_

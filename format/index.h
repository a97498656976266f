// LayerIndex: the compact in-memory form of a seekable layer's table of contents (TOC).
//
// Flat arrays and one string table, no JSON tree: an Entry (40 bytes) per file-system object,
// a Chunk per independently decompressible piece of a regular file's data, owner/xattr sets
// interned once per layer. Ids are assigned breadth-first, so the children of a directory are
// consecutive ids, sorted by name (binary-search lookup, no child array). Entry ids are dense
// (0 is the root directory) and stable for a given TOC, so fusefs/ uses them as inode numbers
// (id + 1). format/index.md describes the layout and its memory figures.
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

namespace lazysnap {

using EntryId = uint32_t;
inline constexpr EntryId kRootEntry = 0;
inline constexpr EntryId kNoEntry = 0xffffffffu;

// A reference into LayerIndex's string table.
struct StrRef {
  uint32_t offset = 0;
  uint32_t size = 0;
};

// One file-system object, 40 bytes (format/index.md has the layout and the reasoning).
// `mode` carries the S_IFMT type bits (S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO)
// and the permission bits including setuid/setgid/sticky.
//
// The fields of the anonymous union hold what only one type has, and share their storage:
// read only the one of the entry's type (LayerIndex::ChunksOf/ChildrenOf check the type):
//   S_IFREG  chunks_begin, chunks_count   (into LayerIndex::chunks())
//   S_IFDIR  children_begin, children_count (ids: the children are entries
//            [children_begin, children_begin + children_count), sorted by name)
//   S_IFLNK  link_offset, link_size       (the target in the string table: LayerIndex::link())
//   S_IFCHR, S_IFBLK  dev_major, dev_minor
// Owner and xattrs, and mtimes, are interned per layer (LayerIndex::attrs(), XattrsOf(),
// mtime()); the name is in
// the string table (LayerIndex::name()). A hard link's entry repeats its target's attributes
// and union (inode != own id): walk entries with inode == id to visit each file's data once.
struct Entry {
  uint64_t size = 0;           // regular files: uncompressed size; symlinks: target length
  uint16_t mode = 0;
  uint16_t nlink = 1;          // directories: 2 + subdirectories (1 if that is above 65535,
                               // as ext4 does); files: number of names, at most 65535
  EntryId parent = kNoEntry;   // the root's parent is itself
  EntryId inode = kNoEntry;    // the entry holding this object's data and attributes: itself,
                               // or for a hard link the entry it links to
  uint32_t name_offset = 0;    // into the string table; see LayerIndex::name()
  uint32_t attrs = 0;          // into LayerIndex's interned owner/xattr sets; see attrs()
  uint32_t mtime = 0;          // into LayerIndex's interned mtimes; see mtime()
  union {
    uint64_t type_data_ = 0;
    struct {
      uint32_t chunks_begin, chunks_count;
    };
    struct {
      uint32_t children_begin, children_count;
    };
    struct {
      uint32_t dev_major, dev_minor;
    };
    struct {
      uint32_t link_offset, link_size;
    };
  };
};
static_assert(sizeof(Entry) == 40);

// One chunk of a regular file. Chunks of a file are contiguous and sorted by file_offset,
// covering [0, size) without gaps or overlap. 48 bytes; `inner_offset`, `has_digest` and
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
  ChunkDigest digest;              // fingerprint of chunkDigest (the sha256 of the `size`
                                   // uncompressed bytes) under LayerIndex::digest_key()
};
static_assert(sizeof(Chunk) == 48);

struct Xattr {
  StrRef name;
  StrRef value;  // raw bytes (base64-decoded from the TOC)
};

// A run of consecutive entry ids [first, last) (a directory's children). Value type.
struct IdRange {
  struct iterator {
    EntryId id;
    EntryId operator*() const { return id; }
    iterator& operator++() { ++id; return *this; }
    bool operator==(const iterator&) const = default;
  };
  EntryId first = 0, last = 0;
  iterator begin() const { return {first}; }
  iterator end() const { return {last}; }
  size_t size() const { return last - first; }
  bool empty() const { return first == last; }
  EntryId operator[](size_t i) const { return first + static_cast<EntryId>(i); }
};

// The owner and xattrs of entries; a layer has few distinct ones, each stored once.
struct EntryAttrs {
  uint32_t uid = 0, gid = 0;
  uint32_t xattrs_begin = 0, xattrs_count = 0;  // into LayerIndex::xattrs()
  bool operator==(const EntryAttrs&) const = default;
};

enum class LayerFormat : uint8_t { kEstargz, kZstdChunked };

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

// The record types of a LayerIndex (index.h): entries, chunks, xattrs, interned owner/xattr
// sets and id ranges. Plain value types, 40 and 48 bytes for Entry and Chunk; format/index.md
// has the layout and the reasoning. Thread-safety: values, none of their own.
#ifndef LAZYSNAP_FORMAT_INDEX_RECORDS_H_
#define LAZYSNAP_FORMAT_INDEX_RECORDS_H_

#include <cstddef>
#include <cstdint>

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

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_INDEX_RECORDS_H_

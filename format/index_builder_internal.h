// Internals of IndexBuilder shared by index_builder.cc (validation) and index_layout.cc
// (layout). Not an interface: include it from those two files only.
#ifndef LAZYSNAP_FORMAT_INDEX_BUILDER_INTERNAL_H_
#define LAZYSNAP_FORMAT_INDEX_BUILDER_INTERNAL_H_

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/strings.h"
#include "format/path_table.h"
#include "format/toc.h"

namespace lazysnap {
namespace index_internal {

constexpr uint32_t kHardlink = 0xffff;  // pseudo file type of unresolved hard links

inline absl::Status Invalid(std::string_view name, std::string_view what) {
  return absl::InvalidArgumentError(StrCat("TOC entry \"", name.substr(0, 256), "\": ", what));
}

// Stable storage for path strings (string_views into it stay valid while it lives).
class Arena {
 public:
  std::string_view Copy(std::string_view s) {
    if (s.size() > left_) {
      size_t n = std::max<size_t>(s.size(), 1 << 20);
      blocks_.push_back(std::make_unique<char[]>(n));
      next_ = blocks_.back().get();
      left_ = n;
    }
    if (!s.empty()) memcpy(next_, s.data(), s.size());
    std::string_view out(next_, s.size());
    next_ += s.size();
    left_ -= s.size();
    return out;
  }

 private:
  std::vector<std::unique_ptr<char[]>> blocks_;
  char* next_ = nullptr;
  size_t left_ = 0;
};

inline std::string_view BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}
inline std::string_view DirName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}

struct RawChunk {
  uint64_t offset = 0;
  uint64_t end_offset = 0;  // zstd:chunked chunk entries that carry one; else 0
  uint64_t file_offset = 0;
  uint64_t size = 0;        // 0: to the end of the file
  uint32_t inner_offset = 0;
  Sha256 digest;
  bool has_digest = false;
  bool zeros = false;
};

struct Node {
  std::string_view path;
  std::string_view link;      // symlink target, or hard link target path (cleaned)
  uint32_t type = S_IFDIR;    // S_IF* or kHardlink
  uint32_t perm = 0755;
  uint32_t uid = 0, gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint64_t size = 0;
  uint64_t end_offset = 0;    // zstd:chunked file endOffset
  uint32_t dev_major = 0, dev_minor = 0;
  uint32_t chunks_begin = 0, chunks_count = 0;   // into raw_chunks
  uint32_t xattrs_begin = 0, xattrs_count = 0;   // into raw_xattrs
  uint32_t parent = 0;
  uint32_t target = kNoEntry;  // hard links: resolved node
  uint32_t nlink = 1;
  uint32_t id = kNoEntry;      // final EntryId
};

}  // namespace index_internal

struct IndexBuilder::State {
  LayerFormat format;
  uint64_t toc_offset;
  uint64_t blob_size;
  LayerLimits limits;
  index_internal::Arena arena;
  std::string scratch;
  std::vector<index_internal::Node> nodes;
  std::vector<index_internal::RawChunk> raw_chunks;
  std::vector<std::pair<std::string_view, std::string_view>> raw_xattrs;
  PathTable by_path;
  uint32_t current_file = kNoEntry;  // the reg node chunk entries attach to
  Sha256 current_digest;             // its whole-file "digest", if current_has_digest
  bool current_has_digest = false;
  uint64_t added = 0;

  // Maps PathTable ids (node indexes) to their paths. Nodes pushed right after
  // FindOrInsert are never looked up before they exist.
  auto key_of() const {
    return [this](uint32_t id) { return nodes[id].path; };
  }

  absl::Status CheckFileChunks();
  absl::Status AddChunk(uint32_t file, const TocEntry& e);
  absl::Status Resolve();
  absl::Status ComputeCompressedSizes();
  absl::StatusOr<LayerIndex> Layout(uint32_t root);
};

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_INDEX_BUILDER_INTERNAL_H_

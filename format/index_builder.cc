// IndexBuilder: validation and layout of TOC entries into a LayerIndex (see toc.h).
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "base/status_macros.h"
#include "base/strings.h"
#include "format/path_table.h"
#include "format/toc.h"

namespace lazysnap {
namespace {

constexpr size_t kMaxNameComponent = 255;
constexpr size_t kMaxLinkTarget = 4095;
constexpr uint32_t kHardlink = 0xffff;  // pseudo file type of unresolved hard links

absl::Status Invalid(std::string_view name, std::string_view what) {
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

// Normalizes a member name: strips leading '/' and "./", collapses "//", drops "." parts
// and a trailing '/'; rejects "..", NUL and over-long components. "" is the root.
absl::Status CleanPath(std::string_view name, std::string* out, uint32_t max_depth) {
  out->clear();
  if (name.find('\0') != std::string_view::npos) return Invalid(name, "NUL byte in name");
  uint32_t depth = 0;
  size_t i = 0;
  while (i < name.size()) {
    size_t j = name.find('/', i);
    if (j == std::string_view::npos) j = name.size();
    std::string_view part = name.substr(i, j - i);
    i = j + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return Invalid(name, "\"..\" in path");
    if (part.size() > kMaxNameComponent) return Invalid(name, "name component too long");
    if (++depth > max_depth) return Invalid(name, "path too deep");
    if (!out->empty()) out->push_back('/');
    out->append(part);
  }
  return absl::OkStatus();
}

std::string_view BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}
std::string_view DirName(std::string_view path) {
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

absl::StatusOr<uint32_t> ToU32(std::string_view name, const char* field, int64_t v) {
  if (v < 0 || v > static_cast<int64_t>(UINT32_MAX)) {
    return Invalid(name, StrCat(field, " out of range: ", v));
  }
  return static_cast<uint32_t>(v);
}

}  // namespace

struct IndexBuilder::State {
  LayerFormat format;
  uint64_t toc_offset;
  uint64_t blob_size;
  LayerLimits limits;
  Arena arena;
  std::string scratch;
  std::vector<Node> nodes;
  std::vector<RawChunk> raw_chunks;
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

IndexBuilder::IndexBuilder(LayerFormat format, uint64_t toc_offset, uint64_t blob_size,
                           const LayerLimits& limits)
    : s_(std::make_unique<State>()) {
  s_->format = format;
  s_->toc_offset = toc_offset;
  s_->blob_size = blob_size;
  s_->limits = limits;
}
IndexBuilder::~IndexBuilder() = default;

void IndexBuilder::Reserve(size_t entries) {
  entries = std::min<size_t>(entries, s_->limits.max_entries);
  s_->nodes.reserve(entries + entries / 8 + 1);
  s_->raw_chunks.reserve(entries);
  s_->by_path.Reserve(entries + entries / 8 + 1);
}

absl::Status IndexBuilder::State::AddChunk(uint32_t file, const TocEntry& e) {
  Node& n = nodes[file];
  if (n.size == 0) return absl::OkStatus();  // empty files have no data
  RawChunk c;
  if (e.offset < 0 || e.end_offset < 0 || e.inner_offset < 0 || e.chunk_offset < 0 ||
      e.chunk_size < 0) {
    return Invalid(n.path, "negative offset or size");
  }
  c.offset = static_cast<uint64_t>(e.offset);
  c.end_offset = e.type == "chunk" ? static_cast<uint64_t>(e.end_offset) : 0;
  c.file_offset = static_cast<uint64_t>(e.chunk_offset);
  c.size = static_cast<uint64_t>(e.chunk_size);
  if (e.inner_offset > static_cast<int64_t>(limits.max_chunk_size) ||
      e.inner_offset >= (int64_t{1} << 30)) {
    return Invalid(n.path, "innerOffset too large");
  }
  c.inner_offset = static_cast<uint32_t>(e.inner_offset);
  if (e.chunk_type == "zeros") {
    c.zeros = true;
  } else if (!e.chunk_type.empty() && e.chunk_type != "data") {
    return Invalid(n.path, StrCat("unknown chunkType \"", e.chunk_type.substr(0, 32), "\""));
  }
  if (!c.zeros && c.offset == 0) return Invalid(n.path, "file data without an offset");
  if (c.offset >= toc_offset && !c.zeros) {
    return Invalid(n.path, StrCat("chunk offset ", c.offset, " is beyond the TOC at ", toc_offset));
  }
  if (!e.chunk_digest.empty()) {
    if (!ParseSha256Fast(e.chunk_digest, c.digest.bytes.data())) {
      return Invalid(n.path, StrCat("bad chunkDigest: ",
                                    Sha256::Parse(e.chunk_digest).status().message()));
    }
    c.has_digest = true;
  }
  if (raw_chunks.size() >= limits.max_entries) return Invalid(n.path, "too many chunks");
  raw_chunks.push_back(c);
  n.chunks_count++;
  return absl::OkStatus();
}

// Checks that the chunks of the current file tile [0, size) and fills in implicit sizes.
absl::Status IndexBuilder::State::CheckFileChunks() {
  if (current_file == kNoEntry) return absl::OkStatus();
  Node& n = nodes[current_file];
  current_file = kNoEntry;
  if (n.size == 0) return absl::OkStatus();
  if (n.chunks_count == 0) return Invalid(n.path, "regular file without data chunks");
  uint64_t pos = 0;
  for (uint32_t i = 0; i < n.chunks_count; ++i) {
    RawChunk& c = raw_chunks[n.chunks_begin + i];
    if (c.file_offset != pos) {
      return Invalid(n.path, StrCat("chunks do not tile the file: chunk at ", c.file_offset,
                                    ", expected ", pos));
    }
    if (c.size == 0) c.size = n.size - pos;  // "to the end of the file"
    if (c.size > n.size - pos) return Invalid(n.path, "chunk runs past the end of the file");
    if (c.size > limits.max_chunk_size) {
      return Invalid(n.path, StrCat("chunk of ", c.size, " bytes is above the limit of ",
                                    limits.max_chunk_size));
    }
    pos += c.size;
  }
  if (pos != n.size) {
    return Invalid(n.path, StrCat("chunks cover ", pos, " of ", n.size, " bytes"));
  }
  // A single-chunk file may carry only the whole-file digest (zstd:chunked, old eStargz).
  RawChunk& first = raw_chunks[n.chunks_begin];
  if (n.chunks_count == 1 && !first.has_digest && current_has_digest) {
    first.digest = current_digest;
    first.has_digest = true;
  }
  return absl::OkStatus();
}

absl::Status IndexBuilder::Add(const TocEntry& e) {
  State& s = *s_;
  if (++s.added > s.limits.max_entries) {
    return absl::InvalidArgumentError(
        StrCat("TOC has more than ", s.limits.max_entries, " entries"));
  }
  RETURN_IF_ERROR(CleanPath(e.name, &s.scratch, s.limits.max_path_depth));
  if (e.type == "chunk") {
    if (s.current_file == kNoEntry || s.nodes[s.current_file].path != s.scratch) {
      return Invalid(e.name, "chunk entry does not follow its regular file");
    }
    return s.AddChunk(s.current_file, e);
  }
  RETURN_IF_ERROR(s.CheckFileChunks());

  Node n;
  if (e.type == "dir") n.type = S_IFDIR;
  else if (e.type == "reg") n.type = S_IFREG;
  else if (e.type == "symlink") n.type = S_IFLNK;
  else if (e.type == "hardlink") n.type = kHardlink;
  else if (e.type == "char") n.type = S_IFCHR;
  else if (e.type == "block") n.type = S_IFBLK;
  else if (e.type == "fifo") n.type = S_IFIFO;
  else return Invalid(e.name, StrCat("unknown type \"", e.type.substr(0, 32), "\""));

  if (e.mode < 0 || e.mode > 0xffffffffll) return Invalid(e.name, "bad mode");
  n.perm = static_cast<uint32_t>(e.mode) & 07777;
  ASSIGN_OR_RETURN(n.uid, ToU32(e.name, "uid", e.uid));
  ASSIGN_OR_RETURN(n.gid, ToU32(e.name, "gid", e.gid));
  ASSIGN_OR_RETURN(n.dev_major, ToU32(e.name, "devMajor", e.dev_major));
  ASSIGN_OR_RETURN(n.dev_minor, ToU32(e.name, "devMinor", e.dev_minor));
  n.mtime_sec = e.mtime_sec;
  n.mtime_nsec = e.mtime_nsec;
  if (n.type == S_IFREG) {
    if (e.size < 0 || static_cast<uint64_t>(e.size) > s.limits.max_file_size) {
      return Invalid(e.name, StrCat("file size ", e.size, " out of range"));
    }
    if (e.end_offset < 0) return Invalid(e.name, "negative endOffset");
    n.size = static_cast<uint64_t>(e.size);
    n.end_offset = static_cast<uint64_t>(e.end_offset);
  }
  if (n.type == S_IFLNK) {
    if (e.link_name.empty()) return Invalid(e.name, "symlink without a target");
    if (e.link_name.size() > kMaxLinkTarget) return Invalid(e.name, "symlink target too long");
    if (e.link_name.find('\0') != std::string_view::npos) {
      return Invalid(e.name, "NUL byte in symlink target");
    }
    n.link = s.arena.Copy(e.link_name);
  } else if (n.type == kHardlink) {
    std::string target;
    RETURN_IF_ERROR(CleanPath(e.link_name, &target, s.limits.max_path_depth));
    if (target.empty()) return Invalid(e.name, "hard link to the root directory");
    n.link = s.arena.Copy(target);
  }
  n.xattrs_begin = static_cast<uint32_t>(s.raw_xattrs.size());
  if (e.xattrs.size() > 0xffff) return Invalid(e.name, "too many xattrs");
  for (const auto& [name, value] : e.xattrs) {
    if (name.empty() || name.size() > 255 || name.find('\0') != std::string_view::npos) {
      return Invalid(e.name, "bad xattr name");
    }
    if (value.size() > 65536) return Invalid(e.name, "xattr value too large");
    s.raw_xattrs.emplace_back(s.arena.Copy(name), s.arena.Copy(value));
    n.xattrs_count++;
  }

  const uint32_t idx = static_cast<uint32_t>(s.nodes.size());
  uint32_t found = s.by_path.FindOrInsert(s.scratch, idx, s.key_of());
  if (found != idx) {
    Node& old = s.nodes[found];
    if (old.type == S_IFDIR && n.type == S_IFDIR) {  // a repeated directory: later wins
      n.path = old.path;
      old = n;
      return absl::OkStatus();
    }
    if (old.type != n.type) return Invalid(e.name, "duplicate entry with a different type");
    return Invalid(e.name, "duplicate entry");
  }
  n.path = s.arena.Copy(s.scratch);
  n.chunks_begin = static_cast<uint32_t>(s.raw_chunks.size());
  s.nodes.push_back(n);
  if (n.type == S_IFREG) {
    s.current_file = idx;
    s.current_has_digest = false;
    if (!e.digest.empty() && n.size > 0) {
      if (!ParseSha256Fast(e.digest, s.current_digest.bytes.data())) {
        return Invalid(e.name, StrCat("bad digest: ", Sha256::Parse(e.digest).status().message()));
      }
      s.current_has_digest = true;
    }
    RETURN_IF_ERROR(s.AddChunk(idx, e));
  }
  return absl::OkStatus();
}

absl::Status IndexBuilder::State::Resolve() {
  // Parents; missing ones are created as implicit directories (eStargz TOCs may omit them).
  // Consecutive entries mostly share their parent: remember the last one.
  std::string_view last_dir;
  uint32_t last_parent = kNoEntry;
  for (uint32_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].path.empty()) continue;  // the root
    std::string_view dir = DirName(nodes[i].path);
    if (last_parent != kNoEntry && dir == last_dir) {
      nodes[i].parent = last_parent;
      continue;
    }
    const uint32_t next = static_cast<uint32_t>(nodes.size());
    uint32_t pi = by_path.FindOrInsert(dir, next, key_of());
    if (pi == next) {
      if (nodes.size() >= limits.max_entries) {
        return absl::InvalidArgumentError(StrCat("TOC implies more than ", limits.max_entries,
                                                 " entries with its implicit directories"));
      }
      Node d;
      d.path = dir;  // a prefix of a path in the arena: stable
      nodes.push_back(d);
    } else if (nodes[pi].type != S_IFDIR) {
      return Invalid(nodes[i].path, "parent is not a directory");
    }
    nodes[i].parent = pi;
    last_dir = dir;
    last_parent = pi;
  }
  // Hard links, resolved to their final target. Every link on a chain is resolved once
  // (linear time however the chains are ordered); kVisiting marks the chain being followed.
  constexpr uint32_t kVisiting = kNoEntry - 1;
  std::vector<uint32_t> chain;
  for (uint32_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].type != kHardlink || nodes[i].target != kNoEntry) continue;
    chain.clear();
    uint32_t cur = i;
    while (nodes[cur].type == kHardlink && nodes[cur].target == kNoEntry) {
      nodes[cur].target = kVisiting;
      chain.push_back(cur);
      uint32_t t = by_path.Find(nodes[cur].link, key_of());
      if (t == PathTable::kAbsent) {
        return Invalid(nodes[cur].path, StrCat("hard link target \"",
                                               nodes[cur].link.substr(0, 256), "\" not found"));
      }
      cur = t;
    }
    if (nodes[cur].type == kHardlink) {
      if (nodes[cur].target == kVisiting) return Invalid(nodes[i].path, "hard link loop");
      cur = nodes[cur].target;  // joins a chain resolved earlier
    }
    if (nodes[cur].type == S_IFDIR) return Invalid(nodes[i].path, "hard link to a directory");
    for (uint32_t link : chain) {
      nodes[link].target = cur;
      nodes[cur].nlink++;
    }
  }
  return absl::OkStatus();
}

// Blob extent of every chunk: [offset, next boundary), where the boundaries are the chunk
// offsets, explicit end offsets and the TOC offset (see format/estargz.md).
absl::Status IndexBuilder::State::ComputeCompressedSizes() {
  std::vector<uint64_t> bounds;
  bounds.reserve(raw_chunks.size() + 1);
  for (const RawChunk& c : raw_chunks) {
    if (c.offset != 0) bounds.push_back(c.offset);
    if (c.end_offset != 0) bounds.push_back(c.end_offset);
  }
  for (const Node& n : nodes) {
    if (n.end_offset != 0) bounds.push_back(n.end_offset);
  }
  bounds.push_back(toc_offset);
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  for (const Node& n : nodes) {
    for (uint32_t k = 0; k < n.chunks_count; ++k) {
      RawChunk& c = raw_chunks[n.chunks_begin + k];
      if (c.offset == 0) continue;  // a zeros chunk without frames
      uint64_t end;
      if (c.end_offset > c.offset) {
        end = c.end_offset;
      } else if (k + 1 == n.chunks_count && n.end_offset > c.offset) {
        end = n.end_offset;
      } else {
        end = *std::upper_bound(bounds.begin(), bounds.end(), c.offset);
      }
      if (end > toc_offset) return Invalid(n.path, "chunk data runs into the TOC");
      if (end - c.offset > UINT32_MAX) return Invalid(n.path, "compressed chunk too large");
      c.end_offset = end;  // from here on: the chunk's end
    }
  }
  return absl::OkStatus();
}

// Assigns entry ids breadth-first with each directory's children contiguous and sorted by
// name, and writes the flat arrays.
absl::StatusOr<LayerIndex> IndexBuilder::State::Layout(uint32_t root) {
  const uint32_t n = static_cast<uint32_t>(nodes.size());
  std::vector<std::string_view> base(n);
  std::vector<uint32_t> start(n + 2, 0);
  for (uint32_t i = 0; i < n; ++i) {
    base[i] = BaseName(nodes[i].path);
    if (i != root) start[nodes[i].parent + 2]++;
  }
  for (uint32_t i = 2; i < n + 2; ++i) start[i] += start[i - 1];
  std::vector<uint32_t> order(n);
  for (uint32_t i = 0; i < n; ++i) {
    if (i != root) order[start[nodes[i].parent + 1]++] = i;
  }
  auto by_name = [&base](uint32_t a, uint32_t b) { return base[a] < base[b]; };
  std::vector<uint32_t> queue;
  queue.reserve(n);
  queue.push_back(root);
  nodes[root].id = 0;
  std::vector<uint32_t> subdirs(n, 0);
  for (size_t q = 0; q < queue.size(); ++q) {
    uint32_t d = queue[q];
    auto first = order.begin() + start[d], last = order.begin() + start[d + 1];
    if (!std::is_sorted(first, last, by_name)) std::sort(first, last, by_name);
    for (auto c = first; c != last; ++c) {
      nodes[*c].id = static_cast<uint32_t>(queue.size());
      queue.push_back(*c);
      if (nodes[*c].type == S_IFDIR) subdirs[d]++;
    }
  }

  LayerIndex index;
  index.format_ = format;
  index.toc_offset_ = toc_offset;
  size_t string_bytes = 0;
  for (uint32_t i = 0; i < n; ++i) string_bytes += base[i].size() + nodes[i].link.size();
  for (const auto& [k, v] : raw_xattrs) string_bytes += k.size() + v.size();
  if (string_bytes > UINT32_MAX) return absl::InvalidArgumentError("TOC strings too large");
  index.strings_.reserve(string_bytes);
  auto add_str = [&index](std::string_view v) {
    StrRef r{static_cast<uint32_t>(index.strings_.size()), static_cast<uint32_t>(v.size())};
    index.strings_.append(v);
    return r;
  };
  index.entries_.resize(n);
  index.chunks_.reserve(raw_chunks.size());
  index.xattrs_.reserve(raw_xattrs.size());
  index.children_.resize(n - 1);
  for (uint32_t k = 0; k + 1 < n; ++k) index.children_[k] = k + 1;
  for (uint32_t id = 0; id < n; ++id) {
    const Node& node = nodes[queue[id]];
    Entry& en = index.entries_[id];
    en.name = add_str(base[queue[id]]);
    en.parent = nodes[node.parent].id;
    en.inode = id;
    uint32_t kids = start[queue[id] + 1] - start[queue[id]];
    if (kids > 0) {
      en.children_begin = nodes[order[start[queue[id]]]].id - 1;
      en.children_count = kids;
    }
    if (node.type == kHardlink) continue;  // second pass
    en.mode = node.type | node.perm;
    en.uid = node.uid;
    en.gid = node.gid;
    en.mtime_sec = node.mtime_sec;
    en.mtime_nsec = node.mtime_nsec;
    en.dev_major = node.dev_major;
    en.dev_minor = node.dev_minor;
    en.nlink = node.type == S_IFDIR ? 2 + subdirs[queue[id]] : node.nlink;
    if (node.type == S_IFREG) {
      en.size = node.size;
      index.total_file_bytes_ += node.size;
    }
    if (node.type == S_IFLNK) {
      en.link = add_str(node.link);
      en.size = node.link.size();
    }
    en.xattrs_begin = static_cast<uint32_t>(index.xattrs_.size());
    en.xattrs_count = node.xattrs_count;
    for (uint32_t x = 0; x < node.xattrs_count; ++x) {
      const auto& [k, v] = raw_xattrs[node.xattrs_begin + x];
      index.xattrs_.push_back(Xattr{add_str(k), add_str(v)});
    }
    en.chunks_begin = static_cast<uint32_t>(index.chunks_.size());
    en.chunks_count = node.chunks_count;
    for (uint32_t k = 0; k < node.chunks_count; ++k) {
      const RawChunk& rc = raw_chunks[node.chunks_begin + k];
      Chunk c;
      c.compressed_offset = rc.offset;
      c.compressed_size = rc.offset == 0 ? 0 : static_cast<uint32_t>(rc.end_offset - rc.offset);
      c.file_offset = rc.file_offset;
      c.size = static_cast<uint32_t>(rc.size);
      c.inner_offset = rc.inner_offset;
      c.entry = id;
      c.digest = rc.digest;
      c.has_digest = rc.has_digest;
      c.zeros = rc.zeros;
      index.chunks_.push_back(c);
    }
  }
  for (uint32_t id = 0; id < n; ++id) {  // hard links share their target's inode
    const Node& node = nodes[queue[id]];
    if (node.type != kHardlink) continue;
    Entry& en = index.entries_[id];
    const Entry& target = index.entries_[nodes[node.target].id];
    Entry copy = target;
    copy.name = en.name;
    copy.parent = en.parent;
    copy.children_begin = copy.children_count = 0;
    en = copy;
  }
  EntryId landmark = index.Lookup(kRootEntry, ".prefetch.landmark");
  if (landmark != kNoEntry && index.entries_[landmark].chunks_count > 0) {
    index.prefetch_landmark_ = index.ChunksOf(landmark)[0].compressed_offset;
  }
  index.no_prefetch_landmark_ = index.Lookup(kRootEntry, ".no.prefetch.landmark") != kNoEntry;
  return index;
}

absl::StatusOr<LayerIndex> IndexBuilder::Finish() {
  State& s = *s_;
  RETURN_IF_ERROR(s.CheckFileChunks());
  if (s.toc_offset > s.blob_size) {
    return absl::InvalidArgumentError("TOC offset is beyond the end of the blob");
  }
  uint32_t root;
  const uint32_t next = static_cast<uint32_t>(s.nodes.size());
  root = s.by_path.FindOrInsert(std::string_view(), next, s.key_of());
  if (root == next) {
    s.nodes.push_back(Node());
  } else {
    if (s.nodes[root].type != S_IFDIR) return Invalid("/", "the root is not a directory");
  }
  RETURN_IF_ERROR(s.Resolve());
  RETURN_IF_ERROR(s.ComputeCompressedSizes());
  return s.Layout(root);
}

}  // namespace lazysnap

// IndexBuilder: validation of TOC entries, parents and hard links (see toc.h); the layout of
// the finished index is in index_layout.cc.
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "base/status_macros.h"
#include "base/strings.h"
#include "format/index_builder_internal.h"

namespace lazysnap {
namespace {

using namespace index_internal;  // NOLINT

constexpr size_t kMaxNameComponent = 255;
constexpr size_t kMaxLinkTarget = 4095;

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

absl::StatusOr<uint32_t> ToU32(std::string_view name, const char* field, int64_t v) {
  if (v < 0 || v > static_cast<int64_t>(UINT32_MAX)) {
    return Invalid(name, StrCat(field, " out of range: ", v));
  }
  return static_cast<uint32_t>(v);
}

}  // namespace

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

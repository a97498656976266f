// IndexBuilder, second half: chunk extents and the layout of the finished LayerIndex.
#include <sys/stat.h>

#include <algorithm>

#include "base/strings.h"
#include "format/index_builder_internal.h"

namespace lazysnap {

using namespace index_internal;  // NOLINT

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

}  // namespace lazysnap

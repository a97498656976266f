// IndexBuilder, second half: chunk extents and the layout of the finished LayerIndex.
#include <sys/random.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>

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
  // The fingerprint key (format/index.md): unpredictable to whoever serves the blob.
  auto& secret = index.digest_key_.bytes;
  for (size_t got = 0; got < secret.size();) {
    const ssize_t r = getrandom(secret.data() + got, secret.size() - got, 0);
    if (r > 0) {
      got += static_cast<size_t>(r);
    } else if (errno != EINTR) {
      return absl::InternalError(StrCat("getrandom: ", strerror(errno)));
    }
  }
  size_t string_bytes = 0;
  for (uint32_t i = 0; i < n; ++i) {
    string_bytes += base[i].size() + (nodes[i].type == S_IFLNK ? nodes[i].link.size() : 0);
  }
  for (const auto& [k, v] : raw_xattrs) string_bytes += k.size() + v.size();
  if (string_bytes > UINT32_MAX) return absl::InvalidArgumentError("TOC strings too large");
  index.strings_.reserve(string_bytes);
  auto add_str = [&index](std::string_view v) {
    StrRef r{static_cast<uint32_t>(index.strings_.size()), static_cast<uint32_t>(v.size())};
    index.strings_.append(v);
    return r;
  };
  index.entries_.resize(n);
  // Names first, in id order: a name ends where the next one begins (LayerIndex::name).
  for (uint32_t id = 0; id < n; ++id) index.entries_[id].name_offset = add_str(base[queue[id]]).offset;
  index.names_end_ = static_cast<uint32_t>(index.strings_.size());
  index.chunks_.reserve(raw_chunks.size());
  index.xattrs_.reserve(raw_xattrs.size());
  // Owner + xattr sets, interned: most entries of a layer share a handful.
  std::unordered_map<std::string, uint32_t> attr_ids;
  std::string key;
  uint32_t last_uid = 0, last_gid = 0, last_plain = kNoEntry;  // the last set without xattrs
  auto intern_attrs = [&](const Node& node) -> uint32_t {
    const bool plain = node.xattrs_count == 0;
    if (plain && last_plain != kNoEntry && node.uid == last_uid && node.gid == last_gid) {
      return last_plain;
    }
    key.assign(reinterpret_cast<const char*>(&node.uid), sizeof node.uid);
    key.append(reinterpret_cast<const char*>(&node.gid), sizeof node.gid);
    for (uint32_t x = 0; x < node.xattrs_count; ++x) {
      const auto& [k, v] = raw_xattrs[node.xattrs_begin + x];
      const uint32_t sizes[2] = {static_cast<uint32_t>(k.size()), static_cast<uint32_t>(v.size())};
      key.append(reinterpret_cast<const char*>(sizes), sizeof sizes);
      key.append(k);
      key.append(v);
    }
    auto [it, added] = attr_ids.try_emplace(key, static_cast<uint32_t>(index.attrs_.size()));
    if (added) {
      EntryAttrs a;
      a.uid = node.uid;
      a.gid = node.gid;
      a.xattrs_begin = static_cast<uint32_t>(index.xattrs_.size());
      a.xattrs_count = node.xattrs_count;
      for (uint32_t x = 0; x < node.xattrs_count; ++x) {
        const auto& [k, v] = raw_xattrs[node.xattrs_begin + x];
        index.xattrs_.push_back(Xattr{add_str(k), add_str(v)});
      }
      index.attrs_.push_back(a);
    }
    if (plain) last_uid = node.uid, last_gid = node.gid, last_plain = it->second;
    return it->second;
  };
  // Mtimes, interned: a layer's files share a few hundred (eStargz keeps seconds).
  struct MtimeHash {
    size_t operator()(const std::pair<int64_t, uint32_t>& m) const {
      return std::hash<int64_t>()(m.first * 1000000007 + m.second);
    }
  };
  std::unordered_map<std::pair<int64_t, uint32_t>, uint32_t, MtimeHash> mtime_ids;
  std::pair<int64_t, uint32_t> last_mtime{0, 0};
  uint32_t last_mtime_id = kNoEntry;
  auto intern_mtime = [&](const Node& node) -> uint32_t {
    const std::pair<int64_t, uint32_t> m{node.mtime_sec, node.mtime_nsec};
    if (last_mtime_id != kNoEntry && m == last_mtime) return last_mtime_id;
    auto [it, added] = mtime_ids.try_emplace(m, static_cast<uint32_t>(index.mtime_sec_.size()));
    if (added) {
      index.mtime_sec_.push_back(m.first);
      index.mtime_nsec_.push_back(m.second);
    }
    last_mtime = m;
    last_mtime_id = it->second;
    return it->second;
  };
  for (uint32_t id = 0; id < n; ++id) {
    const Node& node = nodes[queue[id]];
    Entry& en = index.entries_[id];
    en.parent = nodes[node.parent].id;
    en.inode = id;
    if (node.type == kHardlink) continue;  // second pass
    en.mode = static_cast<uint16_t>(node.type | node.perm);
    en.attrs = intern_attrs(node);
    en.mtime = intern_mtime(node);
    if (node.type == S_IFDIR) {
      const uint32_t nlink = 2 + subdirs[queue[id]];
      en.nlink = nlink > 0xffff ? 1 : static_cast<uint16_t>(nlink);  // 1: "unknown", as ext4
      const uint32_t kids = start[queue[id] + 1] - start[queue[id]];
      en.children_begin = kids > 0 ? nodes[order[start[queue[id]]]].id : 0;
      en.children_count = kids;
    } else {
      en.nlink = static_cast<uint16_t>(std::min<uint32_t>(node.nlink, 0xffff));
    }
    if (node.type == S_IFCHR || node.type == S_IFBLK) {
      en.dev_major = node.dev_major;
      en.dev_minor = node.dev_minor;
    }
    if (node.type == S_IFLNK) {
      const StrRef link = add_str(node.link);
      en.link_offset = link.offset;
      en.link_size = link.size;
      en.size = node.link.size();
    }
    if (node.type != S_IFREG) continue;
    en.size = node.size;
    index.total_file_bytes_ += node.size;
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
      if (rc.has_digest) c.digest = ChunkDigest::Of(index.digest_key_, rc.digest);
      c.has_digest = rc.has_digest;
      c.zeros = rc.zeros;
      index.chunks_.push_back(c);
    }
  }
  index.attrs_.shrink_to_fit();
  index.mtime_sec_.shrink_to_fit();
  index.mtime_nsec_.shrink_to_fit();
  index.xattrs_.shrink_to_fit();
  index.strings_.shrink_to_fit();
  for (uint32_t id = 0; id < n; ++id) {  // hard links share their target's inode
    const Node& node = nodes[queue[id]];
    if (node.type != kHardlink) continue;
    Entry& en = index.entries_[id];
    Entry copy = index.entries_[nodes[node.target].id];  // never a directory (Resolve)
    copy.name_offset = en.name_offset;
    copy.parent = en.parent;
    en = copy;
  }
  EntryId landmark = index.Lookup(kRootEntry, ".prefetch.landmark");
  if (landmark != kNoEntry && !index.ChunksOf(landmark).empty()) {
    index.prefetch_landmark_ = index.ChunksOf(landmark)[0].compressed_offset;
  }
  index.no_prefetch_landmark_ = index.Lookup(kRootEntry, ".no.prefetch.landmark") != kNoEntry;
  return index;
}

}  // namespace lazysnap

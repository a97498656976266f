#include "format/index.h"

#include <algorithm>

namespace lazysnap {

std::string LayerIndex::Path(EntryId id) const {
  std::vector<std::string_view> parts;
  for (EntryId cur = id; cur != kRootEntry && cur < entries_.size();
       cur = entries_[cur].parent) {
    parts.push_back(name(cur));
    if (parts.size() > entries_.size()) break;  // defensive: malformed parent chain
  }
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (!out.empty()) out.push_back('/');
    out.append(*it);
  }
  return out;
}

EntryId LayerIndex::Lookup(EntryId dir, std::string_view n) const {
  if (dir >= entries_.size()) return kNoEntry;
  const IdRange kids = ChildrenOf(dir);
  EntryId lo = kids.first, hi = kids.last;  // first child whose name is >= n, by bisection
  while (lo < hi) {
    const EntryId mid = lo + (hi - lo) / 2;
    if (name(mid) < n) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo == kids.last || name(lo) != n) return kNoEntry;
  return lo;
}

EntryId LayerIndex::LookupPath(std::string_view path) const {
  if (entries_.empty()) return kNoEntry;
  EntryId cur = kRootEntry;
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    cur = Lookup(cur, part);
    if (cur == kNoEntry) return kNoEntry;
  }
  return cur;
}

uint32_t LayerIndex::ChunkAt(EntryId file, uint64_t offset) const {
  auto cs = ChunksOf(file);
  auto it = std::upper_bound(cs.begin(), cs.end(), offset,
                             [](uint64_t off, const Chunk& c) { return off < c.file_offset; });
  const Entry& e = entries_[file];
  if (!S_ISREG(e.mode)) return static_cast<uint32_t>(chunks_.size());
  if (it == cs.begin() || offset >= e.size) return e.chunks_begin + e.chunks_count;
  return e.chunks_begin + static_cast<uint32_t>(it - cs.begin() - 1);
}

size_t LayerIndex::MemoryUsage() const {
  return sizeof(*this) + entries_.capacity() * sizeof(Entry) +
         chunks_.capacity() * sizeof(Chunk) + xattrs_.capacity() * sizeof(Xattr) +
         attrs_.capacity() * sizeof(EntryAttrs) + mtime_sec_.capacity() * sizeof(int64_t) +
         mtime_nsec_.capacity() * sizeof(uint32_t) + strings_.capacity();
}

}  // namespace lazysnap

#include "fusefs/layer_view.h"

#include <sys/sysmacros.h>

#include <algorithm>

#include "base/strings.h"

namespace lazysnap {
namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr std::string_view kOpaqueValue = "y";
constexpr std::string_view kLandmarks[] = {".prefetch.landmark", ".no.prefetch.landmark"};
constexpr uint32_t kBlockSize = 4096;

bool IsWhiteoutName(std::string_view name) {
  return name.starts_with(kWhiteoutPrefix) && name != kOpaqueMarker;
}

}  // namespace

LayerView::LayerView(const LayerIndex* index, OpaqueXattr opaque) : index_(index) {
  if (opaque != OpaqueXattr::kUser) opaque_names_.push_back("trusted.overlay.opaque");
  if (opaque != OpaqueXattr::kTrusted) opaque_names_.push_back("user.overlay.opaque");
}

absl::StatusOr<EntryId> LayerView::EntryOf(Ino ino) const {
  if (ino < 1 || ino > index_->size()) {
    return absl::NotFoundError(StrCat("no inode ", ino));
  }
  return static_cast<EntryId>(ino - 1);
}

bool LayerView::IsWhiteout(EntryId id) const {
  return id != kRootEntry && IsWhiteoutName(index_->name(id));
}

bool LayerView::IsOpaque(EntryId dir) const {
  return S_ISDIR(index_->entry(dir).mode) && index_->Lookup(dir, kOpaqueMarker) != kNoEntry;
}

bool LayerView::HiddenName(EntryId dir, std::string_view name) const {
  if (name.starts_with(kWhiteoutPrefix)) return true;
  if (dir == kRootEntry) {
    for (std::string_view l : kLandmarks) {
      if (name == l) return true;
    }
  }
  return false;
}

absl::StatusOr<std::optional<Ino>> LayerView::Lookup(Ino dir, std::string_view name) const {
  absl::StatusOr<EntryId> d = EntryOf(dir);
  if (!d.ok()) return d.status();
  if (!S_ISDIR(index_->entry(*d).mode)) {
    return absl::FailedPreconditionError("not a directory");
  }
  if (HiddenName(*d, name)) return std::nullopt;
  EntryId id = index_->Lookup(*d, name);
  if (id != kNoEntry) return Ino{index_->entry(id).inode} + 1;
  std::string wh = StrCat(kWhiteoutPrefix, name);
  id = index_->Lookup(*d, wh);
  if (id != kNoEntry) return Ino{id} + 1;
  return std::nullopt;
}

struct stat LayerView::Stat(Ino ino) const {
  struct stat st = {};
  const EntryId id = static_cast<EntryId>(ino - 1);
  st.st_ino = ino;
  st.st_blksize = kBlockSize;
  if (IsWhiteout(id)) {
    // As stargz-snapshotter: an overlayfs whiteout, mode S_IFCHR only, owner 0:0, rdev 0.
    const Entry& w = index_->entry(id);
    st.st_mode = S_IFCHR;
    st.st_nlink = 1;
    st.st_mtim = index_->mtime(id);
    st.st_atim = st.st_ctim = st.st_mtim;
    return st;
  }
  const EntryId data = index_->entry(id).inode;
  const Entry& e = index_->entry(data);
  const EntryAttrs& attrs = index_->attrs(data);
  st.st_mode = e.mode;
  st.st_nlink = std::max<uint32_t>(e.nlink, 1);
  st.st_uid = attrs.uid;
  st.st_gid = attrs.gid;
  if (S_ISCHR(e.mode) || S_ISBLK(e.mode)) st.st_rdev = makedev(e.dev_major, e.dev_minor);
  if (S_ISREG(e.mode)) {
    st.st_size = static_cast<off_t>(e.size);
  } else if (S_ISLNK(e.mode)) {
    st.st_size = static_cast<off_t>(e.link_size);
  }
  st.st_blocks = (st.st_size + 511) / 512;
  st.st_mtim = index_->mtime(data);
  st.st_atim = st.st_ctim = st.st_mtim;
  return st;
}

void LayerView::ReadDir(Ino dir, uint64_t start, const DirFn& fn) const {
  const EntryId d = static_cast<EntryId>(dir - 1);
  if (start == 0 && !fn(".", dir, 1)) return;
  if (start <= 1 && !fn("..", Ino{index_->entry(d).parent} + 1, 2)) return;
  const auto children = index_->ChildrenOf(d);
  for (uint64_t i = start < 2 ? 0 : start - 2; i < children.size(); i++) {
    const EntryId c = children[i];
    std::string_view name = index_->name(c);
    Ino ino = Ino{index_->entry(c).inode} + 1;
    if (HiddenName(d, name)) {
      if (!IsWhiteoutName(name)) continue;
      name.remove_prefix(kWhiteoutPrefix.size());
      if (name.empty() || index_->Lookup(d, name) != kNoEntry) continue;  // a real one wins
      ino = Ino{c} + 1;
    }
    if (!fn(name, ino, i + 3)) return;
  }
}

absl::StatusOr<std::string_view> LayerView::Readlink(Ino ino) const {
  const EntryId id = static_cast<EntryId>(ino - 1);
  if (IsWhiteout(id)) return absl::InvalidArgumentError("not a symlink");
  const EntryId data = index_->entry(id).inode;
  if (!S_ISLNK(index_->entry(data).mode)) return absl::InvalidArgumentError("not a symlink");
  return index_->link(data);
}

std::optional<std::string_view> LayerView::GetXattr(Ino ino, std::string_view name) const {
  const EntryId id = static_cast<EntryId>(ino - 1);
  if (IsWhiteout(id)) return std::nullopt;
  const EntryId data = index_->entry(id).inode;
  if (IsOpaque(data)) {
    for (std::string_view n : opaque_names_) {
      if (n == name) return kOpaqueValue;
    }
  }
  for (const Xattr& x : index_->XattrsOf(data)) {
    if (index_->str(x.name) == name) return index_->str(x.value);
  }
  return std::nullopt;
}

std::string LayerView::ListXattrs(Ino ino) const {
  std::string out;
  const EntryId id = static_cast<EntryId>(ino - 1);
  if (IsWhiteout(id)) return out;
  const EntryId data = index_->entry(id).inode;
  const bool opaque = IsOpaque(data);
  if (opaque) {
    for (std::string_view n : opaque_names_) StrAppend(&out, n, std::string_view("\0", 1));
  }
  for (const Xattr& x : index_->XattrsOf(data)) {
    std::string_view n = index_->str(x.name);
    if (opaque && std::find(opaque_names_.begin(), opaque_names_.end(), n) != opaque_names_.end()) {
      continue;  // listed once
    }
    StrAppend(&out, n, std::string_view("\0", 1));
  }
  return out;
}

struct statvfs LayerView::StatFs() const {
  struct statvfs s = {};
  s.f_bsize = kBlockSize;
  s.f_frsize = kBlockSize;
  s.f_blocks = (index_->total_file_bytes() + kBlockSize - 1) / kBlockSize;
  s.f_files = index_->size();
  s.f_namemax = 255;
  s.f_flag = ST_RDONLY;
  return s;
}

}  // namespace lazysnap

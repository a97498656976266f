// LayerView: the POSIX view of one layer's LayerIndex as the FUSE filesystem presents it to
// overlayfs, without any FUSE in it (so it is unit-tested directly).
//
// Inode numbers are entry ids + 1 (the root is 1, FUSE_ROOT_ID); a hard link is the inode of
// the entry it links to. What differs from the raw index, as stargz-snapshotter does it
// (fs/layer/node.go):
//   - `.wh.NAME` is not visible under its own name; it appears as NAME, a character device
//     0/0 with mode 0 and owner 0:0 (an overlayfs whiteout), unless the directory also has a
//     real NAME (which then wins).
//   - `.wh..wh..opq` is hidden; its directory reports the opaque xattr(s) with value "y".
//   - `.prefetch.landmark` and `.no.prefetch.landmark` are hidden in the root directory.
//   - Every lookup of a name starting with `.wh.` fails.
// The TOC file (`stargz.index.json`) is not an entry of its own TOC, so it never appears.
//
// Immutable; every method is thread-safe. The index must outlive the view.
#ifndef LAZYSNAP_FUSEFS_LAYER_VIEW_H_
#define LAZYSNAP_FUSEFS_LAYER_VIEW_H_

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "format/index.h"

namespace lazysnap {

using Ino = uint64_t;
inline constexpr Ino kRootIno = 1;

// Which xattr names mark an opaque directory.
enum class OpaqueXattr { kTrusted, kUser, kBoth };

class LayerView {
 public:
  LayerView(const LayerIndex* index, OpaqueXattr opaque = OpaqueXattr::kTrusted);

  const LayerIndex& index() const { return *index_; }

  // The entry inode `ino` names; NotFound for an inode this layer does not have.
  absl::StatusOr<EntryId> EntryOf(Ino ino) const;
  // The entry holding the data and attributes of `ino` (a hard link's target).
  const Entry& DataEntry(Ino ino) const { return index_->entry(index_->entry(ino - 1).inode); }

  // The inode of `name` in directory `dir`: nullopt if there is none (a cacheable negative
  // answer); NotFound for a bad `dir`, FailedPrecondition ("not a directory") if `dir` is not
  // one.
  absl::StatusOr<std::optional<Ino>> Lookup(Ino dir, std::string_view name) const;

  // The attributes of `ino` (st_ino, mode, nlink, owner, rdev, size, blocks, times).
  // `ino` must be valid (EntryOf ok).
  struct stat Stat(Ino ino) const;
  bool IsWhiteout(EntryId id) const;
  bool IsOpaque(EntryId dir) const;

  // Directory listing with stable positions for readdir offsets: position 0 is ".", 1 is
  // "..", 2 + i is the i-th child in the index (hidden children are skipped, but keep their
  // positions). Calls `fn(name, ino, next_position)` for each visible entry at or after
  // `start` until it returns false. `dir` must be a valid directory.
  using DirFn = std::function<bool(std::string_view name, Ino ino, uint64_t next)>;
  void ReadDir(Ino dir, uint64_t start, const DirFn& fn) const;

  // Symlink target; InvalidArgument if `ino` is not a symlink.
  absl::StatusOr<std::string_view> Readlink(Ino ino) const;

  // Value of xattr `name` of `ino` (including the opaque marker); nullopt if it has none.
  std::optional<std::string_view> GetXattr(Ino ino, std::string_view name) const;
  // The xattr names of `ino`, each followed by a NUL (listxattr(2) format).
  std::string ListXattrs(Ino ino) const;

  // statfs(2) answer: block counts from the layer's file bytes, inode counts from its entries.
  struct statvfs StatFs() const;

 private:
  // Whether child `id` of `dir` is hidden under its own name.
  bool HiddenName(EntryId dir, std::string_view name) const;
  const LayerIndex* index_;
  std::vector<std::string_view> opaque_names_;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_FUSEFS_LAYER_VIEW_H_

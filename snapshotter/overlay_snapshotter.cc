#include "snapshotter/overlay_snapshotter.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_join.h"
#include "base/errors.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "snapshotter/fs_util.h"

namespace lazysnap {
namespace {

absl::Status MkdirMode(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) != 0) return ErrnoToStatus(errno, StrCat("mkdir ", path));
  // Exact mode whatever the umask: containerd's suite checks the root is 0755.
  if (chmod(path.c_str(), mode) != 0) return ErrnoToStatus(errno, StrCat("chmod ", path));
  return absl::OkStatus();
}

// Prefixes the message, keeping the code.
}  // namespace

absl::Status ValidateLabels(const Labels& labels) {
  constexpr size_t kMaxSize = 4096;
  for (const auto& [k, v] : labels) {
    if (k.size() + v.size() > kMaxSize) {
      return absl::InvalidArgumentError(
          StrCat("label key and value greater than maximum size (", kMaxSize, " bytes), key: ",
                 k.substr(0, 64), ": invalid argument"));
    }
  }
  return absl::OkStatus();
}

OverlaySnapshotter::OverlaySnapshotter(std::string root, int lock_fd,
                                       std::unique_ptr<MetadataStore> ms,
                                       std::unique_ptr<RemoteLayerMounter> mounter,
                                       bool index_off)
    : root_(std::move(root)),
      lock_fd_(lock_fd),
      ms_(std::move(ms)),
      mounter_(std::move(mounter)),
      index_off_(index_off) {}

OverlaySnapshotter::~OverlaySnapshotter() { close(lock_fd_); }

absl::StatusOr<std::unique_ptr<OverlaySnapshotter>> OverlaySnapshotter::Open(
    const std::string& root, std::unique_ptr<RemoteLayerMounter> mounter) {
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) return absl::InternalError(StrCat("create ", root, ": ", ec.message()));
  if (chmod(root.c_str(), 0700) != 0) return ErrnoToStatus(errno, StrCat("chmod ", root));
  const std::string lock_path = StrCat(root, "/lock");
  int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) return ErrnoToStatus(errno, StrCat("open ", lock_path));
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(lock_fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          StrCat("state directory ", root, " is in use by another lazysnapd"));
    }
    return ErrnoToStatus(err, StrCat("lock ", lock_path));
  }
  // From here on, lock_fd is closed by the snapshotter or by this guard on error.
  std::unique_ptr<int, void (*)(int*)> guard(&lock_fd, [](int* fd) { close(*fd); });
  const std::string snapshots = StrCat(root, "/snapshots");
  if (mkdir(snapshots.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, StrCat("mkdir ", snapshots));
  }
  ASSIGN_OR_RETURN(auto ms, MetadataStore::Open(StrCat(root, "/metadata.db")));
  const bool index_off = access("/sys/module/overlay/parameters/index", F_OK) == 0;
  guard.release();
  return std::unique_ptr<OverlaySnapshotter>(
      new OverlaySnapshotter(root, lock_fd, std::move(ms), std::move(mounter), index_off));
}

std::string OverlaySnapshotter::SnapshotDir(const std::string& id) const {
  return StrCat(root_, "/snapshots/", id);
}

absl::StatusOr<Info> OverlaySnapshotter::Stat(const std::string& key) {
  ASSIGN_OR_RETURN(auto txn, ms_->Begin(false));
  ASSIGN_OR_RETURN(SnapshotEntry e, txn->GetInfo(key));
  return e.info;
}

absl::StatusOr<Info> OverlaySnapshotter::Update(const Info& info,
                                                const std::vector<std::string>& fieldpaths) {
  RETURN_IF_ERROR(ValidateLabels(info.labels));
  ASSIGN_OR_RETURN(auto txn, ms_->Begin(true));
  ASSIGN_OR_RETURN(Info updated, txn->UpdateInfo(info, fieldpaths));
  RETURN_IF_ERROR(txn->Commit());
  return updated;
}

absl::StatusOr<Usage> OverlaySnapshotter::GetUsage(const std::string& key) {
  SnapshotEntry e;
  {
    ASSIGN_OR_RETURN(auto txn, ms_->Begin(false));
    ASSIGN_OR_RETURN(e, txn->GetInfo(key));
  }
  if (e.info.kind == Kind::kActive) return DiskUsage(UpperPath(e.id));
  return e.usage;
}

absl::StatusOr<std::vector<Mount>> OverlaySnapshotter::Prepare(const std::string& key,
                                                               const std::string& parent,
                                                               const Labels& labels) {
  SnapshotRecord rec;
  ASSIGN_OR_RETURN(std::vector<Mount> mounts,
                   CreateSnapshot(Kind::kActive, key, parent, labels, &rec));
  auto target = labels.find(kTargetSnapshotLabel);
  if (target != labels.end() && !LayerDigestFromLabels(labels).empty()) {
    ASSIGN_OR_RETURN(bool remote, TryRemote(key, rec, labels));
    if (remote) {
      return absl::AlreadyExistsError(
          StrCat("target snapshot \"", target->second, "\": already exists"));
    }
  }
  return mounts;
}

absl::StatusOr<std::vector<Mount>> OverlaySnapshotter::View(const std::string& key,
                                                            const std::string& parent,
                                                            const Labels& labels) {
  SnapshotRecord rec;
  return CreateSnapshot(Kind::kView, key, parent, labels, &rec);
}

absl::StatusOr<bool> OverlaySnapshotter::TryRemote(const std::string& key,
                                                   const SnapshotRecord& rec,
                                                   const Labels& labels) {
  const std::string& target = labels.at(kTargetSnapshotLabel);
  const std::string digest = LayerDigestFromLabels(labels);
  absl::Status mounted = mounter_->Mount(digest, labels, UpperPath(rec.id));
  if (!mounted.ok()) {
    ++remote_fallbacks_;
    LZ_LOG(kInfo, "remote snapshot: layer ", digest, " for ", target,
           " not available remotely, falling back to an ordinary snapshot: ", mounted.ToString());
    return false;
  }
  Labels committed = labels;
  committed[kRemoteLabel] = kRemoteLabelValue;
  absl::Status s = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(auto txn, ms_->Begin(true));
    RETURN_IF_ERROR(txn->CommitActive(key, target, Usage{}, committed).status());
    return txn->Commit();
  }();
  if (s.ok() || absl::IsAlreadyExists(s)) {
    ++remote_prepared_;
    LZ_LOG(kInfo, "remote snapshot: prepared ", target, " (layer ", digest, ")");
    return true;
  }
  // No fallback: the filesystem may have used the directory. The key stays, mounted, until
  // containerd removes it.
  LZ_LOG(kWarning, "remote snapshot: failed to commit ", target, ": ", s.ToString());
  return Annotate(s, StrCat("commit remote snapshot ", target));
}

absl::StatusOr<std::vector<Mount>> OverlaySnapshotter::CreateSnapshot(Kind kind,
                                                                      const std::string& key,
                                                                      const std::string& parent,
                                                                      const Labels& labels,
                                                                      SnapshotRecord* record) {
  RETURN_IF_ERROR(ValidateLabels(labels));
  RETURN_IF_ERROR(CheckRemoteLayers(parent));
  ASSIGN_OR_RETURN(auto txn, ms_->Begin(true));
  std::string tmpl = StrCat(root_, "/snapshots/new-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {
    return ErrnoToStatus(errno, "failed to create prepare snapshot dir");
  }
  std::string td = tmpl;
  absl::Status s = [&]() -> absl::Status {
    RETURN_IF_ERROR(MkdirMode(StrCat(td, "/fs"), 0755));
    if (kind == Kind::kActive) RETURN_IF_ERROR(MkdirMode(StrCat(td, "/work"), 0711));
    ASSIGN_OR_RETURN(*record, txn->CreateSnapshot(kind, key, parent, labels));
    if (!record->parent_ids.empty()) {
      struct stat st;
      const std::string pfs = UpperPath(record->parent_ids[0]);
      if (stat(pfs.c_str(), &st) != 0) return ErrnoToStatus(errno, "failed to stat parent");
      const std::string fs = StrCat(td, "/fs");
      if (lchown(fs.c_str(), st.st_uid, st.st_gid) != 0) return ErrnoToStatus(errno, "failed to chown");
    }
    const std::string path = SnapshotDir(record->id);
    if (access(path.c_str(), F_OK) == 0) {
      // Left behind by a crash between rename and commit: its id was never committed.
      LZ_LOG(kWarning, "removing stale snapshot directory ", path);
      RETURN_IF_ERROR(RemoveTree(path));
    }
    if (rename(td.c_str(), path.c_str()) != 0) return ErrnoToStatus(errno, "failed to rename");
    td = path;
    return txn->Commit();
  }();
  if (!s.ok()) {
    absl::Status r = RemoveTree(td);
    if (!r.ok()) LZ_LOG(kError, "failed to clean up ", td, ": ", r.ToString());
    return s;
  }
  return MountsFor(*record);
}

absl::StatusOr<std::vector<Mount>> OverlaySnapshotter::Mounts(const std::string& key) {
  SnapshotRecord rec;
  std::string parent;
  {
    ASSIGN_OR_RETURN(auto txn, ms_->Begin(false));
    auto r = txn->GetSnapshot(key);
    if (!r.ok()) return Annotate(r.status(), "failed to get active mount");
    rec = *std::move(r);
    ASSIGN_OR_RETURN(SnapshotEntry e, txn->GetInfo(key));
    parent = e.info.parent;
  }
  RETURN_IF_ERROR(CheckRemoteLayers(parent));
  return MountsFor(rec);
}

absl::Status OverlaySnapshotter::CheckRemoteLayers(const std::string& name) {
  std::vector<std::pair<std::string, std::string>> remote;  // name, directory
  {
    ASSIGN_OR_RETURN(auto txn, ms_->Begin(false));
    for (std::string cur = name; !cur.empty();) {
      auto e = txn->GetInfo(cur);
      if (absl::IsNotFound(e.status())) break;  // reported by the caller's own lookup
      if (!e.ok()) return e.status();
      if (e->info.labels.count(kRemoteLabel)) remote.emplace_back(cur, UpperPath(e->id));
      cur = e->info.parent;
    }
  }
  // Outside the store's lock: a check may take a round trip to the registry.
  for (const auto& [layer, dir] : remote) {
    absl::Status s = mounter_->Check(dir);
    if (!s.ok()) {
      LZ_LOG(kWarning, "remote layer ", layer, " at ", dir, " unavailable: ", s.ToString());
      return absl::UnavailableError(
          StrCat("layer \"", layer, "\" unavailable: ", s.message()));
    }
  }
  return absl::OkStatus();
}

std::vector<Mount> OverlaySnapshotter::MountsFor(const SnapshotRecord& rec) const {
  if (rec.parent_ids.empty()) {
    // A single layer: overlay needs a lower dir, so bind-mount the directory itself.
    return {Mount{"bind", UpperPath(rec.id), {rec.kind == Kind::kView ? "ro" : "rw", "rbind"}}};
  }
  std::vector<std::string> options;
  if (index_off_) options.push_back("index=off");
  if (rec.kind == Kind::kActive) {
    options.push_back(StrCat("workdir=", WorkPath(rec.id)));
    options.push_back(StrCat("upperdir=", UpperPath(rec.id)));
  } else if (rec.parent_ids.size() == 1) {
    return {Mount{"bind", UpperPath(rec.parent_ids[0]), {"ro", "rbind"}}};
  }
  std::vector<std::string> lowers;
  for (const std::string& id : rec.parent_ids) lowers.push_back(UpperPath(id));
  options.push_back(StrCat("lowerdir=", absl::StrJoin(lowers, ":")));
  return {Mount{"overlay", "overlay", std::move(options)}};
}

absl::Status OverlaySnapshotter::Commit(const std::string& name, const std::string& key,
                                        const Labels& labels) {
  RETURN_IF_ERROR(ValidateLabels(labels));
  ASSIGN_OR_RETURN(auto txn, ms_->Begin(true));
  ASSIGN_OR_RETURN(SnapshotEntry e, txn->GetInfo(key));
  ASSIGN_OR_RETURN(Usage usage, DiskUsage(UpperPath(e.id)));
  auto id = txn->CommitActive(key, name, usage, labels);
  if (!id.ok()) return Annotate(id.status(), "failed to commit snapshot");
  return txn->Commit();
}

absl::Status OverlaySnapshotter::Remove(const std::string& key) {
  ASSIGN_OR_RETURN(auto txn, ms_->Begin(true));
  auto removed = txn->Remove(key);
  if (!removed.ok()) return Annotate(removed.status(), "failed to remove");
  ASSIGN_OR_RETURN(std::vector<std::string> dirs, OrphanDirs(*txn));
  RETURN_IF_ERROR(txn->Commit());
  // Still under the store's lock (held until txn is destroyed): no id can be reused meanwhile.
  RemoveDirs(dirs);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Info>> OverlaySnapshotter::List(
    const std::vector<std::string>& filters) {
  ASSIGN_OR_RETURN(Filter filter, Filter::ParseAny(filters));
  ASSIGN_OR_RETURN(auto txn, ms_->Begin(false));
  return txn->List(filter);
}

absl::Status OverlaySnapshotter::Cleanup() {
  ASSIGN_OR_RETURN(auto txn, ms_->Begin(true));
  ASSIGN_OR_RETURN(std::vector<std::string> dirs, OrphanDirs(*txn));
  RemoveDirs(dirs);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> OverlaySnapshotter::OrphanDirs(
    MetadataStore::Transaction& txn) {
  ASSIGN_OR_RETURN(std::set<std::string> ids, txn.Ids());
  const std::string dir = StrCat(root_, "/snapshots");
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
  if (!d) return ErrnoToStatus(errno, StrCat("open ", dir));
  std::vector<std::string> orphans;
  while (struct dirent* ent = readdir(d.get())) {
    std::string name = ent->d_name;
    if (name == "." || name == ".." || ids.count(name)) continue;
    orphans.push_back(StrCat(dir, "/", name));
  }
  return orphans;
}

void OverlaySnapshotter::RemoveDirs(const std::vector<std::string>& dirs) {
  for (const std::string& dir : dirs) {
    const std::string fs = StrCat(dir, "/fs");
    auto mounted = IsMountPoint(fs);
    if (mounted.ok() && *mounted) {
      absl::Status u = mounter_->Unmount(fs);
      if (!u.ok()) LZ_LOG(kWarning, "failed to unmount ", fs, ": ", u.ToString());
    }
    absl::Status s = RemoveTree(dir);
    if (!s.ok()) LZ_LOG(kWarning, "failed to remove directory ", dir, ": ", s.ToString());
  }
}

}  // namespace lazysnap

#include "fusefs/fuse_ops.h"

#include <fcntl.h>
#include <sys/vfs.h>

#include <cerrno>
#include <string>

#include "base/errors.h"
#include "base/log.h"
#include "base/strings.h"
#include "fusefs/layer_fs.h"

namespace lazysnap {

// Friend of LayerFs: the handlers. Each replies exactly once.
struct FuseOps {
  static LayerFs& Fs(fuse_req_t req) { return *static_cast<LayerFs*>(fuse_req_userdata(req)); }
  static void Bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.fetch_add(n, std::memory_order_relaxed);
  }

  static fuse_entry_param EntryParam(const LayerFs& fs, Ino ino) {
    fuse_entry_param e = {};
    e.ino = ino;
    e.generation = 1;
    e.attr = fs.view_.Stat(ino);
    e.attr_timeout = fs.options_.attr_timeout_sec;
    e.entry_timeout = fs.options_.entry_timeout_sec;
    return e;
  }

  // The entry of `ino`, or replies ENOENT and returns false.
  static bool Valid(fuse_req_t req, const LayerFs& fs, fuse_ino_t ino) {
    if (fs.view_.EntryOf(ino).ok()) return true;
    fuse_reply_err(req, ENOENT);
    return false;
  }

  static void Init(void* userdata, fuse_conn_info* conn) {
    auto* fs = static_cast<LayerFs*>(userdata);
    auto want = [conn](unsigned cap) {
      if (conn->capable & cap) conn->want |= cap;
    };
    want(FUSE_CAP_SPLICE_WRITE);
    want(FUSE_CAP_CACHE_SYMLINKS);
    want(FUSE_CAP_PARALLEL_DIROPS);
    want(FUSE_CAP_ASYNC_READ);
    if (conn->capable & FUSE_CAP_READDIRPLUS) {
      conn->want |= FUSE_CAP_READDIRPLUS;
      conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;  // always: every listing is a lookup saved
    }
    conn->want &= ~(FUSE_CAP_AUTO_INVAL_DATA | FUSE_CAP_SPLICE_MOVE);
    if (fs->passthrough_ != nullptr && fs->wire_.offered()) MaybeAcceptPassthrough(*fs);
    fs->no_open_.store((conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0 &&
                       !fs->passthrough_used_.load());
    fs->no_opendir_.store((conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0);
    conn->max_write = fs->options_.max_read_bytes;
    conn->max_read = fs->options_.max_read_bytes;
    if (conn->max_readahead > fs->options_.max_read_bytes) {
      conn->max_readahead = fs->options_.max_read_bytes;
    }
    conn->time_gran = 1;
  }

  // Accepts the passthrough the kernel offered, unless the cache is on a stacked filesystem
  // (every backing open would fail). Accepting makes the mount's stack depth 1.
  static void MaybeAcceptPassthrough(LayerFs& fs) {
    struct statfs sfs;
    const std::string& dir = fs.cache_->dir();
    if (::statfs(dir.c_str(), &sfs) == 0 && IsStackedFsType(static_cast<int64_t>(sfs.f_type))) {
      LZ_LOG(kInfo, "fusefs ", fs.mountpoint_, ": FUSE passthrough not used: the cache (", dir,
             ") is on a stacked filesystem (type 0x", absl::Hex(sfs.f_type), ")");
      return;
    }
    // Every open must then be answered (an ENOSYS would stop them for the connection).
    fs.wire_.Accept();
    fs.passthrough_used_.store(true);
    fs.passthrough_->Start(fuse_session_fd(fs.session_));
    LZ_LOG(kInfo, "fusefs ", fs.mountpoint_, ": FUSE passthrough negotiated (fully cached files of ",
           fs.options_.passthrough_min_bytes, "+ bytes; the mount's stack depth is 1: no overlay ",
           "can nest on an overlay over it; [fuse] passthrough_min_bytes = 0 turns it off)");
  }

  static void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    LayerFs& fs = Fs(req);
    Bump(fs.counters_.lookups);
    absl::StatusOr<std::optional<Ino>> r = fs.view_.Lookup(parent, name);
    if (!r.ok()) {
      fuse_reply_err(req, absl::IsFailedPrecondition(r.status()) ? ENOTDIR : ENOENT);
      return;
    }
    if (!r->has_value()) {
      Bump(fs.counters_.negative_lookups);
      fuse_entry_param e = {};
      e.ino = 0;  // cached by the kernel as a negative entry for entry_timeout
      e.entry_timeout = fs.options_.negative_timeout_sec;
      fuse_reply_entry(req, &e);
      return;
    }
    fuse_entry_param e = EntryParam(fs, **r);
    fuse_reply_entry(req, &e);
  }

  static void Forget(fuse_req_t req, fuse_ino_t, uint64_t) { fuse_reply_none(req); }
  static void ForgetMulti(fuse_req_t req, size_t, fuse_forget_data*) { fuse_reply_none(req); }

  static void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    LayerFs& fs = Fs(req);
    Bump(fs.counters_.getattrs);
    if (!Valid(req, fs, ino)) return;
    struct stat st = fs.view_.Stat(ino);
    fuse_reply_attr(req, &st, fs.options_.attr_timeout_sec);
  }

  static void ReadLink(fuse_req_t req, fuse_ino_t ino) {
    LayerFs& fs = Fs(req);
    if (!Valid(req, fs, ino)) return;
    absl::StatusOr<std::string_view> target = fs.view_.Readlink(ino);
    if (!target.ok()) {
      fuse_reply_err(req, EINVAL);
      return;
    }
    fuse_reply_readlink(req, std::string(*target).c_str());
  }

  static void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    LayerFs& fs = Fs(req);
    if (!Valid(req, fs, ino)) return;
    if ((fi->flags & O_ACCMODE) != O_RDONLY) {
      fuse_reply_err(req, EROFS);
      return;
    }
    if (fs.no_open_.load()) {
      // The kernel stops sending opens and keeps the page cache (FOPEN_KEEP_CACHE implied).
      fuse_reply_err(req, ENOSYS);
      return;
    }
    fi->keep_cache = 1;
    fi->fh = kUntracked;
    if (fs.passthrough_used_.load() && fs.passthrough_->Tracks(fs.view_.DataEntry(ino))) {
      int32_t backing_id = fs.passthrough_->Open(ino);
      fi->fh = backing_id > 0 ? kPassthrough : kNormal;
      if (backing_id > 0) fi->keep_cache = 0;  // the kernel refuses it with passthrough
      ScopedOpenBackingId mark(backing_id);  // libfuse 3.14 cannot say it; the wire does
      if (fuse_reply_open(req, fi) != 0) {
        // The reply did not reach the kernel (the connection was aborted: once an OPEN is
        // read the kernel waits for its reply); no RELEASE will follow.
        fs.passthrough_->Release(ino, backing_id > 0);
      }
      return;
    }
    fuse_reply_open(req, fi);
  }

  // fuse_file_info::fh of an open file: whether Passthrough tracks it, and how it was opened.
  static constexpr uint64_t kUntracked = 0, kNormal = 1, kPassthrough = 2;

  static void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    LayerFs& fs = Fs(req);
    if (fi->fh != kUntracked && fs.passthrough_ != nullptr) {
      fs.passthrough_->Release(ino, fi->fh == kPassthrough);
    }
    fuse_reply_err(req, 0);
  }

  static void OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    LayerFs& fs = Fs(req);
    if (!Valid(req, fs, ino)) return;
    if (!S_ISDIR(fs.view_.Stat(ino).st_mode)) {
      fuse_reply_err(req, ENOTDIR);
      return;
    }
    if (fs.no_opendir_.load()) {
      fuse_reply_err(req, ENOSYS);  // implies keep_cache and cache_readdir
      return;
    }
    fi->keep_cache = 1;
    fi->cache_readdir = 1;
    fuse_reply_open(req, fi);
  }

  static void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
    LayerFs& fs = Fs(req);
    Bump(fs.counters_.reads);
    if (!Valid(req, fs, ino)) return;
    const Entry& file = fs.view_.DataEntry(ino);
    if (!S_ISREG(file.mode) || fs.view_.IsWhiteout(static_cast<EntryId>(ino - 1))) {
      fuse_reply_err(req, S_ISDIR(file.mode) ? EISDIR : EINVAL);
      return;
    }
    absl::StatusOr<DataRange> r = fs.cache_->FileRange(file, static_cast<uint64_t>(off), size);
    if (!r.ok()) {
      Bump(fs.counters_.read_errors);
      LZ_LOG(kWarning, "fusefs ", fs.mountpoint_, ": read of ",
             fs.view_.index().Path(static_cast<EntryId>(ino - 1)), " [", off, ", +", size,
             "): ", r.status().ToString());
      fuse_reply_err(req, EIO);  // whatever the cause: a chunk we could not serve
      return;
    }
    Bump(fs.counters_.read_bytes, r->length);
    if (off + r->length >= file.size && fs.passthrough_used_.load() &&
        fs.passthrough_->Tracks(file)) {
      fs.passthrough_->NoteReadToEnd(ino);  // maybe the whole file is cached now
    }
    if (r->length == 0) {
      fuse_reply_buf(req, nullptr, 0);
      return;
    }
    fuse_bufvec buf = FUSE_BUFVEC_INIT(r->length);
    buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    buf.buf[0].fd = r->fd;
    buf.buf[0].pos = static_cast<off_t>(r->offset);
    fuse_reply_data(req, &buf, static_cast<fuse_buf_copy_flags>(0));
  }

  static void DoReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
    LayerFs& fs = Fs(req);
    Bump(fs.counters_.readdirs);
    if (!Valid(req, fs, ino)) return;
    if (!S_ISDIR(fs.view_.Stat(ino).st_mode)) {
      fuse_reply_err(req, ENOTDIR);
      return;
    }
    std::string buf(size, '\0');
    size_t used = 0;
    std::string name;
    fs.view_.ReadDir(ino, static_cast<uint64_t>(off),
                     [&](std::string_view n, Ino child, uint64_t next) {
                       name.assign(n);
                       size_t need;
                       if (plus) {
                         fuse_entry_param e = EntryParam(fs, child);
                         need = fuse_add_direntry_plus(req, buf.data() + used, size - used,
                                                       name.c_str(), &e,
                                                       static_cast<off_t>(next));
                       } else {
                         struct stat st = {};
                         st.st_ino = child;
                         st.st_mode = fs.view_.Stat(child).st_mode;
                         need = fuse_add_direntry(req, buf.data() + used, size - used,
                                                  name.c_str(), &st, static_cast<off_t>(next));
                       }
                       if (need > size - used) return false;
                       used += need;
                       return true;
                     });
    fuse_reply_buf(req, buf.data(), used);
  }
  static void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
    DoReadDir(req, ino, size, off, false);
  }
  static void ReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                          fuse_file_info*) {
    DoReadDir(req, ino, size, off, true);
  }

  static void StatFs(fuse_req_t req, fuse_ino_t) {
    struct statvfs s = Fs(req).view_.StatFs();
    fuse_reply_statfs(req, &s);
  }

  // Replies with `value` under getxattr/listxattr's size protocol.
  static void ReplySized(fuse_req_t req, std::string_view value, size_t size) {
    if (size == 0) {
      fuse_reply_xattr(req, value.size());
    } else if (size < value.size()) {
      fuse_reply_err(req, ERANGE);
    } else {
      fuse_reply_buf(req, value.data(), value.size());
    }
  }

  static void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
    LayerFs& fs = Fs(req);
    Bump(fs.counters_.xattr_calls);
    if (!Valid(req, fs, ino)) return;
    std::optional<std::string_view> v = fs.view_.GetXattr(ino, name);
    if (!v) {
      fuse_reply_err(req, ENODATA);
      return;
    }
    ReplySized(req, *v, size);
  }

  static void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    LayerFs& fs = Fs(req);
    Bump(fs.counters_.xattr_calls);
    if (!Valid(req, fs, ino)) return;
    ReplySized(req, fs.view_.ListXattrs(ino), size);
  }

  // The session I/O (LayerFsIo).
  static ssize_t IoRead(int fd, void* buf, size_t len, void* userdata) {
    return static_cast<LayerFs*>(userdata)->wire_.Read(fd, buf, len);
  }
  static ssize_t IoWritev(int fd, struct iovec* iov, int count, void* userdata) {
    return static_cast<LayerFs*>(userdata)->wire_.Writev(fd, iov, count);
  }
  // As libfuse does without custom I/O: read replies stay spliced from the cache's data file.
  static ssize_t IoSpliceSend(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                              unsigned int flags, void*) {
    return ::splice(fdin, offin, fdout, offout, len, flags);
  }

  static fuse_lowlevel_ops Make() {
    fuse_lowlevel_ops ops = {};
    ops.init = Init;
    ops.lookup = Lookup;
    ops.forget = Forget;
    ops.forget_multi = ForgetMulti;
    ops.getattr = GetAttr;
    ops.readlink = ReadLink;
    ops.open = Open;
    ops.release = Release;
    ops.read = Read;
    ops.opendir = OpenDir;
    ops.readdir = ReadDir;
    ops.readdirplus = ReadDirPlus;
    ops.statfs = StatFs;
    ops.getxattr = GetXattr;
    ops.listxattr = ListXattr;
    return ops;
  }
};

const fuse_lowlevel_ops& LayerFsOps() {
  static const fuse_lowlevel_ops ops = FuseOps::Make();
  return ops;
}

const fuse_custom_io& LayerFsIo() {
  static const fuse_custom_io io = {FuseOps::IoWritev, FuseOps::IoRead, nullptr,
                                    FuseOps::IoSpliceSend};
  return io;
}

}  // namespace lazysnap

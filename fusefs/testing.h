// Test helpers for fusefs/: layers described as member lists, built into tars, converted with
// the real converter, and mounted for real. Header-only; tests and benchmarks only.
#ifndef LAZYSNAP_FUSEFS_TESTING_H_
#define LAZYSNAP_FUSEFS_TESTING_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/errors.h"
#include "base/status_macros.h"
#include "base/stream.h"
#include "base/strings.h"
#include "cache/chunk_decoder.h"
#include "cache/layer_cache.h"
#include "format/convert.h"
#include "format/layer.h"
#include "format/tar.h"
#include "fusefs/layer_fs.h"

namespace lazysnap::fusefs_testing {

// One tar member. `path` without "./"; type as TarEntry::typeflag.
struct Member {
  std::string path;
  char type = '0';
  uint32_t mode = 0644;
  std::string data;  // regular files
  std::string link;  // symlink target or hard-link target path
  uint32_t uid = 0, gid = 0;
  int64_t mtime = 1700000000;
  uint32_t major = 0, minor = 0;
  std::map<std::string, std::string> xattrs;
};

inline Member File(std::string path, std::string data, uint32_t mode = 0644) {
  Member m;
  m.path = std::move(path);
  m.data = std::move(data);
  m.mode = mode;
  return m;
}
inline Member Dir(std::string path, uint32_t mode = 0755) {
  Member m;
  m.path = std::move(path);
  m.type = '5';
  m.mode = mode;
  return m;
}
inline Member Link(std::string path, std::string target, char type = '2') {
  Member m;
  m.path = std::move(path);
  m.type = type;
  m.mode = 0777;
  m.link = std::move(target);
  return m;
}

inline std::string BuildTar(const std::vector<Member>& members) {
  std::string tar;
  for (const Member& m : members) {
    TarEntry e;
    e.name = StrCat("./", m.path, m.type == '5' ? "/" : "");
    e.typeflag = m.type;
    e.mode = m.mode;
    e.uid = m.uid;
    e.gid = m.gid;
    e.linkname = m.type == '1' ? StrCat("./", m.link) : m.link;
    e.mtime_sec = m.mtime;
    e.devmajor = m.major;
    e.devminor = m.minor;
    e.xattrs = m.xattrs;
    e.size = m.type == '0' ? m.data.size() : 0;
    tar += EncodeTarHeader(e);
    if (m.type == '0') {
      tar += m.data;
      tar.append(TarPaddingFor(m.data.size()), '\0');
    }
  }
  return tar + TarTrailer();
}

// Converts `members` into a seekable layer blob.
inline absl::StatusOr<std::string> BuildLayer(const std::vector<Member>& members,
                                              LayerFormat format, uint32_t chunk_size = 65536) {
  ConvertOptions o;
  o.format = format;
  o.chunk_size = chunk_size;
  o.threads = 1;
  StringInputStream in(BuildTar(members));
  StringOutputStream out;
  ASSIGN_OR_RETURN(ConvertResult r, ConvertLayer(in, out, o));
  (void)r;
  return std::move(out.data());
}

// Extracts `members` into `dir` as containerd's applier does for overlayfs: `.wh.NAME` becomes
// a 0/0 character device NAME, `.wh..wh..opq` sets trusted.overlay.opaque=y on its directory.
inline absl::Status ExtractForOverlay(const std::vector<Member>& members, const std::string& dir) {
  for (const Member& m : members) {
    std::string p = StrCat(dir, "/", m.path);
    std::string parent = p.substr(0, p.rfind('/'));
    std::string base = p.substr(p.rfind('/') + 1);
    int r = 0;
    if (base == ".wh..wh..opq") {
      r = ::lsetxattr(parent.c_str(), "trusted.overlay.opaque", "y", 1, 0);
      if (r != 0) return ErrnoToStatus(errno, StrCat("setxattr ", parent));
      continue;
    }
    if (base.rfind(".wh.", 0) == 0) {
      std::string target = StrCat(parent, "/", base.substr(4));
      r = ::mknod(target.c_str(), S_IFCHR, makedev(0, 0));
      if (r != 0) return ErrnoToStatus(errno, StrCat("mknod ", target));
      continue;
    }
    switch (m.type) {
      case '5': r = ::mkdir(p.c_str(), m.mode); break;
      case '2': r = ::symlink(m.link.c_str(), p.c_str()); break;
      case '1': r = ::link(StrCat(dir, "/", m.link).c_str(), p.c_str()); break;
      case '3': r = ::mknod(p.c_str(), S_IFCHR | m.mode, makedev(m.major, m.minor)); break;
      case '4': r = ::mknod(p.c_str(), S_IFBLK | m.mode, makedev(m.major, m.minor)); break;
      case '6': r = ::mkfifo(p.c_str(), m.mode); break;
      default: {
        int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, m.mode);
        if (fd < 0) return ErrnoToStatus(errno, StrCat("create ", p));
        r = ::write(fd, m.data.data(), m.data.size()) == static_cast<ssize_t>(m.data.size()) ? 0 : -1;
        ::close(fd);
      }
    }
    if (r != 0) return ErrnoToStatus(errno, StrCat("extract ", p));
    if (m.type != '2' && m.type != '1') {
      ::chmod(p.c_str(), m.mode);  // past the umask
    }
  }
  return absl::OkStatus();
}

// A layer blob mounted lazily at `dir`/mnt with its cache in `dir`/cache. Unmounts on
// destruction (before the caller removes `dir`).
struct MountedLayer {
  std::shared_ptr<BlobSource> source;
  std::shared_ptr<const SeekableLayer> layer;
  std::shared_ptr<LayerCache> cache;
  std::unique_ptr<LayerFs> fs;
  std::string mnt;

  static absl::StatusOr<std::unique_ptr<MountedLayer>> Mount(
      std::shared_ptr<BlobSource> source, const std::string& dir,
      const LayerCacheOptions& cache_options = {}, const LayerFsOptions& fs_options = {}) {
    auto m = std::make_unique<MountedLayer>();
    m->source = std::move(source);
    ASSIGN_OR_RETURN(std::unique_ptr<SeekableLayer> layer, OpenLayer(*m->source, {}));
    m->layer = std::move(layer);
    std::string cache_dir = StrCat(dir, "/cache");
    m->mnt = StrCat(dir, "/mnt");
    ::mkdir(cache_dir.c_str(), 0700);
    ::mkdir(m->mnt.c_str(), 0755);
    ASSIGN_OR_RETURN(std::unique_ptr<LayerCache> cache,
                     LayerCache::Open(cache_dir, m->layer->toc_digest, m->layer->index.chunks(),
                                      m->source,
                                      std::make_shared<FormatChunkDecoder>(m->layer->index),
                                      cache_options));
    m->cache = std::move(cache);
    ASSIGN_OR_RETURN(m->fs, LayerFs::Mount(m->layer, m->cache, m->mnt, fs_options));
    return m;
  }
  ~MountedLayer() {
    if (fs) (void)fs->Unmount();
  }
};

// Why a mounting test cannot run here, or "" if it can.
inline std::string CannotMount() {
  if (::geteuid() != 0) return "needs root";
  if (::access("/dev/fuse", R_OK | W_OK) != 0) return "no /dev/fuse";
  return "";
}

}  // namespace lazysnap::fusefs_testing

#endif  // LAZYSNAP_FUSEFS_TESTING_H_

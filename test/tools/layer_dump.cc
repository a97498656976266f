// layer_dump: prints a seekable layer (through lazysnap's reader) or an extracted directory tree
// in one identical line format, so the two can be diffed:
//
//   layer_dump blob LAYER_FILE [--annotation KEY=VALUE]... [--toc-digest sha256:...]
//   layer_dump tree DIR
//   layer_dump chunks LAYER_FILE [--annotation KEY=VALUE]...
//     (the layout: "toc_offset=N blob_size=N", then per chunk
//      "PATH file_offset=N size=N compressed_offset=N compressed_size=N"; no data is read)
//   common options: --no-content (no sha256), --mtime-seconds (mtimes rounded to the nearest
//   second, half up: the precision of an eStargz TOC, whose reference writer rounds)
//
// One line per entry (the root itself is left out), sorted by path (bytewise):
//   PATH type=reg mode=04755 uid=0 gid=0 size=N mtime=SEC.NSEC sha256=HEX link=- dev=- hl=- xattrs=-
// type: reg dir sym chr blk fifo. mode: octal permission bits incl. setuid/setgid/sticky.
// sha256 of the content for regular files (blob mode: read with ReadFile, so every chunk is
// verified). link: symlink target. dev: MAJOR,MINOR for devices. hl: for an object with more
// than one name in the tree, the smallest of its paths (so hard-link groups compare equal).
// xattrs: NAME=HEXVALUE,... sorted by name. Paths and link targets escape bytes outside
// printable ASCII, space and backslash as \xHH.
//
// Exit status: 0 on success; 1 with "layer_dump: ..." on stderr on any error (a corrupt layer,
// a chunk that fails its digest, an unreadable tree).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/blob_source.h"
#include "base/digest.h"
#include "base/strings.h"
#include "format/index.h"
#include "format/layer.h"

namespace lazysnap {
namespace {

struct Options {
  bool mtime_seconds = false;
  bool content = true;
};

struct Line {
  std::string path;  // raw bytes
  uint32_t mode = 0;  // incl. S_IFMT
  uint32_t uid = 0, gid = 0;
  uint64_t size = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  std::string sha256;  // hex, regular files
  std::string link;
  uint32_t dev_major = 0, dev_minor = 0;
  std::string hl_key;  // identifies the object; lines sharing one form a hard-link group
  std::vector<std::pair<std::string, std::string>> xattrs;
};

std::string Escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f || c == '\\') {
      char buf[5];
      snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string Hex(std::string_view s) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

const char* TypeName(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "reg";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "sym";
    case S_IFCHR: return "chr";
    case S_IFBLK: return "blk";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "sock";
    default: return "unknown";
  }
}

void Print(std::vector<Line>& lines, const Options& opt) {
  std::sort(lines.begin(), lines.end(), [](const Line& a, const Line& b) { return a.path < b.path; });
  // Hard-link groups: the smallest path of every key held by more than one line.
  std::map<std::string, std::pair<std::string, int>> groups;
  for (const Line& l : lines) {
    if (l.hl_key.empty()) continue;
    auto [it, inserted] = groups.try_emplace(l.hl_key, l.path, 0);
    it->second.second++;
  }
  std::string out;
  for (Line& l : lines) {
    std::sort(l.xattrs.begin(), l.xattrs.end());
    std::string hl = "-";
    if (!l.hl_key.empty()) {
      const auto& g = groups[l.hl_key];
      if (g.second > 1) hl = Escape(g.first);
    }
    std::string xattrs;
    for (const auto& [k, v] : l.xattrs) {
      if (!xattrs.empty()) xattrs += ',';
      xattrs += Escape(k) + "=" + Hex(v);
    }
    if (xattrs.empty()) xattrs = "-";
    const uint32_t type = l.mode & S_IFMT;
    char mode[16], mtime[48];
    snprintf(mode, sizeof mode, "%05o", l.mode & 07777);
    if (opt.mtime_seconds) {
      snprintf(mtime, sizeof mtime, "%lld",
               static_cast<long long>(l.mtime_sec + (l.mtime_nsec >= 500'000'000u ? 1 : 0)));
    } else {
      snprintf(mtime, sizeof mtime, "%lld.%09u", static_cast<long long>(l.mtime_sec), l.mtime_nsec);
    }
    std::string dev = "-";
    if (type == S_IFCHR || type == S_IFBLK) dev = StrCat(l.dev_major, ",", l.dev_minor);
    out += StrCat(Escape(l.path), " type=", TypeName(l.mode), " mode=", mode, " uid=", l.uid,
                  " gid=", l.gid, " size=", type == S_IFREG ? l.size : 0, " mtime=", mtime,
                  " sha256=", l.sha256.empty() ? "-" : l.sha256,
                  " link=", type == S_IFLNK ? Escape(l.link) : "-", " dev=", dev, " hl=", hl,
                  " xattrs=", xattrs, "\n");
    if (out.size() > (1 << 20)) {
      fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  fwrite(out.data(), 1, out.size(), stdout);
}

[[noreturn]] void Fail(std::string_view msg) {
  fprintf(stderr, "layer_dump: %.*s\n", static_cast<int>(msg.size()), msg.data());
  exit(1);
}

// ---- blob mode: lazysnap's reader ----------------------------------------------------------
int DumpBlob(const std::string& path, const OpenOptions& open_options, const Options& opt) {
  auto blob = FileBlobSource::Open(path);
  if (!blob.ok()) Fail(StrCat(path, ": ", blob.status().ToString()));
  auto layer = OpenLayer(**blob, open_options);
  if (!layer.ok()) Fail(StrCat(path, ": opening the layer: ", layer.status().ToString()));
  const LayerIndex& index = (*layer)->index;
  std::vector<Line> lines;
  lines.reserve(index.size());
  for (EntryId id = 0; id < index.size(); ++id) {
    if (id == kRootEntry) continue;
    const Entry& named = index.entry(id);
    const EntryId obj = named.inode == kNoEntry ? id : named.inode;
    if (obj >= index.size()) Fail(StrCat(path, ": entry ", id, " links to bad entry ", obj));
    const Entry& e = index.entry(obj);
    Line l;
    l.path = index.Path(id);
    l.mode = e.mode;
    l.uid = index.attrs(obj).uid;
    l.gid = index.attrs(obj).gid;
    l.size = e.size;
    l.mtime_sec = index.mtime(obj).tv_sec;
    l.mtime_nsec = static_cast<uint32_t>(index.mtime(obj).tv_nsec);
    l.link = std::string(index.link(obj));
    if (S_ISCHR(e.mode) || S_ISBLK(e.mode)) {
      l.dev_major = e.dev_major;
      l.dev_minor = e.dev_minor;
    }
    if ((e.mode & S_IFMT) != S_IFDIR) l.hl_key = StrCat(obj);
    for (const Xattr& x : index.XattrsOf(obj)) {
      l.xattrs.emplace_back(std::string(index.str(x.name)), std::string(index.str(x.value)));
    }
    if ((e.mode & S_IFMT) == S_IFREG && opt.content) {
      auto data = ReadFile(**blob, **layer, id);
      if (!data.ok()) {
        Fail(StrCat(path, ": reading ", Escape(l.path), ": ", data.status().ToString()));
      }
      if (data->size() != e.size) {
        Fail(StrCat(path, ": ", Escape(l.path), ": read ", data->size(), " bytes, size is ",
                    e.size));
      }
      l.sha256 = Sha256::Of(*data).Hex();
    }
    lines.push_back(std::move(l));
  }
  Print(lines, opt);
  return 0;
}

int DumpChunks(const std::string& path, const OpenOptions& open_options) {
  auto blob = FileBlobSource::Open(path);
  if (!blob.ok()) Fail(StrCat(path, ": ", blob.status().ToString()));
  auto layer = OpenLayer(**blob, open_options);
  if (!layer.ok()) Fail(StrCat(path, ": opening the layer: ", layer.status().ToString()));
  const LayerIndex& index = (*layer)->index;
  printf("toc_offset=%llu blob_size=%llu\n", static_cast<unsigned long long>(index.toc_offset()),
         static_cast<unsigned long long>((*layer)->blob_size));
  for (const Chunk& c : index.chunks()) {
    printf("%s file_offset=%llu size=%u compressed_offset=%llu compressed_size=%u\n",
           Escape(index.Path(c.entry)).c_str(), static_cast<unsigned long long>(c.file_offset),
           c.size, static_cast<unsigned long long>(c.compressed_offset), c.compressed_size);
  }
  return 0;
}

// ---- tree mode: an extracted directory --------------------------------------------------------
std::string FileSha256(int dirfd, const std::string& name, const std::string& shown) {
  int fd = openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) Fail(StrCat(shown, ": open: ", strerror(errno)));
  Sha256Hasher h;
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      Fail(StrCat(shown, ": read: ", strerror(errno)));
    }
    if (n == 0) break;
    h.Update(buf.data(), n);
  }
  close(fd);
  return h.Finish().Hex();
}

void Walk(const std::string& root, const std::string& rel, std::vector<Line>& lines,
          const Options& opt) {
  const std::string dir_path = rel.empty() ? root : root + "/" + rel;
  int dfd = open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) Fail(StrCat(dir_path, ": open: ", strerror(errno)));
  DIR* d = fdopendir(dfd);
  if (d == nullptr) Fail(StrCat(dir_path, ": fdopendir: ", strerror(errno)));
  std::vector<std::string> names;
  while (dirent* de = readdir(d)) {
    std::string n = de->d_name;
    if (n == "." || n == "..") continue;
    names.push_back(std::move(n));
  }
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    const std::string relp = rel.empty() ? n : rel + "/" + n;
    const std::string full = root + "/" + relp;
    struct stat st;
    if (fstatat(dfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      Fail(StrCat(full, ": lstat: ", strerror(errno)));
    }
    Line l;
    l.path = relp;
    l.mode = st.st_mode;
    l.uid = st.st_uid;
    l.gid = st.st_gid;
    l.size = st.st_size;
    l.mtime_sec = st.st_mtim.tv_sec;
    l.mtime_nsec = st.st_mtim.tv_nsec;
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      l.dev_major = major(st.st_rdev);
      l.dev_minor = minor(st.st_rdev);
    }
    if (!S_ISDIR(st.st_mode)) l.hl_key = StrCat(st.st_dev, ":", st.st_ino);
    if (S_ISLNK(st.st_mode)) {
      std::string target(st.st_size + 1, '\0');
      ssize_t n2 = readlinkat(dfd, n.c_str(), target.data(), target.size());
      if (n2 < 0) Fail(StrCat(full, ": readlink: ", strerror(errno)));
      target.resize(n2);
      l.link = target;
    }
    // xattrs
    ssize_t ln = llistxattr(full.c_str(), nullptr, 0);
    if (ln < 0 && errno != ENOTSUP) Fail(StrCat(full, ": llistxattr: ", strerror(errno)));
    if (ln > 0) {
      std::string names_buf(ln, '\0');
      ln = llistxattr(full.c_str(), names_buf.data(), names_buf.size());
      if (ln < 0) Fail(StrCat(full, ": llistxattr: ", strerror(errno)));
      names_buf.resize(ln);
      size_t pos = 0;
      while (pos < names_buf.size()) {
        std::string xn(names_buf.c_str() + pos);
        pos += xn.size() + 1;
        if (xn.empty()) continue;
        ssize_t vn = lgetxattr(full.c_str(), xn.c_str(), nullptr, 0);
        if (vn < 0) Fail(StrCat(full, ": lgetxattr ", xn, ": ", strerror(errno)));
        std::string v(vn, '\0');
        vn = lgetxattr(full.c_str(), xn.c_str(), v.data(), v.size());
        if (vn < 0) Fail(StrCat(full, ": lgetxattr ", xn, ": ", strerror(errno)));
        v.resize(vn);
        l.xattrs.emplace_back(std::move(xn), std::move(v));
      }
    }
    if (S_ISREG(st.st_mode) && opt.content) l.sha256 = FileSha256(dfd, n, full);
    const bool is_dir = S_ISDIR(st.st_mode);
    lines.push_back(std::move(l));
    if (is_dir) Walk(root, relp, lines, opt);
  }
  closedir(d);
}

int DumpTree(const std::string& root, const Options& opt) {
  std::vector<Line> lines;
  Walk(root, "", lines, opt);
  Print(lines, opt);
  return 0;
}

int Usage() {
  fprintf(stderr,
          "usage: layer_dump blob LAYER_FILE [--annotation KEY=VALUE]... [--toc-digest DIGEST]\n"
          "                  [--mtime-seconds] [--no-content]\n"
          "       layer_dump tree DIR [--mtime-seconds] [--no-content]\n"
          "       layer_dump chunks LAYER_FILE [--annotation KEY=VALUE]...\n");
  return 2;
}

}  // namespace
}  // namespace lazysnap

int main(int argc, char** argv) {
  using namespace lazysnap;
  if (argc < 3) return Usage();
  const std::string mode = argv[1];
  const std::string target = argv[2];
  Options opt;
  OpenOptions open_options;
  for (int i = 3; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--mtime-seconds") {
      opt.mtime_seconds = true;
    } else if (a == "--no-content") {
      opt.content = false;
    } else if (a == "--annotation" && i + 1 < argc) {
      const std::string kv = argv[++i];
      const size_t eq = kv.find('=');
      if (eq == std::string::npos) return Usage();
      open_options.annotations[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else if (a == "--toc-digest" && i + 1 < argc) {
      auto d = Sha256::Parse(argv[++i]);
      if (!d.ok()) Fail(StrCat("--toc-digest: ", d.status().ToString()));
      open_options.expected_toc_digest = *d;
    } else {
      return Usage();
    }
  }
  if (mode == "blob") return DumpBlob(target, open_options, opt);
  if (mode == "tree") return DumpTree(target, opt);
  if (mode == "chunks") return DumpChunks(target, open_options);
  return Usage();
}

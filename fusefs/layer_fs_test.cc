// A converted layer mounted for real: every object of the tar appears with the stat fields,
// content, link target and xattrs the tar says, whiteouts and opaque directories appear as
// overlayfs expects, and the mount's lifecycle (Check, Unmount) behaves.
#include "fusefs/layer_fs.h"

#include <dirent.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#include <gtest/gtest.h>

#include <set>

#include "base/digest.h"
#include "cache/testing.h"
#include "fusefs/testing.h"

namespace lazysnap {
namespace {

using cache_testing::PseudoRandom;
using cache_testing::TempDir;
using namespace fusefs_testing;

std::vector<Member> PosixMembers() {
  std::vector<Member> m;
  m.push_back(Dir("etc"));
  m.push_back(File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"));
  Member owned = File("etc/owned", "mine", 0640);
  owned.uid = 1000;
  owned.gid = 1001;
  owned.mtime = 1234567890;
  m.push_back(owned);
  m.push_back(File("etc/.wh.removed", ""));  // whiteout of a lower etc/removed
  m.push_back(File(".wh.gone", ""));
  m.push_back(File(".wh.both", ""));         // with a real "both": the real one wins
  m.push_back(File("both", "real"));
  m.push_back(Dir("usr"));
  m.push_back(Dir("usr/bin"));
  m.push_back(File("usr/bin/su", "\x7f" "ELF", 04755));
  m.push_back(File("usr/bin/wall", "w", 02755));
  m.push_back(Dir("tmp", 01777));
  m.push_back(Dir("sgid", 02775));
  m.push_back(Link("link", "etc/passwd"));
  m.push_back(Link("dangling", "/nowhere/at/all"));
  m.push_back(Link("hard", "etc/passwd", '1'));
  Member null;
  null.path = "null";
  null.type = '3';
  null.mode = 0666;
  null.major = 1;
  null.minor = 3;
  m.push_back(null);
  Member sda = null;
  sda.path = "sda";
  sda.type = '4';
  sda.mode = 0660;
  sda.major = 8;
  sda.minor = 0;
  m.push_back(sda);
  Member fifo;
  fifo.path = "fifo";
  fifo.type = '6';
  fifo.mode = 0600;
  m.push_back(fifo);
  Member x = File("xattrs", "x");
  x.xattrs["user.mime"] = "text/plain";
  x.xattrs["security.capability"] = // cap_net_raw+ep (VFS_CAP_REVISION_2)
      std::string("\x01\x00\x00\x02\x00\x20\x00\x00", 8) + std::string(12, '\0');
  x.xattrs["trusted.note"] = "t";
  m.push_back(x);
  m.push_back(File("empty", ""));
  m.push_back(File("big", PseudoRandom(3 * 65536 + 12345, 7)));
  m.push_back(Dir("opq"));
  m.push_back(File("opq/.wh..wh..opq", ""));
  m.push_back(File("opq/kept", "k"));
  return m;
}

class LayerFsTest : public ::testing::TestWithParam<LayerFormat> {
 protected:
  void SetUp() override {
    if (std::string why = CannotMount(); !why.empty()) GTEST_SKIP() << why;
    members_ = PosixMembers();
    auto blob = BuildLayer(members_, GetParam());
    ASSERT_TRUE(blob.ok()) << blob.status();
    auto m = MountedLayer::Mount(std::make_shared<MemoryBlobSource>(std::move(*blob)), tmp_.path());
    ASSERT_TRUE(m.ok()) << m.status();
    mounted_ = std::move(*m);
  }
  std::string P(std::string_view rel) const { return StrCat(mounted_->mnt, "/", rel); }

  std::vector<Member> members_;
  TempDir tmp_;
  std::unique_ptr<MountedLayer> mounted_;  // after tmp_: unmounted before it is removed
};

std::string ReadAll(const std::string& path) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<open failed>";
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, n);
  ::close(fd);
  return n < 0 ? "<read failed>" : out;
}

std::set<std::string> List(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = ::readdir(d)) names.insert(e->d_name);
  ::closedir(d);
  return names;
}

TEST_P(LayerFsTest, EveryMemberAsTheTarSays) {
  struct stat passwd;
  ASSERT_EQ(::lstat(P("etc/passwd").c_str(), &passwd), 0);
  for (const Member& m : members_) {
    std::string base = m.path.substr(m.path.rfind('/') + 1);
    if (base.rfind(".wh.", 0) == 0 || m.path == "both") continue;  // checked below
    SCOPED_TRACE(m.path);
    struct stat st;
    ASSERT_EQ(::lstat(P(m.path).c_str(), &st), 0) << strerror(errno);
    EXPECT_EQ(st.st_uid, m.uid);
    EXPECT_EQ(st.st_gid, m.gid);
    EXPECT_EQ(st.st_mtim.tv_sec, m.mtime);
    if (m.type != '2' && m.type != '1') {
      EXPECT_EQ(st.st_mode & 07777, m.mode);
    }
    switch (m.type) {
      case '0':
        EXPECT_TRUE(S_ISREG(st.st_mode));
        EXPECT_EQ(st.st_size, static_cast<off_t>(m.data.size()));
        EXPECT_EQ(st.st_nlink, m.path == "etc/passwd" ? 2u : 1u);
        EXPECT_EQ(ReadAll(P(m.path)), m.data);
        break;
      case '5':
        EXPECT_TRUE(S_ISDIR(st.st_mode));
        break;
      case '2': {
        EXPECT_TRUE(S_ISLNK(st.st_mode));
        EXPECT_EQ(st.st_size, static_cast<off_t>(m.link.size()));
        char buf[256];
        ssize_t n = ::readlink(P(m.path).c_str(), buf, sizeof buf);
        EXPECT_EQ(std::string(buf, n > 0 ? n : 0), m.link);
        break;
      }
      case '1':
        EXPECT_EQ(st.st_ino, passwd.st_ino);
        EXPECT_EQ(st.st_nlink, 2u);
        EXPECT_EQ(ReadAll(P(m.path)), ReadAll(P("etc/passwd")));
        break;
      case '3':
      case '4':
        EXPECT_EQ(m.type == '3' ? S_ISCHR(st.st_mode) : S_ISBLK(st.st_mode), true);
        EXPECT_EQ(major(st.st_rdev), m.major);
        EXPECT_EQ(minor(st.st_rdev), m.minor);
        break;
      case '6':
        EXPECT_TRUE(S_ISFIFO(st.st_mode));
        break;
    }
    // xattrs: exactly the tar's.
    char names[4096];
    ssize_t n = ::llistxattr(P(m.path).c_str(), names, sizeof names);
    ASSERT_GE(n, 0) << strerror(errno);
    std::map<std::string, std::string> got;
    for (ssize_t i = 0; i < n; i += strlen(names + i) + 1) {
      char v[4096];
      ssize_t vn = ::lgetxattr(P(m.path).c_str(), names + i, v, sizeof v);
      ASSERT_GE(vn, 0) << names + i;
      got[names + i] = std::string(v, vn);
    }
    std::map<std::string, std::string> want = m.xattrs;
    if (m.path == "opq") want["trusted.overlay.opaque"] = "y";
    EXPECT_EQ(got, want);
  }
}

TEST_P(LayerFsTest, DirectoriesListWhatTheTarHas) {
  EXPECT_EQ(List(P("")),
            (std::set<std::string>{".", "..", "etc", "gone", "both", "usr", "tmp", "sgid", "link",
                                   "dangling", "hard", "null", "sda", "fifo", "xattrs", "empty",
                                   "big", "opq"}));
  EXPECT_EQ(List(P("etc")), (std::set<std::string>{".", "..", "passwd", "owned", "removed"}));
  EXPECT_EQ(List(P("opq")), (std::set<std::string>{".", "..", "kept"}));
  struct stat st;
  ASSERT_EQ(::lstat(P("").c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, 1u);
  EXPECT_EQ(st.st_nlink, 2u + 5);  // etc usr tmp sgid opq
  ASSERT_EQ(::lstat(P("usr").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 3u);
}

TEST_P(LayerFsTest, WhiteoutsAndOpaqueDirectoriesAsOverlayfsExpects) {
  for (const char* wh : {"etc/removed", "gone"}) {
    struct stat st;
    ASSERT_EQ(::lstat(P(wh).c_str(), &st), 0) << wh;
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << wh;
    EXPECT_EQ(st.st_rdev, makedev(0, 0)) << wh;
    EXPECT_EQ(st.st_uid, 0u);
  }
  struct stat st;
  ASSERT_EQ(::lstat(P("both").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(ReadAll(P("both")), "real");
  for (const char* hidden : {"etc/.wh.removed", ".wh.gone", "opq/.wh..wh..opq",
                             ".no.prefetch.landmark", ".prefetch.landmark", "missing"}) {
    errno = 0;
    EXPECT_NE(::lstat(P(hidden).c_str(), &st), 0) << hidden;
    EXPECT_EQ(errno, ENOENT) << hidden;
  }
  char v[16];
  ssize_t n = ::lgetxattr(P("opq").c_str(), "trusted.overlay.opaque", v, sizeof v);
  ASSERT_EQ(n, 1) << strerror(errno);
  EXPECT_EQ(v[0], 'y');
  EXPECT_LT(::lgetxattr(P("etc").c_str(), "trusted.overlay.opaque", v, sizeof v), 0);
  EXPECT_EQ(errno, ENODATA);
}

TEST_P(LayerFsTest, ReadOnlyAndStatfs) {
  EXPECT_LT(::open(P("etc/passwd").c_str(), O_WRONLY), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_LT(::mkdir(P("newdir").c_str(), 0755), 0);
  struct statvfs s;
  ASSERT_EQ(::statvfs(P("").c_str(), &s), 0);
  EXPECT_TRUE(s.f_flag & ST_RDONLY);
  EXPECT_EQ(s.f_namemax, 255u);
  EXPECT_GT(s.f_files, 20u);
}

TEST_P(LayerFsTest, PartialAndOffsetReads) {
  const std::string& big = members_[members_.size() - 4].data;  // "big"
  ASSERT_EQ(members_[members_.size() - 4].path, "big");
  int fd = ::open(P("big").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  for (off_t off : {off_t{0}, off_t{65535}, off_t{65536 * 2 + 7}, off_t(big.size() - 3)}) {
    char buf[100000];
    ssize_t n = ::pread(fd, buf, sizeof buf, off);
    ASSERT_GE(n, 0);
    EXPECT_EQ(std::string(buf, n), big.substr(off, sizeof buf)) << off;
  }
  char c;
  EXPECT_EQ(::pread(fd, &c, 1, big.size() + 10), 0);
  ::close(fd);
}

TEST_P(LayerFsTest, CheckAndUnmount) {
  LayerFs& fs = *mounted_->fs;
  EXPECT_TRUE(fs.Check().ok()) << fs.Check();
  // Held open across the unmount: the mount detaches, the open file is cut off, Unmount
  // returns.
  int fd = ::open(P("etc/passwd").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(fs.Unmount().ok());
  EXPECT_FALSE(fs.Check().ok());
  ::close(fd);
  EXPECT_TRUE(fs.Unmount().ok());  // idempotent
  EXPECT_TRUE(List(mounted_->mnt).size() == 2u);  // the empty directory again
}

TEST_P(LayerFsTest, ExternalUnmountIsSeenByCheck) {
  LayerFs& fs = *mounted_->fs;
  ASSERT_EQ(::umount2(mounted_->mnt.c_str(), 0), 0) << strerror(errno);
  for (int i = 0; i < 100 && fs.Check().ok(); i++) ::usleep(10000);
  EXPECT_FALSE(fs.Check().ok());
  EXPECT_TRUE(fs.Unmount().ok());
}

INSTANTIATE_TEST_SUITE_P(Formats, LayerFsTest,
                         ::testing::Values(LayerFormat::kEstargz, LayerFormat::kZstdChunked),
                         [](const auto& info) {
                           return info.param == LayerFormat::kEstargz ? "estargz" : "zstd";
                         });

}  // namespace
}  // namespace lazysnap

#include "image/rootfs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "base/stream.h"
#include "format/tar.h"

namespace lazysnap {
namespace {

namespace fs = std::filesystem;

struct Member {
  char type;
  std::string name;
  std::string data_or_link;
  uint32_t mode = 0644;
};

std::string Tar(const std::vector<Member>& members) {
  std::string out;
  for (const auto& m : members) {
    TarEntry e;
    e.typeflag = m.type;
    e.name = m.name;
    e.mode = m.type == '5' ? 0755 : m.mode;
    e.mtime_sec = 1600000000;
    if (m.type == '0') {
      e.size = m.data_or_link.size();
    } else {
      e.linkname = m.data_or_link;
    }
    out += EncodeTarHeader(e);
    if (m.type == '0') {
      out += m.data_or_link;
      out.append(TarPaddingFor(m.data_or_link.size()), '\0');
    }
  }
  return out + TarTrailer();
}

std::string Read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class RootfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("rootfs-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "root");
    auto b = RootfsBuilder::Open(dir_ / "root");
    ASSERT_TRUE(b.ok()) << b.status();
    b_ = std::move(*b);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Apply(const std::vector<Member>& members) {
    StringInputStream in(Tar(members));
    absl::Status s = b_->ApplyLayer(in);
    ASSERT_TRUE(s.ok()) << s;
  }
  fs::path root() const { return dir_ / "root"; }

  fs::path dir_;
  std::unique_ptr<RootfsBuilder> b_;
};

TEST_F(RootfsTest, LayersWhiteoutsAndOpaqueDirectories) {
  Apply({{'5', "./", ""},
         {'5', "etc/", ""},
         {'0', "etc/motd", "welcome"},
         {'0', "etc/keep", "kept"},
         {'5', "opt/", ""},
         {'5', "opt/app/", ""},
         {'0', "opt/app/old", "old"},
         {'5', "opt/app/sub/", ""},
         {'0', "opt/app/sub/lower", "lower"},
         {'0', "bin/tool", "v1", 0755},
         {'1', "bin/tool-link", "bin/tool"}});
  EXPECT_TRUE(b_->HasFile("etc/motd"));
  EXPECT_TRUE(b_->HasFile("bin/tool-link"));
  EXPECT_EQ(Read(root() / "bin/tool-link"), "v1");
  Apply({{'0', "etc/.wh.motd", ""},
         {'5', "opt/app/sub/", ""},  // this layer's, before the marker: its lower child goes
         {'0', "opt/app/.wh..wh..opq", ""},
         {'0', "opt/app/new", "new"},
         {'0', "bin/tool", "v2", 0755}});
  EXPECT_FALSE(fs::exists(root() / "etc/motd"));
  EXPECT_FALSE(b_->HasFile("etc/motd"));
  EXPECT_EQ(Read(root() / "etc/keep"), "kept");
  EXPECT_FALSE(fs::exists(root() / "opt/app/old"));
  EXPECT_FALSE(fs::exists(root() / "opt/app/sub/lower"));
  EXPECT_TRUE(fs::is_directory(root() / "opt/app/sub"));
  EXPECT_EQ(Read(root() / "opt/app/new"), "new");
  EXPECT_EQ(Read(root() / "bin/tool"), "v2");
  EXPECT_EQ(Read(root() / "bin/tool-link"), "v1");  // a hard link keeps the old inode
  struct stat st;
  ASSERT_EQ(::stat((root() / "bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_mtime, 1600000000);
  EXPECT_GE(b_->stats().removed, 3u);
}

TEST_F(RootfsTest, SymlinksResolveInsideTheRoot) {
  fs::create_directories(dir_ / "outside");
  Apply({{'5', "usr/lib/", ""},
         {'5', "outside/", ""},
         {'2', "lib", "usr/lib"},
         {'2', "escape", "../../outside"},
         {'2', "abs", "/outside"}});
  // A later layer writing through the symlinks lands inside the root, as in a chroot.
  Apply({{'0', "lib/libx.so", "x"}, {'0', "escape/evil", "evil"}, {'0', "abs/evil2", "evil2"}});
  EXPECT_EQ(Read(root() / "usr/lib/libx.so"), "x");
  EXPECT_TRUE(fs::is_empty(dir_ / "outside"));
  EXPECT_EQ(Read(root() / "outside/evil"), "evil");
  EXPECT_EQ(Read(root() / "outside/evil2"), "evil2");
  // Through a dangling symlink: an error, nothing written anywhere.
  Apply({{'2', "dangling", "/nowhere"}});
  StringInputStream in(Tar({{'0', "dangling/x", "x"}}));
  EXPECT_FALSE(b_->ApplyLayer(in).ok());
  EXPECT_FALSE(fs::exists("/nowhere"));
}

TEST_F(RootfsTest, RejectsDotDotNames) {
  StringInputStream in(Tar({{'0', "../evil", "x"}}));
  EXPECT_FALSE(b_->ApplyLayer(in).ok());
  EXPECT_FALSE(fs::exists(dir_ / "evil"));
}

TEST_F(RootfsTest, RemoveTreeRemovesEverything) {
  Apply({{'5', "a/b/c/", ""}, {'0', "a/b/c/f", "x", 0}, {'2', "a/l", "/"}});
  ASSERT_TRUE(RemoveTree(root().string()).ok());
  EXPECT_FALSE(fs::exists(root()));
}

}  // namespace
}  // namespace lazysnap

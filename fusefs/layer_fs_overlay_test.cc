// overlayfs over two lazily mounted layers shows the same tree as overlayfs over the same two
// layers extracted the way containerd extracts them: whiteouts delete, opaque directories hide
// everything below them, later layers win.
#include <dirent.h>
#include <sys/mount.h>

#include <gtest/gtest.h>

#include <map>

#include "cache/testing.h"
#include "fusefs/layer_fs.h"
#include "fusefs/testing.h"

namespace lazysnap {
namespace {

using cache_testing::TempDir;
using namespace fusefs_testing;

// path → "type mode uid:gid size content-or-target" for every object under `root`.
void Walk(const std::string& root, const std::string& rel, std::map<std::string, std::string>* out) {
  DIR* d = ::opendir((root + "/" + rel).c_str());
  ASSERT_NE(d, nullptr) << rel << ": " << strerror(errno);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  for (const std::string& n : names) {
    std::string p = rel.empty() ? n : rel + "/" + n;
    std::string full = root + "/" + p;
    struct stat st;
    ASSERT_EQ(::lstat(full.c_str(), &st), 0) << p;
    std::string desc = StrCat(st.st_mode, " ", st.st_uid, ":", st.st_gid, " ");
    if (S_ISREG(st.st_mode)) {
      std::string data;
      int fd = ::open(full.c_str(), O_RDONLY);
      char buf[4096];
      ssize_t r;
      while (fd >= 0 && (r = ::read(fd, buf, sizeof buf)) > 0) data.append(buf, r);
      if (fd >= 0) ::close(fd);
      desc += data;
    } else if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t r = ::readlink(full.c_str(), buf, sizeof buf);
      desc += std::string(buf, r > 0 ? r : 0);
    }
    (*out)[p] = desc;
    if (S_ISDIR(st.st_mode)) Walk(root, p, out);
  }
}

std::vector<Member> Lower() {
  return {Dir("a"), File("a/x", "x1"), File("a/y", "y1"), Dir("b"), File("b/old", "o"),
          Dir("b/sub"), File("b/sub/deep", "d"), Dir("c"), File("c/file", "f"),
          File("keep", "k"), Link("sym", "keep"), Dir("gone"), File("gone/inner", "i")};
}
std::vector<Member> Upper() {
  return {Dir("a"), File("a/.wh.x", ""), File("a/y", "y2"),   // delete x, replace y
          Dir("b"), File("b/.wh..wh..opq", ""), File("b/new", "n"),  // opaque b
          Dir("c"), File("c/.wh.file", ""), File("c/other", "c2"),
          File(".wh.gone", ""),                                  // delete a directory
          File("added", "+")};
}

class OverlayTest : public ::testing::TestWithParam<LayerFormat> {
 protected:
  void SetUp() override {
    if (std::string why = CannotMount(); !why.empty()) GTEST_SKIP() << why;
  }
  void TearDown() override {
    for (auto it = overlays_.rbegin(); it != overlays_.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
  }
  // Mounts overlayfs with `lowers` (top first) at a new directory under tmp_.
  std::string Overlay(const std::string& name, const std::string& upper, const std::string& lower) {
    std::string dir = tmp_.path() + "/" + name;
    ::mkdir(dir.c_str(), 0755);
    std::string opts = StrCat("lowerdir=", upper, ":", lower);
    if (::mount("overlay", dir.c_str(), "overlay", MS_RDONLY, opts.c_str()) != 0) {
      ADD_FAILURE() << "overlay mount " << opts << ": " << strerror(errno);
      return "";
    }
    overlays_.push_back(dir);
    return dir;
  }

  TempDir tmp_;
  std::unique_ptr<MountedLayer> lower_, upper_;  // unmounted before tmp_ goes
  std::vector<std::string> overlays_;
};

TEST_P(OverlayTest, SameTreeAsOverExtractedLayers) {
  std::string ldir = tmp_.path() + "/l", udir = tmp_.path() + "/u";
  std::string lext = tmp_.path() + "/lx", uext = tmp_.path() + "/ux";
  for (const std::string& d : {ldir, udir, lext, uext}) ::mkdir(d.c_str(), 0755);
  auto lblob = BuildLayer(Lower(), GetParam());
  auto ublob = BuildLayer(Upper(), GetParam());
  ASSERT_TRUE(lblob.ok() && ublob.ok());
  auto l = MountedLayer::Mount(std::make_shared<MemoryBlobSource>(std::move(*lblob)), ldir);
  ASSERT_TRUE(l.ok()) << l.status();
  lower_ = std::move(*l);
  auto u = MountedLayer::Mount(std::make_shared<MemoryBlobSource>(std::move(*ublob)), udir);
  ASSERT_TRUE(u.ok()) << u.status();
  upper_ = std::move(*u);
  ASSERT_TRUE(ExtractForOverlay(Lower(), lext).ok());
  ASSERT_TRUE(ExtractForOverlay(Upper(), uext).ok());

  std::string lazy = Overlay("lazy", upper_->mnt, lower_->mnt);
  std::string ref = Overlay("ref", uext, lext);
  ASSERT_FALSE(lazy.empty() || ref.empty());
  std::map<std::string, std::string> got, want;
  Walk(lazy, "", &got);
  Walk(ref, "", &want);
  EXPECT_EQ(got, want);
  // And what that means.
  EXPECT_EQ(got.count("a/x"), 0u);
  EXPECT_EQ(got["a/y"].substr(got["a/y"].size() - 2), "y2");
  EXPECT_EQ(got.count("b/old"), 0u);
  EXPECT_EQ(got.count("b/sub"), 0u);
  EXPECT_EQ(got.count("b/new"), 1u);
  EXPECT_EQ(got.count("c/file"), 0u);
  EXPECT_EQ(got.count("c/other"), 1u);
  EXPECT_EQ(got.count("gone"), 0u);
  EXPECT_EQ(got.count("keep"), 1u);
  EXPECT_EQ(got.count("added"), 1u);
  EXPECT_EQ(got.count("sym"), 1u);
}

INSTANTIATE_TEST_SUITE_P(Formats, OverlayTest,
                         ::testing::Values(LayerFormat::kEstargz, LayerFormat::kZstdChunked),
                         [](const auto& info) {
                           return info.param == LayerFormat::kEstargz ? "estargz" : "zstd";
                         });

}  // namespace
}  // namespace lazysnap

#include "snapshotter/fs_util.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace lazysnap {
namespace {

class FsUtilTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fs_util_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(FsUtilTest, DiskUsageCountsHardLinksOnce) {
  std::filesystem::create_directories(dir_ + "/a/b");
  std::ofstream(dir_ + "/a/f") << std::string(100000, 'x');
  auto before = DiskUsage(dir_);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->inodes, 4);  // dir_, a, a/b, a/f
  EXPECT_GE(before->size, 100000);
  ASSERT_EQ(link((dir_ + "/a/f").c_str(), (dir_ + "/a/b/g").c_str()), 0);
  ASSERT_EQ(symlink("f", (dir_ + "/a/s").c_str()), 0);
  auto after = DiskUsage(dir_);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->inodes, 5);  // the hard link adds nothing, the symlink one inode
  EXPECT_LT(after->size, before->size + 50000);
  EXPECT_TRUE(absl::IsNotFound(DiskUsage(dir_ + "/missing").status()));
}

TEST_F(FsUtilTest, RemoveTreeRemovesEverythingEvenReadOnlyDirectories) {
  std::filesystem::create_directories(dir_ + "/t/ro/deep");
  std::ofstream(dir_ + "/t/ro/deep/f") << "x";
  ASSERT_EQ(symlink("/etc/passwd", (dir_ + "/t/link").c_str()), 0);
  chmod((dir_ + "/t/ro").c_str(), 0555);
  ASSERT_TRUE(RemoveTree(dir_ + "/t").ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/t"));
  EXPECT_TRUE(std::filesystem::exists("/etc/passwd"));  // symlinks are not followed
  EXPECT_TRUE(RemoveTree(dir_ + "/t").ok());             // already gone: fine
  std::ofstream(dir_ + "/file") << "x";
  EXPECT_TRUE(RemoveTree(dir_ + "/file").ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/file"));
}

TEST_F(FsUtilTest, IsMountPoint) {
  auto root = IsMountPoint("/");
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(*root);
  auto plain = IsMountPoint(dir_);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(*plain);
  if (std::filesystem::exists("/proc/self")) {
    auto proc = IsMountPoint("/proc");
    ASSERT_TRUE(proc.ok());
    EXPECT_TRUE(*proc);
  }
}

}  // namespace
}  // namespace lazysnap

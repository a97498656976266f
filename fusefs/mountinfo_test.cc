#include "fusefs/mountinfo.h"

#include <sys/sysmacros.h>

#include <gtest/gtest.h>

namespace lazysnap {
namespace {

TEST(MountInfoTest, ParsesFieldsEscapesAndOptionalFields) {
  auto m = ParseMountInfo(
      "22 1 0:21 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n"
      "98 22 0:39 / /tmp/a\\040b\\134c rw,nosuid,nodev,relatime shared:50 master:1 - "
      "fuse.lazysnap sha256:ab ro,user_id=0\n"
      "garbage line\n"
      "99 22 8:1 / /mnt rw - ext4 /dev/sda1 rw");
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].mountpoint, "/sys");
  EXPECT_EQ(m[0].fstype, "sysfs");
  EXPECT_EQ(m[1].dev, makedev(0, 39));
  EXPECT_EQ(m[1].mountpoint, "/tmp/a b\\c");
  EXPECT_EQ(m[1].fstype, "fuse.lazysnap");
  EXPECT_EQ(m[2].dev, makedev(8, 1));
  EXPECT_EQ(m[2].fstype, "ext4");
}

TEST(MountInfoTest, TopMountAtTheRoot) {
  auto top = TopMountAt("/");
  ASSERT_TRUE(top.ok()) << top.status();
  EXPECT_FALSE(top->fstype.empty());
  EXPECT_TRUE(absl::IsNotFound(TopMountAt("/no/such/mount/point").status()));
}

}  // namespace
}  // namespace lazysnap

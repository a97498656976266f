#include "image/workload_user.h"

#include <gtest/gtest.h>

namespace lazysnap {
namespace {

constexpr char kPasswd[] =
    "root:x:0:0:root:/root:/bin/bash\n"
    "# a comment\n"
    "broken line\n"
    "bad:x:notanumber:1::/:/bin/sh\n"
    "app:x:1000:1001:App:/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
constexpr char kGroup[] =
    "root:x:0:\n"
    "staff:x:50:app,other\n"
    "appgrp:x:1001:\n"
    "audio:x:29:other,app\n"
    "video:x:44:application\n";

TEST(WorkloadUserTest, EmptyIsRoot) {
  auto u = ResolveWorkloadUser("", kPasswd, kGroup);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->uid, 0u);
  EXPECT_EQ(u->gid, 0u);
  EXPECT_TRUE(u->groups.empty());
}

TEST(WorkloadUserTest, NameGivesUidGidHomeAndGroups) {
  auto u = ResolveWorkloadUser("app", kPasswd, kGroup);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->uid, 1000u);
  EXPECT_EQ(u->gid, 1001u);
  EXPECT_EQ(u->home, "/home/app");
  EXPECT_EQ(u->groups, (std::vector<uint32_t>{50, 29}));  // not "application"'s video
}

TEST(WorkloadUserTest, NumericForms) {
  auto u = ResolveWorkloadUser("1000", kPasswd, kGroup);  // listed: its gid and groups
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->uid, 1000u);
  EXPECT_EQ(u->gid, 1001u);
  EXPECT_EQ(u->groups.size(), 2u);
  u = ResolveWorkloadUser("4242", kPasswd, kGroup);  // not listed: gid 0, as docker
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->uid, 4242u);
  EXPECT_EQ(u->gid, 0u);
  EXPECT_TRUE(u->groups.empty());
  EXPECT_EQ(u->home, "");
  u = ResolveWorkloadUser("4242:77", "", "");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->uid, 4242u);
  EXPECT_EQ(u->gid, 77u);
}

TEST(WorkloadUserTest, GroupPartReplacesThePrimaryGid) {
  auto u = ResolveWorkloadUser("app:staff", kPasswd, kGroup);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->uid, 1000u);
  EXPECT_EQ(u->gid, 50u);
  u = ResolveWorkloadUser("nobody:5", kPasswd, kGroup);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->uid, 65534u);
  EXPECT_EQ(u->gid, 5u);
}

TEST(WorkloadUserTest, UnknownNamesAndMalformedSpecs) {
  EXPECT_TRUE(absl::IsNotFound(ResolveWorkloadUser("ghost", kPasswd, kGroup).status()));
  EXPECT_TRUE(absl::IsNotFound(ResolveWorkloadUser("app:ghosts", kPasswd, kGroup).status()));
  EXPECT_TRUE(absl::IsNotFound(ResolveWorkloadUser("bad", kPasswd, kGroup).status()));
  for (const char* spec : {":", "app:", ":50", "a:b:c", "4294967295", "99999999999"}) {
    auto u = ResolveWorkloadUser(spec, kPasswd, kGroup);
    EXPECT_FALSE(u.ok()) << spec;
  }
  EXPECT_TRUE(absl::IsInvalidArgument(ResolveWorkloadUser("app:", kPasswd, kGroup).status()));
}

}  // namespace
}  // namespace lazysnap

#include "cmd/lazysnapd/config.h"

#include <gtest/gtest.h>

namespace lazysnap {
namespace {

TEST(DaemonConfigTest, EmptyFileGivesDefaults) {
  auto c = ParseDaemonConfig("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->root, "/var/lib/lazysnap");
  EXPECT_EQ(c->address, "/run/lazysnap/lazysnapd.sock");
  EXPECT_EQ(c->log_level, "info");
  EXPECT_EQ(c->registry_config_path, "/etc/containerd/certs.d");
  EXPECT_EQ(c->cache_max_bytes, 10ull << 30);
  EXPECT_TRUE(c->unknown_keys.empty());
}

TEST(DaemonConfigTest, ReadsEveryKey) {
  auto c = ParseDaemonConfig(R"(
root = "/srv/lazysnap"
address = "/tmp/l.sock"
log_level = "debug"
[registry]
config_path = "/etc/lazysnap/certs.d"
[cache]
max_bytes = 1234
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->root, "/srv/lazysnap");
  EXPECT_EQ(c->address, "/tmp/l.sock");
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->registry_config_path, "/etc/lazysnap/certs.d");
  EXPECT_EQ(c->cache_max_bytes, 1234u);
}

TEST(DaemonConfigTest, UnknownKeysAreReportedNotFatal) {
  auto c = ParseDaemonConfig("color = true\n[cache]\nmax_bytes = 1\nshards = 2\n[fuse]\nx = 1\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->unknown_keys, (std::vector<std::string>{"color", "fuse", "cache.shards"}));
}

TEST(DaemonConfigTest, RejectsBadValues) {
  EXPECT_TRUE(absl::IsInvalidArgument(ParseDaemonConfig("root = 3").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseDaemonConfig("log_level = \"loud\"").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseDaemonConfig("[cache]\nmax_bytes = -1").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseDaemonConfig("[cache]\nmax_bytes = \"1G\"").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseDaemonConfig("registry = 1").status()));
  auto syntax = ParseDaemonConfig("root = \n");
  EXPECT_TRUE(absl::IsInvalidArgument(syntax.status()));
  EXPECT_NE(syntax.status().message().find("line 1"), std::string::npos) << syntax.status();
}

TEST(DaemonConfigTest, LazyPull) {
  auto c = ParseDaemonConfig("");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->lazy_pull);
  c = ParseDaemonConfig("lazy_pull = false");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->lazy_pull);
  EXPECT_TRUE(c->unknown_keys.empty());
  EXPECT_TRUE(absl::IsInvalidArgument(ParseDaemonConfig("lazy_pull = \"no\"").status()));
}

TEST(DaemonConfigTest, MissingFileIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(LoadDaemonConfig("/nonexistent/lazysnap.toml").status()));
}

}  // namespace
}  // namespace lazysnap

#include "cmd/lazysnapd/config.h"

#include <gtest/gtest.h>

#include <cstdlib>

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
  EXPECT_EQ(c->unknown_keys, (std::vector<std::string>{"color", "cache.shards", "fuse.x"}));
}

TEST(DaemonConfigTest, FusePassthroughMinBytes) {
  EXPECT_EQ(ParseDaemonConfig("")->fuse_passthrough_min_bytes, 1u << 20);
  auto c = ParseDaemonConfig("[fuse]\npassthrough_min_bytes = 0\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->fuse_passthrough_min_bytes, 0u);
  EXPECT_TRUE(absl::IsInvalidArgument(
      ParseDaemonConfig("[fuse]\npassthrough_min_bytes = -1\n").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseDaemonConfig("fuse = 1\n").status()));
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

TEST(DaemonConfigTest, RegistryCredentials) {
  auto c = ParseDaemonConfig("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->docker_config.has_value());  // registry::DefaultDockerConfigPath()
  EXPECT_EQ(c->registry_auths_toml, "");

  const std::string text = R"(
[registry]
docker_config = "/etc/lazysnap/docker.json"
[registry.auths."registry.lan:5000"]
username = "alice"
password = "pw"
[registry.auths."ghcr.io"]
auth = "Ym9iOnNlY3JldA=="
)";
  c = ParseDaemonConfig(text);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->docker_config, "/etc/lazysnap/docker.json");
  EXPECT_EQ(c->registry_auths_toml, text);
  EXPECT_TRUE(c->unknown_keys.empty()) << c->unknown_keys[0];

  // "" turns the Docker config off.
  c = ParseDaemonConfig("[registry]\ndocker_config = \"\"\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->docker_config, "");
}

TEST(DaemonConfigTest, MalformedCredentialsAreRefusedWithoutTheSecret) {
  auto c = ParseDaemonConfig("[registry.auths.\"h:5000\"]\nauth = \"not-base64-s3cret\"\n");
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(c.status()));
  EXPECT_NE(c.status().message().find("h:5000"), std::string::npos) << c.status();
  EXPECT_EQ(c.status().message().find("s3cret"), std::string::npos) << c.status();
  c = ParseDaemonConfig("[registry.auths.\"h\"]\npassword = 3\n");
  EXPECT_TRUE(absl::IsInvalidArgument(c.status())) << c.status();
  c = ParseDaemonConfig("[registry]\nauths = 3\n");
  EXPECT_TRUE(absl::IsInvalidArgument(c.status())) << c.status();
  c = ParseDaemonConfig("[registry]\ndocker_config = 3\n");
  EXPECT_TRUE(absl::IsInvalidArgument(c.status())) << c.status();
}

TEST(DaemonConfigTest, PrefetchSection) {
  auto d = ParseDaemonConfig("");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->prefetch.record);
  EXPECT_TRUE(d->prefetch.replay);
  EXPECT_FALSE(d->prefetch.background_fetch);
  auto c = ParseDaemonConfig(R"(
[prefetch]
record = false
record_window = 30
quiet_period = "1500ms"
replay = true
landmark = false
background_fetch = true
registry_lookup = false
workers = 4
max_gap_bytes = 65536
max_request_bytes = 1048576
bandwidth_limit = 12500000
)");
  ASSERT_TRUE(c.ok()) << c.status();
  const PrefetchConfig& p = c->prefetch;
  EXPECT_FALSE(p.record);
  EXPECT_EQ(p.recording.window, absl::Seconds(30));
  EXPECT_EQ(p.recording.quiet, absl::Milliseconds(1500));
  EXPECT_FALSE(p.landmark);
  EXPECT_TRUE(p.background_fetch);
  EXPECT_FALSE(p.registry_lookup);
  EXPECT_EQ(p.scheduler.workers, 4);
  EXPECT_EQ(p.scheduler.max_gap_bytes, 65536u);
  EXPECT_EQ(p.scheduler.max_request_bytes, 1048576u);
  EXPECT_EQ(p.scheduler.bandwidth_limit, 12500000u);
  EXPECT_TRUE(c->unknown_keys.empty());
  EXPECT_FALSE(ParseDaemonConfig("[prefetch]\nworkers = 0\n").ok());
  EXPECT_FALSE(ParseDaemonConfig("[prefetch]\nrecord = 1\n").ok());
  EXPECT_FALSE(ParseDaemonConfig("[prefetch]\nquiet_period = \"soon\"\n").ok());
  EXPECT_FALSE(ParseDaemonConfig("[prefetch]\nbandwidth_limit = -1\n").ok());
  auto u = ParseDaemonConfig("[prefetch]\nturbo = true\n");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->unknown_keys, std::vector<std::string>{"prefetch.turbo"});
}

}  // namespace
}  // namespace lazysnap

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

TEST(DaemonConfigTest, RegistryCredentials) {
  auto c = ParseDaemonConfig("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->docker_config.has_value());  // DefaultDockerConfigPath()
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

TEST(DaemonConfigTest, DefaultDockerConfigFollowsTheEnvironment) {
  const char* old_dc = getenv("DOCKER_CONFIG");
  const char* old_home = getenv("HOME");
  std::string saved_dc = old_dc ? old_dc : "", saved_home = old_home ? old_home : "";
  setenv("DOCKER_CONFIG", "/etc/docker-cfg", 1);
  EXPECT_EQ(DefaultDockerConfigPath(), "/etc/docker-cfg/config.json");
  unsetenv("DOCKER_CONFIG");
  setenv("HOME", "/home/u", 1);
  EXPECT_EQ(DefaultDockerConfigPath(), "/home/u/.docker/config.json");
  unsetenv("HOME");
  EXPECT_EQ(DefaultDockerConfigPath(), "/root/.docker/config.json");
  if (old_dc) setenv("DOCKER_CONFIG", saved_dc.c_str(), 1);
  if (old_home) setenv("HOME", saved_home.c_str(), 1);
}

}  // namespace
}  // namespace lazysnap

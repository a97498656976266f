#include "registry/credentials.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>

#include <gtest/gtest.h>

namespace lazysnap::registry {
namespace {

// Sets or unsets an environment variable for one scope, restoring it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(DefaultDockerConfigPathTest, FollowsTheEnvironment) {
  {
    ScopedEnv dc("DOCKER_CONFIG", "/etc/docker-cfg");
    ScopedEnv home("HOME", "/home/u");
    EXPECT_EQ(DefaultDockerConfigPath(), "/etc/docker-cfg/config.json");
  }
  {
    ScopedEnv dc("DOCKER_CONFIG", "");
    ScopedEnv home("HOME", "/home/u");
    EXPECT_EQ(DefaultDockerConfigPath(), "/home/u/.docker/config.json");
  }
  {
    // A service started without HOME: the user's passwd home (/root for root).
    ScopedEnv dc("DOCKER_CONFIG", nullptr);
    ScopedEnv home("HOME", nullptr);
    const struct passwd* pw = getpwuid(getuid());
    ASSERT_NE(pw, nullptr);
    EXPECT_EQ(DefaultDockerConfigPath(), std::string(pw->pw_dir) + "/.docker/config.json");
  }
}

TEST(NormalizeCredentialHostTest, DockerHubAliasesAndUrls) {
  EXPECT_EQ(NormalizeCredentialHost("https://index.docker.io/v1/"), "docker.io");
  EXPECT_EQ(NormalizeCredentialHost("registry-1.docker.io"), "docker.io");
  EXPECT_EQ(NormalizeCredentialHost("http://h:5000/x"), "h:5000");
  EXPECT_EQ(NormalizeCredentialHost("h:5000"), "h:5000");
}

}  // namespace
}  // namespace lazysnap::registry

#include "registry/hosts.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace lazysnap::registry {
namespace {

TEST(HostsTest, DefaultsWithoutAFile) {
  auto hub = DefaultEndpoints("docker.io");
  ASSERT_EQ(hub.size(), 1u);
  EXPECT_EQ(hub[0].ApiUrl(), "https://registry-1.docker.io/v2");
  EXPECT_TRUE(hub[0].is_origin);
  EXPECT_EQ(DefaultEndpoints("localhost:5000")[0].scheme, "http");
  EXPECT_EQ(DefaultEndpoints("ghcr.io")[0].ApiUrl(), "https://ghcr.io/v2");
  auto none = LoadEndpoints("/nonexistent/certs.d", "ghcr.io");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->size(), 1u);
}

TEST(HostsTest, MirrorsInFileOrderThenOrigin) {
  auto eps = ParseHostsToml("docker.io", R"(
server = "https://registry-1.docker.io"

[host."https://zzz-mirror.example.com"]
  capabilities = ["pull", "resolve"]
  ca = "ca.pem"
  client = [["client.crt", "client.key"]]

[host."http://aaa-mirror:5000"]
  capabilities = ["pull"]
  skip_verify = true
  [host."http://aaa-mirror:5000".header]
    x-custom = "1"

[host."https://proxy.example.com/base"]
  override_path = true
)",
                            "/etc/containerd/certs.d/docker.io");
  ASSERT_TRUE(eps.ok()) << eps.status();
  ASSERT_EQ(eps->size(), 4u);
  const auto& e = *eps;
  EXPECT_EQ(e[0].host, "zzz-mirror.example.com");
  EXPECT_EQ(e[0].capabilities, kCapPull | kCapResolve);
  EXPECT_EQ(e[0].tls.ca_file, "/etc/containerd/certs.d/docker.io/ca.pem");
  EXPECT_EQ(e[0].tls.client_cert, "/etc/containerd/certs.d/docker.io/client.crt");
  EXPECT_EQ(e[0].tls.client_key, "/etc/containerd/certs.d/docker.io/client.key");
  EXPECT_FALSE(e[0].is_origin);
  EXPECT_EQ(e[1].ApiUrl(), "http://aaa-mirror:5000/v2");
  EXPECT_EQ(e[1].capabilities, kCapPull);
  EXPECT_TRUE(e[1].tls.skip_verify);
  ASSERT_EQ(e[1].headers.size(), 1u);
  EXPECT_EQ(e[1].headers[0].first, "x-custom");
  EXPECT_EQ(e[2].ApiUrl(), "https://proxy.example.com/base");
  EXPECT_EQ(e[3].ApiUrl(), "https://registry-1.docker.io/v2");
  EXPECT_TRUE(e[3].is_origin);
  EXPECT_EQ(e[3].capabilities, kCapPull | kCapResolve | kCapPush);
  auto pushers = WithCapability(e, kCapPush);
  ASSERT_EQ(pushers.size(), 1u);  // mirrors default to pull and resolve only
  EXPECT_TRUE(pushers[0].is_origin);
}

TEST(HostsTest, PlainHttpServerAndCaList) {
  auto eps = ParseHostsToml("10.0.0.1:5000", R"(
server = "http://10.0.0.1:5000"
ca = ["/abs/ca1.pem", "ca2.pem"]
skip_verify = false
)",
                            "/d");
  ASSERT_TRUE(eps.ok()) << eps.status();
  ASSERT_EQ(eps->size(), 1u);
  EXPECT_EQ((*eps)[0].ApiUrl(), "http://10.0.0.1:5000/v2");
  EXPECT_EQ((*eps)[0].tls.ca_file, "/abs/ca1.pem");
  auto path = ParseHostsToml("r.example", "server = \"https://r.example/sub\"\n", "/d");
  ASSERT_TRUE(path.ok());
  EXPECT_EQ((*path)[0].ApiUrl(), "https://r.example/sub/v2");
  auto no_scheme = ParseHostsToml("r.example", "[host.\"mirror.local\"]\n", "/d");
  ASSERT_TRUE(no_scheme.ok());
  EXPECT_EQ((*no_scheme)[0].ApiUrl(), "https://mirror.local/v2");
}

TEST(HostsTest, ForcedPlainHttpUnlessTheRegistryHasItsOwnFile) {
  std::string dir = ::testing::TempDir() + "/hosts-plain-http";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/own.example");
  std::filesystem::create_directories(dir + "/_default");
  std::ofstream(dir + "/own.example/hosts.toml") << "server = \"https://own.example\"\n";
  std::ofstream(dir + "/_default/hosts.toml") << "[host.\"https://mirror.example\"]\n";
  PlainHttp all;
  all.all = true;
  auto own = LoadEndpoints(dir, "own.example", all);
  ASSERT_TRUE(own.ok()) << own.status();
  ASSERT_EQ(own->size(), 1u);
  EXPECT_EQ((*own)[0].ApiUrl(), "https://own.example/v2");
  auto forced = LoadEndpoints(dir, "10.0.0.1:5000", all);
  ASSERT_TRUE(forced.ok()) << forced.status();
  ASSERT_EQ(forced->size(), 1u);  // no _default mirror: the origin over http alone
  EXPECT_EQ((*forced)[0].ApiUrl(), "http://10.0.0.1:5000/v2");
  EXPECT_TRUE((*forced)[0].is_origin);
  PlainHttp one;
  one.hosts.insert("10.0.0.1:5000");
  EXPECT_EQ((*LoadEndpoints("", "10.0.0.1:5000", one))[0].scheme, "http");
  EXPECT_EQ((*LoadEndpoints("", "10.0.0.2:5000", one))[0].scheme, "https");
  auto other = LoadEndpoints(dir, "10.0.0.2:5000", one);
  ASSERT_TRUE(other.ok());
  ASSERT_EQ(other->size(), 2u);  // _default's mirror, then the origin over https
  EXPECT_EQ((*other)[1].ApiUrl(), "https://10.0.0.2:5000/v2");
  EXPECT_EQ(DefaultEndpoints("docker.io", true)[0].ApiUrl(), "http://registry-1.docker.io/v2");
  std::filesystem::remove_all(dir);
}

TEST(HostsTest, RejectsBadFiles) {
  for (const char* bad :
       {"server = 5", "server = \"ftp://x\"", "[host.\"https://m\"]\ncapabilities = [\"fly\"]",
        "[host.\"https://m\"]\ncapabilities = \"pull\"", "skip_verify = \"yes\"",
        "this is not toml", "host = 3", "[host.\"https:///nohost\"]", "ca = 1", "client = [[1]]"}) {
    EXPECT_FALSE(ParseHostsToml("r.example", bad, "/d").ok()) << bad;
  }
}

}  // namespace
}  // namespace lazysnap::registry

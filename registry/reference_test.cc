#include "registry/reference.h"

#include <gtest/gtest.h>

namespace lazysnap::registry {
namespace {

const char kDigest[] = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

TEST(ReferenceTest, DockerHubDefaults) {
  auto r = Reference::Parse("ubuntu");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->domain, "docker.io");
  EXPECT_EQ(r->repository, "library/ubuntu");
  EXPECT_EQ(r->tag, "latest");
  EXPECT_EQ(r->String(), "docker.io/library/ubuntu:latest");
  EXPECT_EQ(DefaultRegistryHost(r->domain), "registry-1.docker.io");
  EXPECT_EQ(Reference::Parse("bitnami/redis:7")->repository, "bitnami/redis");
  EXPECT_EQ(Reference::Parse("docker.io/ubuntu")->repository, "library/ubuntu");
  EXPECT_EQ(Reference::Parse("index.docker.io/library/ubuntu")->domain, "docker.io");
}

TEST(ReferenceTest, DomainsPortsAndLocalhost) {
  auto r = Reference::Parse("localhost:5000/team/app:v1.2-rc_3");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->domain, "localhost:5000");
  EXPECT_EQ(r->repository, "team/app");
  EXPECT_EQ(r->tag, "v1.2-rc_3");
  EXPECT_TRUE(IsLocalhost(r->domain));
  EXPECT_EQ(Reference::Parse("localhost/app")->domain, "localhost");
  EXPECT_EQ(Reference::Parse("ghcr.io/org/app")->domain, "ghcr.io");
  EXPECT_EQ(Reference::Parse("127.0.0.1:5000/x")->domain, "127.0.0.1:5000");
  EXPECT_TRUE(IsLocalhost("127.0.0.1:5000"));
  EXPECT_TRUE(IsLocalhost("[::1]:5000"));
  EXPECT_FALSE(IsLocalhost("registry.example.com"));
  EXPECT_EQ(Reference::Parse("[::1]:5000/a/b")->domain, "[::1]:5000");
  // A first component with a dot, a colon or upper case is a domain.
  EXPECT_EQ(Reference::Parse("Registry/app")->domain, "Registry");
  EXPECT_EQ(Reference::Parse("org/app")->domain, "docker.io");
}

TEST(ReferenceTest, Digests) {
  auto r = Reference::Parse(std::string("quay.io/a/b@") + kDigest);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->digest, kDigest);
  EXPECT_EQ(r->tag, "");
  EXPECT_EQ(r->Object(), kDigest);
  auto both = Reference::Parse(std::string("quay.io/a/b:1@") + kDigest);
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->tag, "1");
  EXPECT_EQ(both->Object(), kDigest);
  EXPECT_EQ(both->String(), std::string("quay.io/a/b:1@") + kDigest);
  EXPECT_EQ(r->WithObject("v2").String(), "quay.io/a/b:v2");
}

TEST(ReferenceTest, Rejects) {
  for (const char* bad : {"", "a/UPPER", "Upper", "a//b", "a/b:", "a/b:-tag", "a/b@sha256:abc",
                          "a/b@md5:d41d8cd98f00b204e9800998ecf8427e", "-a/b", "a/b-", "a/.b",
                          "host:port/x", "a/b c", "a/b:t@", ":tag", "a/b___c", "[::1/x"}) {
    EXPECT_FALSE(Reference::Parse(bad).ok()) << bad;
  }
  EXPECT_FALSE(Reference::Parse("x/" + std::string(260, 'a')).ok());
  EXPECT_FALSE(Reference::Parse("a/b:" + std::string(129, 't')).ok());
  EXPECT_TRUE(Reference::Parse("a/b:" + std::string(128, 't')).ok());
  EXPECT_TRUE(Reference::Parse("a/b__c.d-e---f").ok());
}

}  // namespace
}  // namespace lazysnap::registry

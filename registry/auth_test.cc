#include "registry/auth.h"

#include <gtest/gtest.h>

#include "registry/credentials.h"

namespace lazysnap::registry {
namespace {

TEST(ChallengeTest, DockerHubBearer) {
  auto c = ParseChallenges(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull")");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].scheme, "bearer");
  EXPECT_EQ((*c)[0].Param("realm"), "https://auth.docker.io/token");
  EXPECT_EQ((*c)[0].Param("service"), "registry.docker.io");
  EXPECT_EQ((*c)[0].Param("scope"), "repository:library/ubuntu:pull");
}

TEST(ChallengeTest, SeveralChallengesTokensAndEscapes) {
  auto c = ParseChallenges(
      R"(Basic realm="reg \"x\"", charset=UTF-8, Bearer realm=https://a/t , error="invalid_token", Negotiate)");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->size(), 3u);
  EXPECT_EQ((*c)[0].scheme, "basic");
  EXPECT_EQ((*c)[0].Param("realm"), "reg \"x\"");
  EXPECT_EQ((*c)[0].Param("charset"), "UTF-8");
  EXPECT_EQ((*c)[1].scheme, "bearer");
  EXPECT_EQ((*c)[1].Param("realm"), "https://a/t");
  EXPECT_EQ((*c)[1].Param("error"), "invalid_token");
  EXPECT_EQ((*c)[2].scheme, "negotiate");
  EXPECT_TRUE((*c)[2].params.empty());
  auto t68 = ParseChallenges("Negotiate a87421000492aa874209af8bc028==");
  ASSERT_TRUE(t68.ok()) << t68.status();
  EXPECT_EQ((*t68)[0].Param(""), "a87421000492aa874209af8bc028=");
}

TEST(ChallengeTest, RejectsMalformed) {
  for (const char* bad : {"", " , ", "Bearer realm=\"open", "=x", "Bearer a=b c", "Bearer a=\"b\"c"}) {
    EXPECT_FALSE(ParseChallenges(bad).ok()) << bad;
  }
}

TEST(CredentialsTest, DockerConfig) {
  CredentialStore store;
  ASSERT_TRUE(store
                  .AddDockerConfig(R"({"auths":{
      "https://index.docker.io/v1/":{"auth":"dXNlcjpwYTpzcw=="},
      "registry.example.com:5000":{"username":"bob","password":"pw"},
      "http://idp.example.com/v2/":{"identitytoken":"refresh-me"},
      "empty.example.com":{}},
      "credsStore":"desktop"})")
                  .ok());
  auto hub = store.Lookup("registry-1.docker.io");
  ASSERT_TRUE(hub.has_value());
  EXPECT_EQ(hub->username, "user");
  EXPECT_EQ(hub->password, "pa:ss");
  EXPECT_EQ(store.Lookup("docker.io")->username, "user");
  EXPECT_EQ(store.Lookup("registry.example.com:5000")->password, "pw");
  EXPECT_EQ(store.Lookup("idp.example.com")->identity_token, "refresh-me");
  EXPECT_FALSE(store.Lookup("empty.example.com").has_value());
  EXPECT_FALSE(store.Lookup("registry.example.com").has_value());
  store.Add("registry.example.com", {"own", "config", ""});
  EXPECT_EQ(store.Lookup("registry.example.com")->username, "own");
}

TEST(CredentialsTest, BadConfigNamesTheHostNotTheSecret) {
  CredentialStore store;
  auto s = store.AddDockerConfig(R"({"auths":{"h.example":{"auth":"!!not-base64-secret!!"}}})");
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(s.message().find("h.example"), std::string::npos);
  EXPECT_EQ(s.message().find("secret"), std::string::npos);
  EXPECT_FALSE(store.AddDockerConfig("not json").ok());
  EXPECT_TRUE(store.AddDockerConfig("{}").ok());
  EXPECT_TRUE(store.AddDockerConfigFile("/nonexistent/config.json").ok());
}

}  // namespace
}  // namespace lazysnap::registry

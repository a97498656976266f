#include "registry/auth.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <thread>

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
  for (const char* bad :
       {"", " , ", "Bearer realm=\"open", "=x", "Bearer a=b c", "Bearer a=\"b\"c"}) {
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

TEST(CredentialsTest, LazysnapConfig) {
  CredentialStore store;
  ASSERT_TRUE(store
                  .AddLazysnapConfig(R"(
root = "/var/lib/lazysnap"
[registry]
config_path = "/etc/containerd/certs.d"
[registry.auths."ghcr.io"]
username = "me"
password = "tok"
[registry.auths."https://index.docker.io/v1/"]
auth = "dXNlcjpwYTpzcw=="
)")
                  .ok());
  EXPECT_EQ(store.Lookup("ghcr.io")->password, "tok");
  EXPECT_EQ(store.Lookup("registry-1.docker.io")->password, "pa:ss");
  EXPECT_TRUE(store.AddLazysnapConfig("root = 1").ok());
  auto bad = store.AddLazysnapConfig("[registry.auths.\"h\"]\npassword = 3\n");
  EXPECT_TRUE(absl::IsInvalidArgument(bad));
  EXPECT_FALSE(store.AddLazysnapConfig("[registry.auths.\"h\"]\nauth = \"bm9jb2xvbg==\"\n").ok());
  EXPECT_FALSE(store.AddLazysnapConfig("not = = toml").ok());
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

class ScriptedTransport : public HttpTransport {
 public:
  std::function<HttpResponse(const HttpRequest&)> answer;
  std::vector<HttpRequest> seen;
  absl::StatusOr<HttpResponse> Do(const HttpRequest& r) override {
    seen.push_back(r);
    return answer(r);
  }
};

HttpResponse Unauthorized(std::string challenge) {
  HttpResponse r;
  r.status = 401;
  r.headers = {{"www-authenticate", std::move(challenge)}};
  return r;
}

std::string AuthHeader(const HttpRequest& r) {
  for (const auto& [k, v] : r.headers) {
    if (k == "Authorization") return v;
  }
  return "";
}

TEST(AuthorizerTest, AnonymousTokenCachedPerScope) {
  ScriptedTransport t;
  t.answer = [](const HttpRequest&) {
    HttpResponse r;
    r.status = 200;
    r.body = R"({"token":"tok-1","expires_in":300})";
    return r;
  };
  Authorizer auth(&t, nullptr);
  HttpRequest req;
  ASSERT_TRUE(auth.Authorize("reg", {"repository:a:pull"}, {}, absl::Seconds(1), &req).ok());
  EXPECT_EQ(AuthHeader(req), "") << "no header before the host challenges";
  ASSERT_TRUE(auth.OnUnauthorized("reg", {"repository:a:pull"},
                                  Unauthorized(R"(Bearer realm="https://auth/t",service="svc")"),
                                  {}, absl::Seconds(1))
                  .ok());
  ASSERT_EQ(t.seen.size(), 1u);
  EXPECT_EQ(t.seen[0].method, "GET");
  EXPECT_EQ(t.seen[0].url, "https://auth/t?service=svc&scope=repository%3Aa%3Apull");
  EXPECT_EQ(AuthHeader(t.seen[0]), "");
  HttpRequest again;
  ASSERT_TRUE(auth.Authorize("reg", {"repository:a:pull"}, {}, absl::Seconds(1), &again).ok());
  EXPECT_EQ(AuthHeader(again), "Bearer tok-1");
  EXPECT_EQ(t.seen.size(), 1u);
  HttpRequest other;  // another scope: a token of its own, fetched up front
  ASSERT_TRUE(auth.Authorize("reg", {"repository:b:pull"}, {}, absl::Seconds(1), &other).ok());
  EXPECT_EQ(t.seen.size(), 2u);
  EXPECT_EQ(auth.token_fetches(), 2);
}

TEST(AuthorizerTest, ConcurrentCallersShareOneTokenFetch) {
  std::atomic<int> fetches{0};
  class Slow : public HttpTransport {
   public:
    explicit Slow(std::atomic<int>* n) : n_(n) {}
    absl::StatusOr<HttpResponse> Do(const HttpRequest&) override {
      ++*n_;
      absl::SleepFor(absl::Milliseconds(100));
      HttpResponse r;
      r.status = 200;
      r.body = R"({"token":"shared","expires_in":300})";
      return r;
    }
    std::atomic<int>* n_;
  } t(&fetches);
  Authorizer auth(&t, nullptr);
  ASSERT_TRUE(auth.OnUnauthorized("reg", {"repository:a:pull"},
                                  Unauthorized(R"(Bearer realm="https://auth/t")"), {},
                                  absl::Seconds(1))
                  .ok());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      HttpRequest req;  // a new scope: every caller needs a token at once
      if (auth.Authorize("reg", {"repository:b:pull"}, {}, absl::Seconds(1), &req).ok() &&
          AuthHeader(req) == "Bearer shared") {
        ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ(fetches.load(), 2);  // one for scope a, one shared by the eight callers
  // A 401 to a request carrying a token someone else already replaced needs no fetch.
  ASSERT_TRUE(auth.OnUnauthorized("reg", {"repository:b:pull"},
                                  Unauthorized(R"(Bearer realm="https://auth/t")"), {},
                                  absl::Seconds(1), "Bearer stale")
                  .ok());
  EXPECT_EQ(fetches.load(), 2);
  ASSERT_TRUE(auth.OnUnauthorized("reg", {"repository:b:pull"},
                                  Unauthorized(R"(Bearer realm="https://auth/t")"), {},
                                  absl::Seconds(1), "Bearer shared")
                  .ok());
  EXPECT_EQ(fetches.load(), 3);
}

TEST(AuthorizerTest, IdentityTokenUsesTheRefreshGrant) {
  ScriptedTransport t;
  t.answer = [](const HttpRequest&) {
    HttpResponse r;
    r.status = 200;
    r.body = R"({"access_token":"acc","expires_in":60})";
    return r;
  };
  CredentialStore creds;
  creds.Add("reg", {"", "", "refresh-secret"});
  Authorizer auth(&t, &creds);
  ASSERT_TRUE(auth.OnUnauthorized("reg", {"repository:a:pull"},
                                  Unauthorized(R"(Bearer realm="https://auth/t",service="svc")"),
                                  {}, absl::Seconds(1))
                  .ok());
  ASSERT_EQ(t.seen.size(), 1u);
  EXPECT_EQ(t.seen[0].method, "POST");
  EXPECT_NE(t.seen[0].body.find("grant_type=refresh_token"), std::string::npos);
  EXPECT_NE(t.seen[0].body.find("refresh_token=refresh-secret"), std::string::npos);
  HttpRequest req;
  ASSERT_TRUE(auth.Authorize("reg", {"repository:a:pull"}, {}, absl::Seconds(1), &req).ok());
  EXPECT_EQ(AuthHeader(req), "Bearer acc");
}

TEST(AuthorizerTest, RefusalsAndBasic) {
  ScriptedTransport t;
  t.answer = [](const HttpRequest&) {
    HttpResponse r;
    r.status = 401;
    return r;
  };
  CredentialStore creds;
  creds.Add("reg", {"u", "hunter2", ""});
  Authorizer auth(&t, &creds);
  absl::Status s =
      auth.OnUnauthorized("reg", {"repository:a:pull"},
                          Unauthorized(R"(Bearer realm="https://auth/t")"), {}, absl::Seconds(1));
  EXPECT_TRUE(absl::IsUnauthenticated(s));
  EXPECT_EQ(s.ToString().find("hunter2"), std::string::npos);
  EXPECT_EQ(AuthHeader(t.seen[0]), "Basic dTpodW50ZXIy");
  EXPECT_TRUE(absl::IsUnauthenticated(auth.OnUnauthorized(
      "reg", {}, Unauthorized(R"(Bearer realm="file:///etc/passwd")"), {}, absl::Seconds(1))));
  EXPECT_TRUE(absl::IsUnauthenticated(
      auth.OnUnauthorized("reg", {}, Unauthorized("Negotiate"), {}, absl::Seconds(1))));
  // Basic: credentials sent after the challenge; a 401 to a request carrying them means
  // they were refused.
  ASSERT_TRUE(
      auth.OnUnauthorized("reg", {}, Unauthorized(R"(Basic realm="r")"), {}, absl::Seconds(1))
          .ok());
  HttpRequest req;
  ASSERT_TRUE(auth.Authorize("reg", {}, {}, absl::Seconds(1), &req).ok());
  EXPECT_EQ(AuthHeader(req), "Basic dTpodW50ZXIy");
  EXPECT_TRUE(absl::IsUnauthenticated(auth.OnUnauthorized(
      "reg", {}, Unauthorized(R"(Basic realm="r")"), {}, absl::Seconds(1), AuthHeader(req))));
  Authorizer anonymous(&t, nullptr);
  EXPECT_TRUE(absl::IsUnauthenticated(anonymous.OnUnauthorized(
      "reg", {}, Unauthorized(R"(Basic realm="r")"), {}, absl::Seconds(1))));
}

}  // namespace
}  // namespace lazysnap::registry

// Authentication against a real docker-registry: htpasswd basic auth and token auth with a
// token server of the test's own (JWTs signed with a key the test makes with openssl).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "base/digest.h"
#include "base/log.h"
#include "base/stream.h"
#include "base/strings.h"
#include "registry/blob_reader.h"
#include "registry/client.h"
#include "registry/credentials.h"
#include "registry/curl_transport.h"
#include "registry/testenv.h"
#include "registry/token_server.h"

namespace lazysnap::registry {
namespace {

using testing::RegistryConfig;
using testing::RegistryProcess;
using testing::RunCommand;
using testing::TempDir;
using testing::TokenServer;

constexpr char kUser[] = "alice";
constexpr char kPassword[] = "s3cret-Pa55word";

class AuthIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RegistryProcess::Available()) GTEST_SKIP() << "no docker-registry";
    dir_ = std::move(TempDir::Create()).value();
    transport_ = std::move(CurlTransport::Create()).value();
  }
  std::string Path(std::string_view name) { return StrCat(dir_->path(), "/", name); }
  // A self-signed signing certificate for the token server.
  void MakeSigningKey(const std::string& prefix) {
    ASSERT_TRUE(RunCommand({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                            "1", "-subj", "/CN=lazysnap-token", "-keyout", Path(prefix + ".key"),
                            "-out", Path(prefix + ".pem")})
                    .ok());
  }
  ClientOptions Options() {
    ClientOptions o;
    o.retry.deadline = absl::Seconds(10);
    return o;
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<CurlTransport> transport_;
};

TEST_F(AuthIntegrationTest, HtpasswdBasicAuth) {
  if (::access("/usr/bin/htpasswd", X_OK) != 0) GTEST_SKIP() << "no htpasswd (apache2-utils)";
  ASSERT_TRUE(RunCommand({"htpasswd", "-Bbc", Path("htpasswd"), kUser, kPassword}).ok());
  RegistryConfig cfg;
  cfg.htpasswd_file = Path("htpasswd");
  auto reg = RegistryProcess::Start(cfg, dir_->path());
  ASSERT_TRUE(reg.ok()) << reg.status();
  Reference ref = *Reference::Parse(StrCat((*reg)->host(), "/private/app:1"));

  RegistryClient anonymous(transport_.get(), nullptr, Options());
  EXPECT_TRUE(absl::IsUnauthenticated(anonymous.PushBlob(ref, "data").status()));

  CredentialStore wrong;
  wrong.Add((*reg)->host(), {kUser, "wrong", ""});
  RegistryClient bad(transport_.get(), &wrong, Options());
  EXPECT_TRUE(absl::IsUnauthenticated(bad.PushBlob(ref, "data").status()));

  // Credentials as `docker login` writes them: base64 "user:password" under auths.
  CredentialStore creds;
  std::string config = StrCat(R"({"auths":{"http://)", (*reg)->host(), R"(":{"auth":")",
                              absl::Base64Escape(StrCat(kUser, ":", kPassword)), R"("}}})");
  ASSERT_TRUE(creds.AddDockerConfig(config).ok());
  RegistryClient good(transport_.get(), &creds, Options());
  std::string blob(100000, 'x');
  auto d = good.PushBlob(ref, blob);
  ASSERT_TRUE(d.ok()) << d.status();
  auto src = good.OpenBlob(ref, d->digest);
  ASSERT_TRUE(src.ok()) << src.status();
  std::string buf(10, '\0');
  EXPECT_TRUE((*src)->ReadAt(500, absl::MakeSpan(buf)).ok());
  EXPECT_EQ(buf, blob.substr(500, 10));
  EXPECT_EQ(good.authorizer().token_fetches(), 0);
}

TEST_F(AuthIntegrationTest, BearerTokensAnonymousCredentialedAndRefreshed) {
  MakeSigningKey("sign");
  TokenServer::Options topts;
  topts.key_file = Path("sign.key");
  topts.cert_file = Path("sign.pem");
  topts.username = kUser;
  topts.password = kPassword;
  topts.expires_in = 31;  // the client refreshes 30 s before expiry: after about a second
  auto tokens = TokenServer::Start(topts);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  RegistryConfig cfg;
  cfg.token_realm = (*tokens)->realm();
  cfg.token_service = topts.service;
  cfg.token_issuer = topts.issuer;
  cfg.token_root_bundle = Path("sign.pem");
  auto reg = RegistryProcess::Start(cfg, dir_->path());
  ASSERT_TRUE(reg.ok()) << reg.status();
  Reference ref = *Reference::Parse(StrCat((*reg)->host(), "/team/app:1"));

  CredentialStore creds;
  creds.Add((*reg)->host(), {kUser, kPassword, ""});
  // Capture everything logged at debug level: neither secret may appear.
  SetLogLevel(LogLevel::kDebug);
  ::testing::internal::CaptureStderr();
  RegistryClient client(transport_.get(), &creds, Options());
  std::string blob(200000, 'y');
  auto d = client.PushBlob(ref, blob);
  ASSERT_TRUE(d.ok()) << d.status();
  auto src = std::move(client.OpenBlob(ref, d->digest)).value();
  int fetches_before_reads = client.authorizer().token_fetches();
  std::string buf(1000, '\0');
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(src->ReadAt(i * 1000, absl::MakeSpan(buf)).ok());
  }
  EXPECT_EQ(client.authorizer().token_fetches(), fetches_before_reads) << "token not cached";
  absl::SleepFor(absl::Milliseconds(1500));  // now within 30 s of expiry
  ASSERT_TRUE(src->ReadAt(0, absl::MakeSpan(buf)).ok());
  EXPECT_EQ(client.authorizer().token_fetches(), fetches_before_reads + 1) << "not refreshed";

  // Anonymous: pull is granted, push is not.
  RegistryClient anonymous(transport_.get(), nullptr, Options());
  auto anon_src = anonymous.OpenBlob(ref, d->digest);
  ASSERT_TRUE(anon_src.ok()) << anon_src.status();
  EXPECT_TRUE((*anon_src)->ReadAt(0, absl::MakeSpan(buf)).ok());
  auto denied = anonymous.PushBlob(ref, "other data");
  EXPECT_FALSE(denied.ok());

  // Wrong password: the token server refuses.
  CredentialStore wrong;
  wrong.Add((*reg)->host(), {kUser, "nope", ""});
  RegistryClient bad(transport_.get(), &wrong, Options());
  auto refused = bad.PushBlob(ref, "more data");
  EXPECT_TRUE(absl::IsUnauthenticated(refused.status())) << refused.status();
  std::string logged = ::testing::internal::GetCapturedStderr();
  SetLogLevel(LogLevel::kInfo);
  EXPECT_EQ(logged.find(kPassword), std::string::npos);
  EXPECT_EQ(logged.find(absl::Base64Escape(StrCat(kUser, ":", kPassword))), std::string::npos);
  EXPECT_EQ(refused.status().ToString().find("nope"), std::string::npos);
}

TEST_F(AuthIntegrationTest, IdentityTokenFromDockerConfig) {
  MakeSigningKey("idp");
  TokenServer::Options topts;
  topts.key_file = Path("idp.key");
  topts.cert_file = Path("idp.pem");
  topts.username = kUser;  // basic credentials would work too; this client has none
  topts.password = kPassword;
  topts.refresh_token = "idp-refresh-token";
  auto tokens = std::move(TokenServer::Start(topts)).value();
  RegistryConfig cfg;
  cfg.token_realm = tokens->realm();
  cfg.token_service = topts.service;
  cfg.token_issuer = topts.issuer;
  cfg.token_root_bundle = Path("idp.pem");
  auto reg = std::move(RegistryProcess::Start(cfg, dir_->path())).value();
  Reference ref = *Reference::Parse(StrCat(reg->host(), "/sso/app:1"));
  CredentialStore creds;
  ASSERT_TRUE(creds
                  .AddDockerConfig(StrCat(R"({"auths":{")", reg->host(),
                                          R"(":{"identitytoken":"idp-refresh-token"}}})"))
                  .ok());
  RegistryClient client(transport_.get(), &creds, Options());
  auto d = client.PushBlob(ref, "pushed with an identity token");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*client.FetchBlob(ref, d->digest, 100), "pushed with an identity token");
  CredentialStore stale;
  stale.Add(reg->host(), {"", "", "revoked"});
  RegistryClient refused(transport_.get(), &stale, Options());
  EXPECT_TRUE(absl::IsUnauthenticated(refused.PushBlob(ref, "nope").status()));
  EXPECT_GE(tokens->refusals(), 1);
}

TEST_F(AuthIntegrationTest, RejectedTokenIsReplacedOn401) {
  MakeSigningKey("old");
  MakeSigningKey("new");
  TokenServer::Options topts;
  topts.key_file = Path("old.key");
  topts.cert_file = Path("old.pem");
  topts.expires_in = 3600;
  auto old_tokens = std::move(TokenServer::Start(topts)).value();
  RegistryConfig cfg;
  cfg.token_realm = old_tokens->realm();
  cfg.token_service = topts.service;
  cfg.token_issuer = topts.issuer;
  cfg.token_root_bundle = Path("old.pem");
  auto reg = std::move(RegistryProcess::Start(cfg, dir_->path())).value();
  Reference ref = *Reference::Parse(StrCat(reg->host(), "/rotating/app:1"));
  RegistryClient client(transport_.get(), nullptr, Options());
  auto d = client.PushBlob(ref, std::string(5000, 'z'));
  ASSERT_TRUE(d.ok()) << d.status();
  auto src = std::move(client.OpenBlob(ref, d->digest)).value();
  std::string buf(100, '\0');
  ASSERT_TRUE(src->ReadAt(0, absl::MakeSpan(buf)).ok());
  int before = client.authorizer().token_fetches();

  // The registry restarts trusting a new signing key (same port, same storage): the cached,
  // unexpired token is refused with 401 and the client gets a new one from the new realm.
  int port = reg->port();
  reg->Stop();
  topts.key_file = Path("new.key");
  topts.cert_file = Path("new.pem");
  auto new_tokens = std::move(TokenServer::Start(topts)).value();
  cfg.token_realm = new_tokens->realm();
  cfg.token_root_bundle = Path("new.pem");
  auto reg2 = RegistryProcess::Start(cfg, dir_->path(), port);
  ASSERT_TRUE(reg2.ok()) << reg2.status();
  ASSERT_TRUE(src->ReadAt(100, absl::MakeSpan(buf)).ok());
  EXPECT_EQ(client.authorizer().token_fetches(), before + 1);
  EXPECT_EQ(new_tokens->tokens_issued(), 1);
}

}  // namespace
}  // namespace lazysnap::registry

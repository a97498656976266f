// RegistryClient over a scripted transport: the referrers API, digest checks, mirror order.
#include "registry/client.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "base/strings.h"

namespace lazysnap::registry {
namespace {

class Scripted : public HttpTransport {
 public:
  std::function<HttpResponse(const HttpRequest&)> answer;
  absl::StatusOr<HttpResponse> Do(const HttpRequest& r) override {
    {
      absl::MutexLock l(&mu_);
      urls_.push_back(StrCat(r.method, " ", r.url));
    }
    return answer(r);
  }
  std::vector<std::string> urls() {
    absl::MutexLock l(&mu_);
    return urls_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> urls_ ABSL_GUARDED_BY(mu_);
};

HttpResponse Ok(std::string body, std::vector<std::pair<std::string, std::string>> headers = {}) {
  HttpResponse r;
  r.status = 200;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

HttpResponse Status(int code) {
  HttpResponse r;
  r.status = code;
  return r;
}

ClientOptions Fast() {
  ClientOptions o;
  o.retry.deadline = absl::Milliseconds(300);
  o.retry.initial_backoff = absl::Milliseconds(1);
  return o;
}

const Reference kRef = *Reference::Parse("reg.test/app:1");

TEST(ClientTest, AServerErrorAnswerIsReturnedAfterAFewAttemptsNotAtTheDeadline) {
  // docker-registry answers 500 (UNKNOWN) to a blob digest asked for as a manifest.
  Scripted t;
  t.answer = [](const HttpRequest&) {
    HttpResponse r = Status(500);
    r.body = R"({"errors":[{"code":"UNKNOWN","message":"unknown error"}]})";
    return r;
  };
  ClientOptions o;
  o.retry.deadline = absl::Seconds(30);
  o.retry.initial_backoff = absl::Milliseconds(1);
  RegistryClient c(&t, nullptr, o);
  absl::Time start = absl::Now();
  auto m = c.FetchManifest(kRef.WithObject(Sha256::Of("a blob").ToString()));
  EXPECT_TRUE(absl::IsUnavailable(m.status())) << m.status();
  EXPECT_NE(m.status().message().find("HTTP 500"), std::string::npos) << m.status();
  EXPECT_EQ(t.urls().size(), static_cast<size_t>(o.retry.max_server_error_rounds));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(ClientTest, FetchBlobOfAKnownSizeIsOneRequest) {
  const std::string config = R"({"architecture":"amd64"})";
  Scripted t;
  t.answer = [&](const HttpRequest& r) {
    if (r.method == "HEAD") return Ok("", {{"content-length", StrCat(config.size())}});
    return Ok(config);
  };
  RegistryClient c(&t, nullptr, Fast());
  auto got = c.FetchBlob(kRef, Sha256::Of(config), 1 << 20, config.size());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, config);
  EXPECT_EQ(t.urls().size(), 1u);  // no HEAD
  // A wrong size from a descriptor is not trusted: the digest check fails.
  Scripted t2;
  t2.answer = t.answer;
  RegistryClient c2(&t2, nullptr, Fast());
  EXPECT_FALSE(c2.FetchBlob(kRef, Sha256::Of(config), 1 << 20, config.size() + 1).ok());
  // Without a size: HEAD, then GET.
  Scripted t3;
  t3.answer = t.answer;
  RegistryClient c3(&t3, nullptr, Fast());
  ASSERT_TRUE(c3.FetchBlob(kRef, Sha256::Of(config), 1 << 20).ok());
  EXPECT_EQ(t3.urls().size(), 2u);
}

TEST(ClientTest, ReferrersApiFilteredByArtifactType) {
  const Sha256 subject = Sha256::Of("subject");
  std::string index = StrCat(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)",
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")",
      Sha256::Of("a").ToString(), R"(","size":1,"artifactType":"application/x.trace"},)",
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")",
      Sha256::Of("b").ToString(), R"(","size":1,"artifactType":"application/x.sbom"}]})");
  Scripted t;
  t.answer = [&](const HttpRequest& r) {
    if (r.url.find("/referrers/") != std::string::npos) return Ok(index);
    return Status(404);
  };
  RegistryClient client(&t, nullptr, Fast());
  auto all = client.Referrers(kRef, subject);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 2u);
  auto traces = client.Referrers(kRef, subject, "application/x.trace");
  ASSERT_TRUE(traces.ok());
  ASSERT_EQ(traces->size(), 1u);
  EXPECT_EQ((*traces)[0].digest, Sha256::Of("a"));
  EXPECT_EQ(t.urls()[0], StrCat("GET https://reg.test/v2/app/referrers/", subject.ToString()));
}

TEST(ClientTest, ManifestDigestsAreChecked) {
  const std::string manifest = R"({"schemaVersion":2,"config":{},"layers":[]})";
  std::string header_digest = Sha256::Of(manifest).ToString();
  Scripted t;
  t.answer = [&](const HttpRequest& r) {
    if (r.method == "HEAD") return Ok("", {{"content-type", "application/json"}});
    return Ok(manifest, {{"docker-content-digest", header_digest}});
  };
  RegistryClient client(&t, nullptr, Fast());
  auto m = client.FetchManifest(kRef);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->descriptor.media_type, kOciManifestMediaType);  // no mediaType, no index shape
  // HEAD without a digest: resolved by GET.
  auto d = client.Resolve(kRef);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest, Sha256::Of(manifest));
  header_digest = Sha256::Of("other").ToString();
  auto bad = client.FetchManifest(kRef);
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("digest"), std::string::npos) << bad.status();
  auto by_digest = client.FetchManifest(kRef.WithObject(Sha256::Of("x").ToString()));
  EXPECT_FALSE(by_digest.ok());
}

TEST(ClientTest, MirrorMissesFallToTheOriginWithNs) {
  auto dir = ::testing::TempDir();
  std::string certs = StrCat(dir, "/h6-client-test-certs.d");
  ASSERT_EQ(std::system(StrCat("mkdir -p ", certs, "/reg.test").c_str()), 0);
  FILE* f = std::fopen(StrCat(certs, "/reg.test/hosts.toml").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("[host.\"https://mirror.test\"]\n  capabilities = [\"pull\"]\n", f);
  std::fclose(f);
  Scripted t;
  t.answer = [&](const HttpRequest& r) {
    if (r.url.rfind("https://mirror.test/", 0) == 0) return Status(404);
    return Ok("{}", {{"docker-content-digest", Sha256::Of("{}").ToString()}});
  };
  ClientOptions o = Fast();
  o.hosts_dir = certs;
  RegistryClient client(&t, nullptr, o);
  // By digest: pull hosts, mirror first (with ?ns=), then the origin.
  auto m = client.FetchManifest(kRef.WithObject(Sha256::Of("{}").ToString()));
  ASSERT_TRUE(m.ok()) << m.status();
  auto urls = t.urls();
  ASSERT_EQ(urls.size(), 2u);
  EXPECT_EQ(urls[0], StrCat("GET https://mirror.test/v2/app/manifests/",
                            Sha256::Of("{}").ToString(), "?ns=reg.test"));
  EXPECT_EQ(urls[1].rfind("GET https://reg.test/v2/app/manifests/", 0), 0u);
  // By tag: the mirror lacks "resolve", only the origin is asked.
  ASSERT_TRUE(client.FetchManifest(kRef).ok());
  EXPECT_EQ(t.urls().size(), 3u);
  EXPECT_EQ(t.urls()[2], "GET https://reg.test/v2/app/manifests/1");
}

}  // namespace
}  // namespace lazysnap::registry

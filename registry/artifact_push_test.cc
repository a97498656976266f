// PushArtifact against an in-memory registry without the referrers API (the tag schema), with
// two nodes pushing traces for one image at once.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "base/strings.h"
#include "registry/artifact.h"
#include "registry/client.h"

namespace lazysnap::registry {
namespace {

constexpr char kType[] = "application/vnd.lazysnap.trace.v1+json";

// Blobs, uploads and manifests of one repository in memory; /referrers/ is 404. With
// `writers` > 1, the answers to the first `writers` GETs of a "sha256-" tag (each read when it
// arrives) are held until that many have arrived, and so are the answers to the first
// `writers` PUTs of it (each applied when it arrives), at most 5 s each: the writers all read
// the index before any of them writes it, and all write it before any reads it again. The
// last write drops the others' entries: what two nodes pushing at once can meet.
class MemRegistry : public HttpTransport {
 public:
  explicit MemRegistry(int writers) : hold_reads_(writers), hold_writes_(writers) {}

  absl::StatusOr<HttpResponse> Do(const HttpRequest& r) override {
    std::string path = r.url.substr(r.url.find("/v2/"));
    std::string query;
    if (size_t q = path.find('?'); q != std::string::npos) {
      query = path.substr(q + 1);
      path = path.substr(0, q);
    }
    const std::string kManifests = "/v2/app/manifests/", kBlobs = "/v2/app/blobs/";
    if (path.rfind(kManifests, 0) == 0) {
      std::string object = path.substr(kManifests.size());
      if (r.method == "PUT") return PutManifest(object, r);
      std::optional<std::pair<std::string, std::string>> m;  // read, then maybe held
      {
        absl::MutexLock l(&mu_);
        if (auto it = manifests_.find(object); it != manifests_.end()) m = it->second;
      }
      if (object.rfind("sha256-", 0) == 0 && r.method == "GET") Hold(&hold_reads_);
      if (!m) return Answer(404);
      HttpResponse resp = Answer(200, r.method == "HEAD" ? "" : m->second);
      resp.headers = {{"content-type", m->first},
                      {"docker-content-digest", Sha256::Of(m->second).ToString()},
                      {"content-length", StrCat(m->second.size())}};
      return resp;
    }
    absl::MutexLock l(&mu_);
    if (path == "/v2/app/blobs/uploads/" && r.method == "POST") {
      HttpResponse resp = Answer(202);
      resp.headers = {{"location", StrCat("/v2/app/blobs/uploads/", ++uploads_)}};
      return resp;
    }
    if (path.rfind("/v2/app/blobs/uploads/", 0) == 0 && r.method == "PUT") {
      std::string digest = query.substr(query.find("digest=") + 7);
      blobs_[digest] = r.body;
      return Answer(201);
    }
    if (path.rfind(kBlobs, 0) == 0) {
      auto it = blobs_.find(path.substr(kBlobs.size()));
      if (it == blobs_.end()) return Answer(404);
      HttpResponse resp = Answer(200, r.method == "HEAD" ? "" : it->second);
      resp.headers = {{"content-length", StrCat(it->second.size())}};
      return resp;
    }
    return Answer(path == "/v2/" ? 200 : 404);
  }

 private:
  static HttpResponse Answer(int status, std::string body = "") {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }
  HttpResponse PutManifest(const std::string& object, const HttpRequest& r) {
    absl::ReleasableMutexLock l(&mu_);
    std::string type;
    for (const auto& [k, v] : r.headers) {
      if (k == "Content-Type") type = v;
    }
    manifests_[object] = {type, r.body};
    manifests_[Sha256::Of(r.body).ToString()] = {type, r.body};
    HttpResponse resp = Answer(201);
    resp.headers = {{"docker-content-digest", Sha256::Of(r.body).ToString()}};
    if (object.rfind("sha256-", 0) == 0) {
      l.Release();
      Hold(&hold_writes_);
    }
    return resp;
  }
  // Counts *pending down; waits (up to 5 s) until it reaches 0.
  void Hold(int* pending) {
    absl::MutexLock l(&mu_);
    if (*pending <= 0) return;
    if (--*pending == 0) return;
    auto released = [pending]() { return *pending <= 0; };
    mu_.AwaitWithTimeout(absl::Condition(&released), absl::Seconds(5));
  }

  absl::Mutex mu_;
  int hold_reads_ ABSL_GUARDED_BY(mu_);
  int hold_writes_ ABSL_GUARDED_BY(mu_);
  int uploads_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::string> blobs_ ABSL_GUARDED_BY(mu_);
  // object (tag or digest) -> (media type, bytes)
  std::map<std::string, std::pair<std::string, std::string>> manifests_ ABSL_GUARDED_BY(mu_);
};

ClientOptions Fast() {
  ClientOptions o;
  o.retry.deadline = absl::Seconds(10);
  o.retry.initial_backoff = absl::Milliseconds(1);
  return o;
}

const Reference kRepo = *Reference::Parse("reg.test/app:1");

TEST(ArtifactPushTest, TwoNodesPushingAtOnceBothEndInTheTagIndex) {
  MemRegistry reg(/*writers=*/2);
  const Descriptor subject = DescriptorOf(kOciManifestMediaType, "the image manifest");
  absl::StatusOr<PushedArtifact> a, b;
  std::thread node_a([&] {
    RegistryClient client(&reg, nullptr, Fast());
    a = PushArtifact(client, kRepo, subject, kType, kType, "trace of node a",
                     "2026-11-24T23:00:00Z");
  });
  std::thread node_b([&] {
    RegistryClient client(&reg, nullptr, Fast());
    b = PushArtifact(client, kRepo, subject, kType, kType, "trace of node b",
                     "2026-11-24T23:00:01Z");
  });
  node_a.join();
  node_b.join();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  RegistryClient client(&reg, nullptr, Fast());
  auto referrers = client.Referrers(kRepo, subject.digest, kType);
  ASSERT_TRUE(referrers.ok()) << referrers.status();
  int found = 0;
  for (const Descriptor& d : *referrers) {
    found += d.digest == a->manifest.digest || d.digest == b->manifest.digest;
  }
  EXPECT_EQ(found, 2) << referrers->size() << " referrers";
  // The newest is pulled.
  auto pulled = PullArtifact(client, kRepo, subject.digest, kType, 1 << 20);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->blob, "trace of node b");
}

TEST(ArtifactPushTest, OneNodeAlone) {
  MemRegistry reg(/*writers=*/0);
  const Descriptor subject = DescriptorOf(kOciManifestMediaType, "the image manifest");
  RegistryClient client(&reg, nullptr, Fast());
  auto a = PushArtifact(client, kRepo, subject, kType, kType, "trace", "");
  ASSERT_TRUE(a.ok()) << a.status();
  auto referrers = client.Referrers(kRepo, subject.digest, kType);
  ASSERT_TRUE(referrers.ok()) << referrers.status();
  ASSERT_EQ(referrers->size(), 1u);
  EXPECT_EQ((*referrers)[0].digest, a->manifest.digest);
}

}  // namespace
}  // namespace lazysnap::registry

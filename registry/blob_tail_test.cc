// RegistryClient::ReadBlobTail over a scripted transport: one suffix range request gives the
// size and the tail; a server that ignores ranges, a redirect to blob storage, and answers
// that are not the tail.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "base/strings.h"
#include "registry/client.h"

namespace lazysnap::registry {
namespace {

class Scripted : public HttpTransport {
 public:
  std::function<HttpResponse(const HttpRequest&)> answer;
  absl::StatusOr<HttpResponse> Do(const HttpRequest& r) override {
    absl::MutexLock l(&mu_);
    requests.push_back(r);
    return answer(r);
  }
  std::vector<HttpRequest> requests;

 private:
  absl::Mutex mu_;
};

std::string RangeOf(const HttpRequest& r) {
  for (const auto& [k, v] : r.headers) {
    if (k == "Range") return v;
  }
  return "";
}

// A server holding `blob` that answers suffix ranges as RFC 9110 says.
HttpResponse Serve(const std::string& blob, const HttpRequest& r) {
  HttpResponse resp;
  std::string range = RangeOf(r);
  if (range.rfind("bytes=-", 0) != 0) {
    resp.status = 200;
    resp.body = blob;
    return resp;
  }
  size_t n = std::min<size_t>(std::stoul(range.substr(7)), blob.size());
  resp.status = 206;
  resp.body = blob.substr(blob.size() - n);
  resp.headers = {{"content-range", StrCat("bytes ", blob.size() - n, "-", blob.size() - 1, "/",
                                           blob.size())}};
  return resp;
}

ClientOptions Fast() {
  ClientOptions o;
  o.retry.deadline = absl::Milliseconds(300);
  o.retry.initial_backoff = absl::Milliseconds(1);
  return o;
}

const Reference kRef = *Reference::Parse("reg.test/app:1");
const Sha256 kDigest = Sha256::Of("blob");

std::string Blob() {
  std::string b;
  for (int i = 0; i < 5000; ++i) b += static_cast<char>('a' + i % 26);
  return b;
}

TEST(BlobTailTest, OneSuffixRangeRequestGivesSizeAndTail) {
  const std::string blob = Blob();
  Scripted t;
  t.answer = [&](const HttpRequest& r) { return Serve(blob, r); };
  RegistryClient client(&t, nullptr, Fast());
  auto tail = client.ReadBlobTail(kRef, kDigest, 1000);
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_EQ(tail->size, blob.size());
  EXPECT_EQ(tail->bytes, blob.substr(4000));
  ASSERT_EQ(t.requests.size(), 1u);
  EXPECT_EQ(t.requests[0].method, "GET");
  EXPECT_EQ(t.requests[0].url, StrCat("https://reg.test/v2/app/blobs/", kDigest.ToString()));
  EXPECT_EQ(RangeOf(t.requests[0]), "bytes=-1000");

  // A tail longer than the blob: the whole blob.
  tail = client.ReadBlobTail(kRef, kDigest, 1 << 20);
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_EQ(tail->size, blob.size());
  EXPECT_EQ(tail->bytes, blob);
}

TEST(BlobTailTest, ServerIgnoringRangesAndRedirects) {
  const std::string blob = Blob();
  Scripted t;
  t.answer = [&](const HttpRequest& r) {
    if (r.url.find("storage.test") == std::string::npos) {
      HttpResponse redirect;
      redirect.status = 307;
      redirect.headers = {{"location", "https://storage.test/blob?sig=1"}};
      return redirect;
    }
    HttpResponse whole;  // ignores Range
    whole.status = 200;
    whole.body = blob;
    return whole;
  };
  RegistryClient client(&t, nullptr, Fast());
  auto tail = client.ReadBlobTail(kRef, kDigest, 100);
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_EQ(tail->size, blob.size());
  EXPECT_EQ(tail->bytes, blob.substr(4900));
  ASSERT_EQ(t.requests.size(), 2u);
  EXPECT_EQ(t.requests[1].url, "https://storage.test/blob?sig=1");
  EXPECT_EQ(RangeOf(t.requests[1]), "bytes=-100");
  // A whole blob much larger than the tail is refused by the transport (max_body) rather
  // than downloaded: the caller reads the blob with range requests instead.
  EXPECT_EQ(t.requests[0].max_body, 100u + (64u << 10));
  EXPECT_EQ(t.requests[1].max_body, 100u + (64u << 10));
}

TEST(BlobTailTest, AnswersThatAreNotTheTailAreErrors) {
  const std::string blob = Blob();
  Scripted t;
  RegistryClient client(&t, nullptr, Fast());
  // 206 for the wrong range (not up to the end), a short body, no Content-Range.
  for (auto header : std::vector<std::pair<std::string, std::string>>{
           {"content-range", "bytes 0-99/5000"},
           {"content-range", "bytes 4900-4999/5000"},  // body below is 50 bytes
           {"x-other", "1"}}) {
    t.answer = [&](const HttpRequest&) {
      HttpResponse r;
      r.status = 206;
      r.body = header.second == "bytes 0-99/5000" ? blob.substr(0, 100) : blob.substr(0, 50);
      r.headers = {header};
      return r;
    };
    auto tail = client.ReadBlobTail(kRef, kDigest, 100);
    EXPECT_FALSE(tail.ok()) << header.second;
  }
  t.answer = [&](const HttpRequest&) {
    HttpResponse r;
    r.status = 404;
    return r;
  };
  EXPECT_TRUE(absl::IsNotFound(client.ReadBlobTail(kRef, kDigest, 100).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(client.ReadBlobTail(kRef, kDigest, 0).status()));
}

}  // namespace
}  // namespace lazysnap::registry

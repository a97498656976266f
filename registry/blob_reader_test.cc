// RegistryBlobSource over a scripted fake transport: redirect caching, servers that ignore
// or only partly honour ranges, inconsistent answers.
#include "registry/blob_reader.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "base/strings.h"
#include "registry/client.h"

namespace lazysnap::registry {
namespace {

// Serves one blob; counts requests by URL prefix. Thread-safe.
class FakeTransport : public HttpTransport {
 public:
  using Handler = std::function<absl::StatusOr<HttpResponse>(const HttpRequest&)>;
  explicit FakeTransport(Handler h) : handler_(std::move(h)) {}
  absl::StatusOr<HttpResponse> Do(const HttpRequest& r) override {
    {
      absl::MutexLock l(&mu_);
      urls_.push_back(r.url);
    }
    return handler_(r);
  }
  int Count(std::string_view prefix) {
    absl::MutexLock l(&mu_);
    int n = 0;
    for (const auto& u : urls_) n += u.rfind(prefix, 0) == 0;
    return n;
  }

 private:
  Handler handler_;
  absl::Mutex mu_;
  std::vector<std::string> urls_ ABSL_GUARDED_BY(mu_);
};

std::string RangeHeader(const HttpRequest& r) {
  for (const auto& [k, v] : r.headers) {
    if (k == "Range") return v;
  }
  return "";
}

std::vector<std::pair<uint64_t, uint64_t>> Ranges(const std::string& header) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (absl::string_view part : absl::StrSplit(AV(std::string_view(header).substr(6)), ',')) {
    std::vector<std::string> ab = absl::StrSplit(part, '-');
    uint64_t a = 0, b = 0;
    EXPECT_TRUE(absl::SimpleAtoi(ab[0], &a) && absl::SimpleAtoi(ab[1], &b));
    out.emplace_back(a, b);
  }
  return out;
}

HttpResponse Partial(const std::string& blob, uint64_t a, uint64_t b) {
  HttpResponse r;
  r.status = 206;
  r.headers = {{"content-range", StrCat("bytes ", a, "-", b, "/", blob.size())}};
  r.body = blob.substr(a, b - a + 1);
  return r;
}

HttpResponse Multipart(const std::string& blob,
                       const std::vector<std::pair<uint64_t, uint64_t>>& rs) {
  HttpResponse r;
  r.status = 206;
  r.headers = {{"content-type", "multipart/byteranges; boundary=XYZ"}};
  for (auto [a, b] : rs) {
    StrAppend(&r.body, "--XYZ\r\nContent-Range: bytes ", a, "-", b, "/", blob.size(), "\r\n\r\n",
              blob.substr(a, b - a + 1), "\r\n");
  }
  r.body += "--XYZ--\r\n";
  return r;
}

class BlobReaderTest : public ::testing::Test {
 protected:
  BlobReaderTest() {
    for (int i = 0; i < 10000; ++i) blob_.push_back(static_cast<char>('a' + i % 26 + i / 26 % 3));
  }
  std::unique_ptr<RegistryBlobSource> Open(HttpTransport* t) {
    ClientOptions o;
    o.retry.deadline = absl::Milliseconds(500);
    o.retry.initial_backoff = absl::Milliseconds(5);
    client_ = std::make_unique<RegistryClient>(t, nullptr, o);
    return std::move(client_->OpenBlob(*Reference::Parse("reg.test/a/b"), Sha256::Of(blob_),
                                       blob_.size()))
        .value();
  }
  std::string Read(RegistryBlobSource& src, uint64_t off, size_t n, absl::Status* s = nullptr) {
    std::string buf(n, '\0');
    absl::Status st = src.ReadAt(off, absl::MakeSpan(buf));
    if (s != nullptr) *s = st;
    return buf;
  }

  std::string blob_;
  std::unique_ptr<RegistryClient> client_;
};

TEST_F(BlobReaderTest, RedirectIsCachedUntilItFails) {
  int storage_failures = 0;
  FakeTransport t([&](const HttpRequest& r) -> absl::StatusOr<HttpResponse> {
    if (r.url.rfind("https://reg.test/", 0) == 0) {
      HttpResponse redirect;
      redirect.status = 307;
      redirect.headers = {{"location", "https://storage.test/blob?X-Signature=abc"}};
      return redirect;
    }
    for (const auto& [k, v] : r.headers) EXPECT_NE(k, "Authorization");
    if (storage_failures > 0) {
      --storage_failures;
      HttpResponse expired;
      expired.status = 403;
      return expired;
    }
    auto rs = Ranges(RangeHeader(r));
    return Partial(blob_, rs[0].first, rs[0].second);
  });
  auto src = Open(&t);
  EXPECT_EQ(Read(*src, 100, 50), blob_.substr(100, 50));
  EXPECT_EQ(t.Count("https://reg.test/"), 1);
  EXPECT_EQ(Read(*src, 200, 50), blob_.substr(200, 50));
  EXPECT_EQ(Read(*src, 300, 50), blob_.substr(300, 50));
  EXPECT_EQ(t.Count("https://reg.test/"), 1) << "redirect target not cached";
  EXPECT_EQ(t.Count("https://storage.test/"), 3);
  storage_failures = 1;  // the signed URL expired: back to the registry for a new one
  EXPECT_EQ(Read(*src, 400, 50), blob_.substr(400, 50));
  EXPECT_EQ(t.Count("https://reg.test/"), 2);
}

TEST_F(BlobReaderTest, ServerIgnoringRangesAndMultiRanges) {
  bool honour_ranges = false;
  FakeTransport t([&](const HttpRequest& r) -> absl::StatusOr<HttpResponse> {
    auto rs = Ranges(RangeHeader(r));
    if (honour_ranges) return Partial(blob_, rs[0].first, rs[0].second);  // first range only
    HttpResponse whole;
    whole.status = 200;
    whole.body = blob_;
    return whole;
  });
  auto src = Open(&t);
  EXPECT_EQ(Read(*src, 9990, 10), blob_.substr(9990, 10));
  honour_ranges = true;
  std::string a(10, '\0'), b(20, '\0'), c(30, '\0');
  std::vector<RangeRead> rr = {
      {0, absl::MakeSpan(a)}, {500, absl::MakeSpan(b)}, {9000, absl::MakeSpan(c)}};
  ASSERT_TRUE(src->ReadRanges(rr).ok());
  EXPECT_EQ(a, blob_.substr(0, 10));
  EXPECT_EQ(b, blob_.substr(500, 20));
  EXPECT_EQ(c, blob_.substr(9000, 30));
  uint64_t before = src->requests();
  ASSERT_TRUE(src->ReadRanges(rr).ok());
  EXPECT_EQ(src->requests() - before, 3u) << "multi-range should be off after a partial answer";
}

TEST_F(BlobReaderTest, MultiRangeAnswers) {
  FakeTransport t([&](const HttpRequest& r) -> absl::StatusOr<HttpResponse> {
    return Multipart(blob_, Ranges(RangeHeader(r)));
  });
  auto src = Open(&t);
  std::vector<std::string> bufs(40, std::string(7, '\0'));
  std::vector<RangeRead> rr;
  for (size_t i = 0; i < bufs.size(); ++i) rr.push_back({i * 200, absl::MakeSpan(bufs[i])});
  ASSERT_TRUE(src->ReadRanges(rr).ok());
  EXPECT_EQ(src->requests(), 2u);  // 32 ranges per request
  for (size_t i = 0; i < bufs.size(); ++i) EXPECT_EQ(bufs[i], blob_.substr(i * 200, 7));
}

TEST_F(BlobReaderTest, InconsistentAnswersAreErrorsNotData) {
  std::function<HttpResponse(uint64_t, uint64_t)> answer;
  FakeTransport t([&](const HttpRequest& r) -> absl::StatusOr<HttpResponse> {
    auto rs = Ranges(RangeHeader(r));
    return answer(rs[0].first, rs[0].second);
  });
  auto src = Open(&t);
  std::vector<std::pair<std::string, std::function<HttpResponse(uint64_t, uint64_t)>>> cases = {
      {"short body",
       [&](uint64_t a, uint64_t b) {
         auto r = Partial(blob_, a, b);
         r.body.pop_back();
         return r;
       }},
      {"other range", [&](uint64_t a, uint64_t b) { return Partial(blob_, a + 1, b + 1); }},
      {"other total",
       [&](uint64_t a, uint64_t b) {
         auto r = Partial(blob_, a, b);
         r.headers = {{"content-range", StrCat("bytes ", a, "-", b, "/", blob_.size() + 1)}};
         return r;
       }},
      {"no content-range",
       [&](uint64_t a, uint64_t b) {
         auto r = Partial(blob_, a, b);
         r.headers.clear();
         return r;
       }},
      {"short 200",
       [&](uint64_t, uint64_t) {
         HttpResponse r;
         r.status = 200;
         r.body = blob_.substr(1);
         return r;
       }},
      {"204",
       [&](uint64_t, uint64_t) {
         HttpResponse r;
         r.status = 204;
         return r;
       }},
  };
  for (auto& [name, fn] : cases) {
    answer = fn;
    absl::Status s;
    std::string got = Read(*src, 1000, 100, &s);
    EXPECT_FALSE(s.ok()) << name;
    EXPECT_NE(s.message().find("blob sha256:"), std::string::npos) << s;
  }
}

TEST_F(BlobReaderTest, WholeBlobIsVerified) {
  bool corrupt = true;
  FakeTransport t([&](const HttpRequest& r) -> absl::StatusOr<HttpResponse> {
    HttpResponse whole;
    whole.status = 200;
    whole.body = blob_;
    if (corrupt) whole.body[5] ^= 1;
    return whole;
  });
  auto src = Open(&t);
  auto bad = src->ReadVerified();
  EXPECT_FALSE(bad.ok());
  corrupt = false;
  auto good = src->ReadVerified();
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(*good, blob_);
}

}  // namespace
}  // namespace lazysnap::registry

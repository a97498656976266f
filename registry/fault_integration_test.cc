// Reads through a fault-injecting proxy in front of a real docker-registry: transient faults
// are retried within the read's deadline, persistent ones fail cleanly, corrupt data is
// detected and never returned.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "base/digest.h"
#include "base/strings.h"
#include "registry/blob_reader.h"
#include "registry/client.h"
#include "registry/curl_transport.h"
#include "registry/fault_proxy.h"
#include "registry/testenv.h"

namespace lazysnap::registry {
namespace {

using testing::Fault;
using testing::FaultProxy;
using testing::RegistryProcess;
using testing::TempDir;

class FaultIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RegistryProcess::Available()) GTEST_SKIP() << "no docker-registry";
    dir_ = std::move(TempDir::Create()).value();
    registry_ = std::move(RegistryProcess::Start({}, dir_->path())).value();
    proxy_ = std::move(FaultProxy::Start(registry_->port())).value();
    proxy_->set_stall(absl::Seconds(3));
    transport_ = std::move(CurlTransport::Create()).value();
    ref_ = *Reference::Parse(StrCat(proxy_->host(), "/faulty/app:1"));
    blob_.resize(1 << 20);
    for (size_t i = 0; i < blob_.size(); ++i) blob_[i] = static_cast<char>((i * 7) ^ (i >> 9));
    client_ = MakeClient(absl::Seconds(6));
    auto d = client_->PushBlob(ref_, blob_);
    ASSERT_TRUE(d.ok()) << d.status();
    digest_ = d->digest;
  }
  std::unique_ptr<RegistryClient> MakeClient(absl::Duration deadline) {
    ClientOptions o;
    o.retry.deadline = deadline;
    o.retry.attempt_timeout = absl::Seconds(1);
    o.retry.initial_backoff = absl::Milliseconds(10);
    o.retry.max_backoff = absl::Milliseconds(200);
    return std::make_unique<RegistryClient>(transport_.get(), nullptr, o);
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<RegistryProcess> registry_;
  std::unique_ptr<FaultProxy> proxy_;
  std::unique_ptr<CurlTransport> transport_;
  std::unique_ptr<RegistryClient> client_;
  Reference ref_;
  std::string blob_;
  Sha256 digest_;
};

TEST_F(FaultIntegrationTest, TransientFaultsAreRetriedWithinTheDeadline) {
  auto src = std::move(client_->OpenBlob(ref_, digest_, blob_.size())).value();
  proxy_->Inject({Fault::kReset, Fault::kStatus503, Fault::kStatus429, Fault::kStatus500,
                  Fault::kTruncate, Fault::kWrongRange, Fault::kStall});
  std::string buf(10000, '\0');
  absl::Time start = absl::Now();
  absl::Status s = src->ReadAt(123456, absl::MakeSpan(buf));
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_LT(absl::Now() - start, absl::Seconds(6));
  EXPECT_EQ(proxy_->faults_injected(), 7);
  EXPECT_TRUE(buf == blob_.substr(123456, 10000));
  // Later reads are unaffected.
  ASSERT_TRUE(src->ReadAt(0, absl::MakeSpan(buf)).ok());
  EXPECT_TRUE(buf == blob_.substr(0, 10000));
}

TEST_F(FaultIntegrationTest, PersistentFaultsFailCleanlyAtTheDeadline) {
  auto client = MakeClient(absl::Seconds(2));
  auto src = std::move(client->OpenBlob(ref_, digest_, blob_.size())).value();
  for (Fault f : {Fault::kStatus503, Fault::kReset, Fault::kTruncate, Fault::kWrongRange}) {
    proxy_->Always(f);
    std::string buf(5000, '\0');
    absl::Time start = absl::Now();
    absl::Status s = src->ReadAt(1000, absl::MakeSpan(buf));
    absl::Duration took = absl::Now() - start;
    EXPECT_FALSE(s.ok()) << static_cast<int>(f);
    EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
    EXPECT_GE(took, absl::Milliseconds(1500)) << s;
    EXPECT_LT(took, absl::Seconds(4)) << s;
    EXPECT_EQ(buf, std::string(5000, '\0')) << "bytes returned despite the error";
  }
  proxy_->Always(Fault::kNone);
  // A permanent answer (unknown blob) is not retried.
  auto missing = client->OpenBlob(ref_, Sha256::Of("missing"), 100);
  ASSERT_TRUE(missing.ok());
  std::string buf(10, '\0');
  absl::Time start = absl::Now();
  EXPECT_TRUE(absl::IsNotFound((*missing)->ReadAt(0, absl::MakeSpan(buf))));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
}

TEST_F(FaultIntegrationTest, CorruptBlobsAndManifestsAreDetected) {
  // Once: detected by the digest check and fetched again.
  proxy_->Inject({Fault::kCorrupt});
  auto whole = client_->FetchBlob(ref_, digest_, blob_.size());
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_TRUE(*whole == blob_);
  EXPECT_EQ(proxy_->faults_injected(), 1);
  // Always: an error, never the corrupt bytes.
  auto client = MakeClient(absl::Seconds(2));
  proxy_->Always(Fault::kCorrupt);
  auto bad = client->FetchBlob(ref_, digest_, blob_.size());
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("digest"), std::string::npos) << bad.status();
  proxy_->Always(Fault::kNone);

  std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
      digest_.ToString() + R"(","size":)" + std::to_string(blob_.size()) + R"(},"layers":[]})";
  auto md = client_->PushManifest(ref_, "application/vnd.oci.image.manifest.v1+json", manifest);
  ASSERT_TRUE(md.ok()) << md.status();
  proxy_->Inject({Fault::kCorrupt}, "/manifests/");
  auto fetched = client_->FetchManifest(ref_);  // by tag: checked against Docker-Content-Digest
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  EXPECT_EQ(fetched->bytes, manifest);
  proxy_->Always(Fault::kCorrupt, "/manifests/");
  auto corrupt = client->FetchManifest(ref_.WithObject(md->digest.ToString()));
  EXPECT_FALSE(corrupt.ok());
}

TEST_F(FaultIntegrationTest, ResetsDuringParallelReads) {
  auto src = std::move(client_->OpenBlob(ref_, digest_, blob_.size())).value();
  std::vector<Fault> faults;
  for (int i = 0; i < 20; ++i) faults.push_back(i % 2 ? Fault::kReset : Fault::kStatus503);
  proxy_->Inject(faults);
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        uint64_t off = static_cast<uint64_t>(t * 100000 + i * 8192);
        std::string buf(8192, '\0');
        if (!src->ReadAt(off, absl::MakeSpan(buf)).ok() || buf != blob_.substr(off, 8192)) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(proxy_->faults_injected(), 20);
}

}  // namespace
}  // namespace lazysnap::registry

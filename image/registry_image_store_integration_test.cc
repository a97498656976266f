// RegistryImageStore against a real docker-registry on loopback: uploads skipped when the
// repository has the blob, cross-repository mounts, verified spooling, streaming reads, and
// tags that only point at manifests written first.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "base/strings.h"
#include "format/oci.h"
#include "image/registry_image_store.h"
#include "registry/curl_transport.h"
#include "registry/testenv.h"

namespace lazysnap {
namespace {

using registry::testing::RegistryProcess;
using registry::testing::TempDir;

class RegistryImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RegistryProcess::Available()) GTEST_SKIP() << "no docker-registry";
    dir_ = std::move(TempDir::Create()).value();
    auto reg = RegistryProcess::Start({}, dir_->path());
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = std::move(*reg);
    transport_ = std::move(registry::CurlTransport::Create()).value();
    registry::ClientOptions opts;
    opts.retry.deadline = absl::Seconds(10);
    client_ = std::make_unique<registry::RegistryClient>(transport_.get(), nullptr, opts);
  }

  std::unique_ptr<RegistryImageStore> Store(const std::string& repo) {
    auto ref = registry::Reference::Parse(StrCat(registry_->host(), "/", repo, ":v1"));
    EXPECT_TRUE(ref.ok()) << ref.status();
    auto s = RegistryImageStore::Create(client_.get(), *ref, dir_->path());
    EXPECT_TRUE(s.ok()) << s.status();
    return *std::move(s);
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<RegistryProcess> registry_;
  std::unique_ptr<registry::CurlTransport> transport_;
  std::unique_ptr<registry::RegistryClient> client_;
};

TEST_F(RegistryImageStoreTest, BlobsAlreadyThereAreNotUploadedAgain) {
  auto store = Store("a");
  auto d = store->WriteBlob(kOciConfigMediaType, "{\"a\":1}");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(store->stats().blobs_uploaded, 1u);
  ASSERT_TRUE(store->WriteBlob(kOciConfigMediaType, "{\"a\":1}").ok());
  EXPECT_EQ(store->stats().blobs_uploaded, 1u);
  EXPECT_EQ(store->stats().blobs_existing, 1u);
  EXPECT_TRUE(store->HasBlob(d->digest));
  auto back = store->ReadBlob(d->digest, d->size, 1 << 20);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, "{\"a\":1}");
  EXPECT_EQ(store->ReadBlob(d->digest, d->size + 1, 1 << 20).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(RegistryImageStoreTest, SpooledBlobIsVerifiedThenUploadedAndStreamsBack) {
  auto store = Store("a");
  std::string data(5 << 20, 'x');
  for (size_t i = 0; i < data.size(); i += 4093) data[i] = static_cast<char>(i);
  Sha256 digest = Sha256::Of(data);

  auto bad = store->NewBlobWriter();
  ASSERT_TRUE(bad.ok());
  ASSERT_TRUE((*bad)->Write(data).ok());
  EXPECT_EQ((*bad)->Commit(Sha256::Of("other")).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store->stats().blobs_uploaded, 0u);
  EXPECT_FALSE(store->HasBlob(digest));

  auto w = store->NewBlobWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write(data).ok());
  ASSERT_TRUE((*w)->Commit(digest).ok());
  EXPECT_EQ(store->stats().blobs_uploaded, 1u);
  EXPECT_EQ(store->stats().bytes_uploaded, data.size());

  auto in = store->OpenBlob(digest, static_cast<int64_t>(data.size()));
  ASSERT_TRUE(in.ok()) << in.status();
  std::string got;
  char buf[100000];
  for (;;) {
    auto n = (*in)->Read(absl::MakeSpan(buf, sizeof buf));
    ASSERT_TRUE(n.ok()) << n.status();
    if (*n == 0) break;
    got.append(buf, *n);
  }
  EXPECT_EQ(got, data);
}

TEST_F(RegistryImageStoreTest, CopyFromAnotherRepositoryMounts) {
  auto a = Store("a"), b = Store("b");
  auto d = a->WriteBlob(kOciLayerGzipMediaType, "layer bytes");
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(b->CopyBlobFrom(*a, *d).ok());
  EXPECT_EQ(b->stats().blobs_mounted, 1u);
  EXPECT_EQ(b->stats().blobs_uploaded, 0u);
  EXPECT_TRUE(b->HasBlob(d->digest));
  ASSERT_TRUE(b->CopyBlobFrom(*a, *d).ok());
  EXPECT_EQ(b->stats().blobs_existing, 1u);
  EXPECT_FALSE(a->SameStore(*b));
  EXPECT_TRUE(a->SameStore(*Store("a")));
}

TEST_F(RegistryImageStoreTest, TagPointsOnlyAtWrittenManifests) {
  auto store = Store("a");
  auto config = store->WriteBlob(kOciConfigMediaType, "{}");
  ASSERT_TRUE(config.ok());
  Manifest m;
  m.media_type = kOciManifestMediaType;
  m.config = *config;
  std::string bytes = SerializeManifest(m);
  Descriptor unknown = DescriptorOf(kOciManifestMediaType, bytes);
  EXPECT_EQ(store->Tag("v2", unknown).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Resolve("v2").status().code(), absl::StatusCode::kNotFound);

  auto d = store->WriteManifest(kOciManifestMediaType, bytes);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE(store->Tag("v2", *d).ok());
  auto resolved = store->Resolve("v2");
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->digest, d->digest);
  auto read = store->ReadManifest(*resolved, 1 << 20);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, bytes);
}

}  // namespace
}  // namespace lazysnap

// Referrer artifacts against a real docker-registry 2.8 (no referrers API: the tag schema).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "base/strings.h"
#include "format/oci.h"
#include "registry/artifact.h"
#include "registry/client.h"
#include "registry/curl_transport.h"
#include "registry/testenv.h"

namespace lazysnap::registry {
namespace {

using testing::RegistryProcess;
using testing::TempDir;

constexpr char kType[] = "application/vnd.lazysnap.trace.v1+json";

class ArtifactIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RegistryProcess::Available()) GTEST_SKIP() << "no docker-registry";
    dir_ = std::move(TempDir::Create()).value();
    auto reg = RegistryProcess::Start({}, dir_->path());
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = std::move(*reg);
    transport_ = std::move(CurlTransport::Create()).value();
    ClientOptions opts;
    opts.retry.deadline = absl::Seconds(10);
    client_ = std::make_unique<RegistryClient>(transport_.get(), nullptr, opts);
    ref_ = *Reference::Parse(StrCat(registry_->host(), "/test/app:v1"));
  }

  // Pushes a small image (config, no layers) under ref_'s tag; returns its descriptor.
  Descriptor PushImage(const std::string& config) {
    EXPECT_TRUE(client_->PushBlob(ref_, config).ok());
    Manifest m;
    m.media_type = kOciManifestMediaType;
    m.config = DescriptorOf(kOciConfigMediaType, config);
    auto d = client_->PushManifest(ref_, kOciManifestMediaType, SerializeManifest(m));
    EXPECT_TRUE(d.ok()) << d.status();
    return d.value_or(Descriptor{});
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<RegistryProcess> registry_;
  std::unique_ptr<CurlTransport> transport_;
  std::unique_ptr<RegistryClient> client_;
  Reference ref_;
};

TEST_F(ArtifactIntegrationTest, PushedTraceIsFoundFromTheImageDigestNewestFirst) {
  const Descriptor image = PushImage(R"({"architecture":"amd64","os":"linux"})");
  auto none = PullArtifact(*client_, ref_, image.digest, kType, 1 << 20);
  EXPECT_TRUE(absl::IsNotFound(none.status())) << none.status();

  auto first = PushArtifact(*client_, ref_, image, kType, kType, R"({"trace":"old"})",
                            "2026-11-24T23:00:00Z");
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = PushArtifact(*client_, ref_, image, kType, kType, R"({"trace":"new"})",
                             "2026-11-24T23:10:00Z");
  ASSERT_TRUE(second.ok()) << second.status();

  auto pulled = PullArtifact(*client_, ref_, image.digest, kType, 1 << 20);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->blob, R"({"trace":"new"})");
  EXPECT_EQ(pulled->manifest.digest, second->manifest.digest);
  EXPECT_EQ(pulled->parsed.subject.digest, image.digest);

  // The fallback tag holds an OCI index of both referrers, typed, with their annotations.
  auto tag = client_->FetchManifest(ref_.WithObject(StrCat("sha256-", image.digest.Hex())));
  ASSERT_TRUE(tag.ok()) << tag.status();
  auto index = ParseIndex(tag->bytes);
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->media_type, kOciIndexMediaType);
  ASSERT_EQ(index->manifests.size(), 2u);
  for (const Descriptor& d : index->manifests) {
    EXPECT_EQ(d.json["artifactType"], kType);
    EXPECT_EQ(d.annotations.count(kCreatedAnnotation), 1u);
  }

  // Pushing the same artifact again adds nothing.
  auto again = PushArtifact(*client_, ref_, image, kType, kType, R"({"trace":"new"})",
                            "2026-11-24T23:10:00Z");
  ASSERT_TRUE(again.ok()) << again.status();
  auto refs = client_->Referrers(ref_, image.digest, kType);
  ASSERT_TRUE(refs.ok()) << refs.status();
  EXPECT_EQ(refs->size(), 2u);

  // Other artifact types and other images do not see it; a blob over the bound is refused.
  EXPECT_TRUE(absl::IsNotFound(
      PullArtifact(*client_, ref_, image.digest, "application/other", 1 << 20).status()));
  const Descriptor other = PushImage(R"({"architecture":"arm64","os":"linux"})");
  EXPECT_TRUE(absl::IsNotFound(PullArtifact(*client_, ref_, other.digest, kType, 1 << 20).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      PullArtifact(*client_, ref_, image.digest, kType, 4).status()));
}

}  // namespace
}  // namespace lazysnap::registry

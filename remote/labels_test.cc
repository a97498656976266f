#include "remote/labels.h"

#include <gtest/gtest.h>

#include "base/strings.h"
#include "format/layer.h"

namespace lazysnap {
namespace {

const char kDigest[] = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const char kToc[] = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

TEST(RemoteLabelsTest, StargzDialect) {
  Labels labels = {{kStargzReferenceLabel, "127.0.0.1:5000/python:esgz"},
                   {"containerd.io/snapshot/remote/stargz.digest", kDigest},
                   {"containerd.io/snapshot/stargz/toc.digest", kToc}};
  auto spec = ParseRemoteLayerLabels(kDigest, labels);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->digest.ToString(), kDigest);
  ASSERT_TRUE(spec->ref.has_value());
  EXPECT_EQ(spec->ref->domain, "127.0.0.1:5000");
  EXPECT_EQ(spec->ref->repository, "python");
  EXPECT_EQ(spec->ref->tag, "esgz");
  ASSERT_TRUE(spec->toc_digest.has_value());
  EXPECT_EQ(spec->toc_digest->ToString(), kToc);
}

TEST(RemoteLabelsTest, CriWinsAndDockerHubDefaults) {
  Labels labels = {{kCriImageRefLabel, "python:3"}, {kStargzReferenceLabel, "other/x:y"}};
  auto spec = ParseRemoteLayerLabels(kDigest, labels);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(spec->ref.has_value());
  EXPECT_EQ(spec->ref->domain, "docker.io");
  EXPECT_EQ(spec->ref->repository, "library/python");
  EXPECT_FALSE(spec->toc_digest.has_value());
}

TEST(RemoteLabelsTest, NoReferenceIsAllowed) {
  auto spec = ParseRemoteLayerLabels(kDigest, {});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_FALSE(spec->ref.has_value());
}

TEST(RemoteLabelsTest, MalformedValuesAreInvalidArgument) {
  EXPECT_TRUE(absl::IsInvalidArgument(ParseRemoteLayerLabels("sha256:nothex", {}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ParseRemoteLayerLabels(kDigest, {{kCriImageRefLabel, "UPPER/Case"}}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ParseRemoteLayerLabels(kDigest, {{"containerd.io/snapshot/stargz/toc.digest", "x"}})
          .status()));
}

const char kManifest[] = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const char kOther[] = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

TEST(RemoteLabelsTest, CriManifestDigestAndImageLayers) {
  Labels labels = {{kCriImageRefLabel, "127.0.0.1:5000/python:3"},
                   {kCriManifestDigestLabel, kManifest},
                   {kCriImageLayersLabel, StrCat(kOther, ",", kDigest)},
                   {kStargzLayersLabel, kToc}};
  auto spec = ParseRemoteLayerLabels(kDigest, labels);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(spec->manifest_digest.has_value());
  EXPECT_EQ(spec->manifest_digest->ToString(), kManifest);
  ASSERT_EQ(spec->image_layers.size(), 2u);  // CRI's list wins over stargz's
  EXPECT_EQ(spec->image_layers[0].ToString(), kOther);
  EXPECT_EQ(spec->image_layers[1].ToString(), kDigest);
}

TEST(RemoteLabelsTest, StargzLayersAndDigestPinnedReference) {
  Labels labels = {{kStargzReferenceLabel, StrCat("127.0.0.1:5000/python@", kManifest)},
                   {kStargzLayersLabel, StrCat(kDigest, ",", kOther)}};
  auto spec = ParseRemoteLayerLabels(kDigest, labels);
  ASSERT_TRUE(spec.ok()) << spec.status();
  // No CRI label: the pinned reference's digest is the manifest's.
  ASSERT_TRUE(spec->manifest_digest.has_value());
  EXPECT_EQ(spec->manifest_digest->ToString(), kManifest);
  ASSERT_EQ(spec->image_layers.size(), 2u);
  EXPECT_EQ(spec->image_layers[1].ToString(), kOther);

  // A tag reference names no manifest.
  spec = ParseRemoteLayerLabels(kDigest, {{kStargzReferenceLabel, "127.0.0.1:5000/python:3"}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_FALSE(spec->manifest_digest.has_value());
  EXPECT_TRUE(spec->image_layers.empty());
}

TEST(RemoteLabelsTest, MalformedInformationalLabelsAreLeftOut) {
  // containerd truncates cri.image-layers to fit its label size limit: the list may end
  // mid-digest. The layer still mounts.
  std::string truncated = StrCat(kOther, ",", kDigest, ",sha256:12ab");
  Labels labels = {{kCriManifestDigestLabel, "sha256:short"}, {kCriImageLayersLabel, truncated}};
  auto spec = ParseRemoteLayerLabels(kDigest, labels);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_FALSE(spec->manifest_digest.has_value());
  ASSERT_EQ(spec->image_layers.size(), 2u);
  EXPECT_EQ(spec->image_layers[0].ToString(), kOther);

  spec = ParseRemoteLayerLabels(kDigest, {{kCriImageLayersLabel, ",,"}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(spec->image_layers.empty());
}

TEST(RemoteLabelsTest, TocTailSizeIsAHintLeftOutWhenMalformed) {
  auto spec = ParseRemoteLayerLabels(kDigest, {{kLazysnapTocTailSizeAnnotation, "405709"}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->toc_tail_size, 405709u);
  for (const char* bad : {"", "0", "-5", "12kb", "99999999999999999999999"}) {
    spec = ParseRemoteLayerLabels(kDigest, {{kLazysnapTocTailSizeAnnotation, bad}});
    ASSERT_TRUE(spec.ok()) << bad << ": " << spec.status();  // never fails the mount
    EXPECT_FALSE(spec->toc_tail_size.has_value()) << bad;
  }
}

}  // namespace
}  // namespace lazysnap

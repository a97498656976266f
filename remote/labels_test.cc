#include "remote/labels.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace lazysnap

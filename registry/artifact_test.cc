// Referrer artifact manifests: encoding, parsing of untrusted manifests, choice of referrer.
#include "registry/artifact.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/strings.h"

namespace lazysnap::registry {
namespace {

constexpr char kType[] = "application/vnd.lazysnap.trace.v1+json";

ArtifactManifest Sample() {
  ArtifactManifest m;
  m.artifact_type = kType;
  m.subject = DescriptorOf(kOciManifestMediaType, "image manifest");
  m.blob = DescriptorOf(kType, "{\"trace\":1}");
  m.annotations[kCreatedAnnotation] = "2026-11-24T23:00:00Z";
  return m;
}

TEST(ArtifactTest, ManifestIsAnOci11ArtifactAndParsesBack) {
  const ArtifactManifest m = Sample();
  const std::string bytes = SerializeArtifactManifest(m);
  auto j = nlohmann::json::parse(bytes);
  EXPECT_EQ(j["schemaVersion"], 2);
  EXPECT_EQ(j["mediaType"], kOciManifestMediaType);
  EXPECT_EQ(j["artifactType"], kType);
  EXPECT_EQ(j["config"]["mediaType"], kOciEmptyMediaType);
  EXPECT_EQ(j["config"]["digest"], Sha256::Of("{}").ToString());
  EXPECT_EQ(j["config"]["size"], 2);
  ASSERT_EQ(j["layers"].size(), 1u);
  EXPECT_EQ(j["layers"][0]["mediaType"], kType);
  EXPECT_EQ(j["subject"]["digest"], m.subject.digest.ToString());
  EXPECT_EQ(j["annotations"][kCreatedAnnotation], "2026-11-24T23:00:00Z");
  // The generic manifest parser accepts it too (what every registry and tool sees).
  ASSERT_TRUE(ParseManifest(bytes).ok());

  auto back = ParseArtifactManifest(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->artifact_type, kType);
  EXPECT_EQ(back->subject.digest, m.subject.digest);
  EXPECT_EQ(back->subject.size, m.subject.size);
  EXPECT_EQ(back->blob.digest, m.blob.digest);
  EXPECT_EQ(back->blob.media_type, kType);
  EXPECT_EQ(back->annotations, m.annotations);
  EXPECT_EQ(SerializeArtifactManifest(*back), bytes);  // stable
}

TEST(ArtifactTest, ArtifactTypeFromConfigMediaTypeAsOlderToolsWrite) {
  nlohmann::json j = nlohmann::json::parse(SerializeArtifactManifest(Sample()));
  j.erase("artifactType");
  j["config"]["mediaType"] = kType;
  auto a = ParseArtifactManifest(j.dump());
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->artifact_type, kType);
}

TEST(ArtifactTest, RejectsWhatIsNotOneBlobReferringToAnImage) {
  const nlohmann::json good = nlohmann::json::parse(SerializeArtifactManifest(Sample()));
  auto expect_invalid = [](const nlohmann::json& j, const std::string& what) {
    auto a = ParseArtifactManifest(j.dump());
    EXPECT_TRUE(absl::IsInvalidArgument(a.status())) << what << ": " << a.status();
  };
  nlohmann::json j = good;
  j.erase("subject");
  expect_invalid(j, "no subject");
  j = good;
  j["subject"]["digest"] = "sha256:xyz";
  expect_invalid(j, "bad subject digest");
  j = good;
  j["layers"].push_back(j["layers"][0]);
  expect_invalid(j, "two layers");
  j = good;
  j["layers"] = nlohmann::json::array();
  expect_invalid(j, "no layer");
  j = good;
  j["artifactType"] = 7;
  expect_invalid(j, "artifactType not a string");
  j = good;
  j["mediaType"] = kDockerManifestMediaType;
  expect_invalid(j, "docker manifest");
  j = good;
  j["schemaVersion"] = 1;
  expect_invalid(j, "schema 1");
  expect_invalid(nlohmann::json::array(), "array");
  EXPECT_FALSE(ParseArtifactManifest("{\"schemaVersion\":2,").ok());
  EXPECT_FALSE(ParseArtifactManifest(std::string(5 << 20, ' ')).ok());  // over the bound
}

TEST(ArtifactTest, NewestReferrerByCreatedAnnotationThenListOrder) {
  EXPECT_EQ(NewestReferrer({}), nullptr);
  std::vector<Descriptor> refs(3);
  for (int i = 0; i < 3; ++i) refs[i] = DescriptorOf(kOciManifestMediaType, StrCat("m", i));
  EXPECT_EQ(NewestReferrer(refs), &refs[2]);  // none dated: the last (appended last)
  refs[0].annotations[kCreatedAnnotation] = "2026-11-24T23:00:05Z";
  refs[1].annotations[kCreatedAnnotation] = "2026-11-24T23:00:09Z";
  refs[2].annotations[kCreatedAnnotation] = "2026-11-24T22:59:59Z";
  EXPECT_EQ(NewestReferrer(refs), &refs[1]);
  refs[2].annotations[kCreatedAnnotation] = "2026-11-24T23:00:09Z";
  EXPECT_EQ(NewestReferrer(refs), &refs[2]);  // tie: the later
}

TEST(ArtifactTest, NewestReferrerComparesTimesNotText) {
  std::vector<Descriptor> refs(3);
  for (int i = 0; i < 3; ++i) refs[i] = DescriptorOf(kOciManifestMediaType, StrCat("m", i));
  refs[0].annotations[kCreatedAnnotation] = "2026-11-25T00:30:00+01:00";  // 23:30Z
  refs[1].annotations[kCreatedAnnotation] = "2026-11-24T23:00:00.5Z";
  refs[2].annotations[kCreatedAnnotation] = "not a time";  // earliest
  EXPECT_EQ(NewestReferrer(refs), &refs[0]);
  refs[0].annotations[kCreatedAnnotation] = "2026-11-24T23:00:00Z";
  EXPECT_EQ(NewestReferrer(refs), &refs[1]);  // the fraction counts
}

TEST(ArtifactTest, FormatRfc3339IsUtcWholeSeconds) {
  EXPECT_EQ(FormatRfc3339(absl::FromUnixSeconds(1795561200) + absl::Milliseconds(700)),
            "2026-11-24T23:00:00Z");
  EXPECT_EQ(FormatRfc3339(absl::UnixEpoch()), "1970-01-01T00:00:00Z");
}

TEST(ArtifactTest, NowIsRfc3339Utc) {
  std::string now = NowRfc3339();
  ASSERT_EQ(now.size(), 20u) << now;
  EXPECT_EQ(now[4], '-');
  EXPECT_EQ(now[10], 'T');
  EXPECT_EQ(now.back(), 'Z');
}

}  // namespace
}  // namespace lazysnap::registry

#include "format/oci.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lazysnap {
namespace {

using ::testing::HasSubstr;

const std::string kDigestA = "sha256:" + std::string(64, 'a');
const std::string kDigestB = "sha256:" + std::string(64, 'b');
const std::string kDigestC = "sha256:" + std::string(64, 'c');

std::string SampleManifest() {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
         R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
         kDigestA + R"(","size":7},"layers":[{"mediaType":)"
         R"("application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
         kDigestB + R"(","size":100,"annotations":{"x":"y"},"zzz-unknown":[1,2]}],)"
         R"("annotations":{"org.example":"v"},"subject-ish":{"keep":true}})";
}

TEST(OciManifest, ParsesKnownFields) {
  auto m = ParseManifest(SampleManifest());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->schema_version, 2);
  EXPECT_EQ(m->media_type, kOciManifestMediaType);
  EXPECT_EQ(m->config.digest.ToString(), kDigestA);
  EXPECT_EQ(m->config.size, 7);
  ASSERT_EQ(m->layers.size(), 1u);
  EXPECT_EQ(m->layers[0].media_type, kOciLayerGzipMediaType);
  EXPECT_EQ(m->layers[0].size, 100);
  EXPECT_EQ(m->layers[0].annotations.at("x"), "y");
  EXPECT_EQ(m->annotations.at("org.example"), "v");
}

TEST(OciManifest, RoundTripIsByteStableAndKeepsUnknownFields) {
  std::string in = SampleManifest();
  auto m = ParseManifest(in);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(SerializeManifest(*m), in);
}

TEST(OciManifest, RewritingALayerKeepsOtherFields) {
  auto m = ParseManifest(SampleManifest());
  ASSERT_TRUE(m.ok());
  m->layers[0].digest = *Sha256::Parse(kDigestC);
  m->layers[0].size = 5;
  m->layers[0].annotations["new"] = "1";
  auto again = ParseManifest(SerializeManifest(*m));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->layers[0].digest.ToString(), kDigestC);
  EXPECT_EQ(again->layers[0].size, 5);
  EXPECT_EQ(again->layers[0].annotations.at("new"), "1");
  EXPECT_EQ(again->layers[0].json.at("zzz-unknown"), nlohmann::ordered_json({1, 2}));
  EXPECT_TRUE(again->json.at("subject-ish").at("keep").get<bool>());
}

TEST(OciManifest, RejectsBadInput) {
  struct Case {
    std::string json, error;
  } cases[] = {
      {"[]", "not a JSON object"},
      {"{", "malformed JSON"},
      {R"({"mediaType":"application/vnd.oci.image.manifest.v1+json"})", "schemaVersion"},
      {R"({"schemaVersion":1,"name":"x"})", "schemaVersion 1"},
      {R"({"schemaVersion":2,"mediaType":"text/plain","config":{},"layers":[]})",
       "is not an image manifest"},
      {R"({"schemaVersion":2,"manifests":[]})", "image index, not a manifest"},
      {R"({"schemaVersion":2,"layers":[]})", "missing field 'config'"},
      {R"({"schemaVersion":2,"config":{"mediaType":"a","digest":"md5:00","size":1},"layers":[]})",
       "bad digest"},
      {R"({"schemaVersion":2,"config":{"mediaType":"a","digest":")" + kDigestA +
           R"(","size":-1},"layers":[]})",
       "non-negative"},
      {R"({"schemaVersion":2,"config":{"mediaType":"a","digest":")" + kDigestA +
           R"(","size":1}})",
       "missing field 'layers'"},
      {R"({"schemaVersion":2,"config":{"mediaType":"a","digest":")" + kDigestA +
           R"(","size":1},"layers":[{"digest":")" + kDigestA + R"(","size":1}]})",
       "layers[0]: descriptor: missing field 'mediaType'"},
  };
  for (const auto& c : cases) {
    auto m = ParseManifest(c.json);
    ASSERT_FALSE(m.ok()) << c.json;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(c.error)) << c.json;
  }
}

TEST(OciManifest, EnforcesLimits) {
  OciLimits limits;
  limits.max_json_bytes = 16;
  auto m = ParseManifest(SampleManifest(), limits);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("exceeds the limit"));

  std::string deep = R"({"schemaVersion":2,"x":)" + std::string(100, '[') +
                     std::string(100, ']') + "}";
  m = ParseManifest(deep);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("nested deeper"));

  limits = OciLimits();
  limits.max_descriptors = 0;
  m = ParseManifest(SampleManifest(), limits);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("more than the limit"));
}

std::string SampleIndex() {
  auto entry = [](const std::string& digest, const std::string& platform) {
    return R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + digest +
           R"(","size":10,"platform":)" + platform + "}";
  };
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",)"
         R"("manifests":[)" +
         entry(kDigestA, R"({"architecture":"arm","os":"linux","variant":"v6"})") + "," +
         entry(kDigestB, R"({"architecture":"arm","os":"linux","variant":"v7"})") + "," +
         entry(kDigestC, R"({"architecture":"amd64","os":"linux"})") + "]}";
}

TEST(OciIndex, RoundTripAndPlatforms) {
  auto index = ParseIndex(SampleIndex());
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(SerializeIndex(*index), SampleIndex());
  ASSERT_EQ(index->manifests.size(), 3u);
  ASSERT_TRUE(index->manifests[0].platform.has_value());
  EXPECT_EQ(index->manifests[0].platform->variant, "v6");

  auto amd64 = SelectPlatform(*index, Platform::Default());
  ASSERT_EQ(amd64.size(), 1u);
  EXPECT_EQ(amd64[0]->digest.ToString(), kDigestC);

  // "linux/arm" accepts any variant, the default (v7) first.
  auto arm = SelectPlatform(*index, *Platform::Parse("linux/arm"));
  ASSERT_EQ(arm.size(), 2u);
  EXPECT_EQ(arm[0]->digest.ToString(), kDigestB);
  auto armv6 = SelectPlatform(*index, *Platform::Parse("linux/arm/v6"));
  ASSERT_EQ(armv6.size(), 1u);
  EXPECT_EQ(armv6[0]->digest.ToString(), kDigestA);
  EXPECT_TRUE(SelectPlatform(*index, *Platform::Parse("linux/arm64")).empty());
}

TEST(OciIndex, DockerManifestListAndErrors) {
  std::string list = R"({"schemaVersion":2,"mediaType":)"
                     R"("application/vnd.docker.distribution.manifest.list.v2+json",)"
                     R"("manifests":[]})";
  auto index = ParseIndex(list);
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_TRUE(IsIndexMediaType(index->media_type));
  EXPECT_FALSE(ParseIndex(SampleManifest()).ok());
  EXPECT_FALSE(ParseIndex(R"({"schemaVersion":2})").ok());
  auto peek = PeekMediaType(list);
  ASSERT_TRUE(peek.ok());
  EXPECT_EQ(*peek, kDockerManifestListMediaType);
}

TEST(Platform, ParseAndMatch) {
  auto p = Platform::Parse("Linux/ARM64/v8");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->ToString(), "linux/arm64/v8");
  EXPECT_FALSE(Platform::Parse("linux").ok());
  EXPECT_FALSE(Platform::Parse("linux//v8").ok());
  EXPECT_FALSE(Platform::Parse("a/b/c/d").ok());
  Platform arm64{"linux", "arm64", "", "", {}};
  EXPECT_TRUE(PlatformMatches(*p, arm64));  // v8 is arm64's default variant
  EXPECT_TRUE(PlatformMatches(Platform::Default(), Platform{"linux", "x86_64", "", "", {}}));
  EXPECT_FALSE(PlatformMatches(Platform::Default(), arm64));
  EXPECT_FALSE(PlatformMatches(Platform::Default(), Platform{"windows", "amd64", "", "", {}}));
}

TEST(OciConfig, RewritesDiffIdsAndKeepsEverythingElse) {
  std::string in = R"({"architecture":"amd64","config":{"Env":["A=1"]},"created":"x",)"
                   R"("history":[{"created_by":"y"}],"os":"linux","rootfs":{"type":"layers",)"
                   R"("diff_ids":[")" +
                   kDigestA + R"("]},"zz":1})";
  auto c = ParseImageConfig(in);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->platform.ToString(), "linux/amd64");
  ASSERT_EQ(c->diff_ids.size(), 1u);
  EXPECT_EQ(SerializeImageConfig(*c), in);
  c->diff_ids[0] = *Sha256::Parse(kDigestB);
  std::string expected = in;
  expected.replace(expected.find(kDigestA), kDigestA.size(), kDigestB);
  EXPECT_EQ(SerializeImageConfig(*c), expected);

  EXPECT_FALSE(ParseImageConfig(R"({"os":"linux"})").ok());
  EXPECT_FALSE(ParseImageConfig(R"({"rootfs":{"type":"layers","diff_ids":["bad"]}})").ok());
  EXPECT_FALSE(ParseImageConfig(R"({"rootfs":{"type":"x","diff_ids":[]}})").ok());
}

TEST(OciDescriptor, FreshDescriptorHasCanonicalFieldOrder) {
  Descriptor d = DescriptorOf(kOciConfigMediaType, "hello");
  d.annotations[kRefNameAnnotation] = "v1";
  EXPECT_EQ(DescriptorToJson(d).dump(),
            R"({"mediaType":"application/vnd.oci.image.config.v1+json","digest":)"
            R"("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",)"
            R"("size":5,"annotations":{"org.opencontainers.image.ref.name":"v1"}})");
}

}  // namespace
}  // namespace lazysnap

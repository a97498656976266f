#include "format/image_convert.h"

#include <dirent.h>
#include <stdlib.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "base/blob_source.h"
#include "format/decompress.h"
#include "format/layer.h"

namespace lazysnap {
namespace {

using ::testing::HasSubstr;

// A stand-in for ConvertLayer: the "seekable" layer is a prefix plus the input.
struct FakeConverter {
  std::atomic<int> calls{0};
  std::string fail_on;  // input content that makes it fail

  LayerConverter Fn() {
    return [this](InputStream& in, OutputStream& out,
                  const ConvertOptions& options) -> absl::StatusOr<ConvertResult> {
      ++calls;
      std::string data;
      char buf[7];  // small reads, so progress is reported several times
      for (;;) {
        auto n = in.Read(absl::MakeSpan(buf));
        if (!n.ok()) return n.status();
        if (*n == 0) break;
        data.append(buf, *n);
        if (options.progress) options.progress(data.size());
      }
      if (!fail_on.empty() && data == fail_on) return absl::DataLossError("broken layer");
      std::string blob = "SEEKABLE:" + data;
      auto s = out.Write(blob);
      if (!s.ok()) return s;
      ConvertResult r;
      r.blob_digest = Sha256::Of(blob);
      r.blob_size = blob.size();
      r.diff_id = Sha256::Of(data);
      r.uncompressed_size = data.size();
      r.toc_digest = Sha256::Of("toc:" + data);
      r.media_type = kOciLayerGzipMediaType;
      r.annotations[kEstargzTocDigestAnnotation] = r.toc_digest.ToString();
      return r;
    };
  }
};

// A minimal ustar archive of regular files (name -> content, mode 0755 if name has "bin/").
std::string Tar(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string out;
  for (const auto& [name, content] : files) {
    char h[512] = {};
    std::snprintf(h, 100, "%s", name.c_str());
    std::snprintf(h + 100, 8, "%07o", name.find("bin/") != std::string::npos ? 0755 : 0644);
    std::snprintf(h + 108, 8, "%07o", 0);
    std::snprintf(h + 116, 8, "%07o", 0);
    std::snprintf(h + 124, 12, "%011o", static_cast<unsigned>(content.size()));
    std::snprintf(h + 136, 12, "%011o", 1700000000u);
    h[156] = '0';
    std::memcpy(h + 257, "ustar", 6);
    std::memcpy(h + 263, "00", 2);
    std::memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    std::snprintf(h + 148, 8, "%06o", sum);
    out.append(h, 512);
    out += content;
    out.append((512 - content.size() % 512) % 512, '\0');
  }
  out.append(1024, '\0');
  return out;
}

std::string Config(const std::vector<std::string>& layers, const std::string& arch) {
  std::string ids;
  for (const auto& l : layers) ids += (ids.empty() ? "\"" : ",\"") + Sha256::Of(l).ToString() + "\"";
  return R"({"architecture":")" + arch + R"(","config":{"Cmd":["/bin/sh"]},"os":"linux",)"
         R"("rootfs":{"type":"layers","diff_ids":[)" + ids + R"(]},"x-unknown":{"a":1}})";
}

class ImageConvertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/image_convert_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    src_ = *OciLayout::OpenOrCreate(root_ + "/src");
    dst_ = *OciLayout::OpenOrCreate(root_ + "/dst");
  }
  void TearDown() override { ASSERT_EQ(std::system(("rm -rf '" + root_ + "'").c_str()), 0); }

  // Writes a manifest whose layers hold `layers` (raw content; the fake does not care),
  // `seekable` marks layers that carry a TOC annotation already. Returns its descriptor.
  Descriptor AddManifest(const std::vector<std::string>& layers, const std::string& arch,
                         std::set<size_t> seekable = {},
                         const char* manifest_type = kOciManifestMediaType,
                         const char* layer_type = kOciLayerGzipMediaType) {
    Manifest m;
    m.media_type = manifest_type;
    m.config = *src_->WriteBlob(kOciConfigMediaType, Config(layers, arch));
    for (size_t i = 0; i < layers.size(); ++i) {
      Descriptor d = *src_->WriteBlob(layer_type, layers[i]);
      if (seekable.count(i)) d.annotations[kEstargzTocDigestAnnotation] = Sha256::Of("t").ToString();
      d.annotations["org.example.keep"] = "yes";
      m.layers.push_back(d);
    }
    m.annotations["org.example.manifest"] = "m";
    return *src_->WriteBlob(manifest_type, SerializeManifest(m));
  }

  void Tag(const std::string& tag, const Descriptor& d) {
    ASSERT_TRUE(src_->UpdateIndex([&](Index& i) { return SetTag(i, tag, d); }).ok());
  }

  ImageConvertOptions Options() {
    ImageConvertOptions o;
    o.converter = fake_.Fn();
    o.jobs = 2;
    return o;
  }

  Manifest ReadManifest(const OciLayout& l, const Descriptor& d) {
    auto data = l.ReadBlob(d.digest, d.size, 1 << 20);
    EXPECT_TRUE(data.ok()) << data.status();
    auto m = ParseManifest(*data);
    EXPECT_TRUE(m.ok()) << m.status();
    return *m;
  }

  bool HasTempFiles(const std::string& dir) {
    bool found = false;
    DIR* d = ::opendir(dir.c_str());
    while (dirent* e = ::readdir(d)) found |= std::string(e->d_name).find("tmp") != std::string::npos;
    ::closedir(d);
    return found;
  }

  std::string root_;
  std::unique_ptr<OciLayout> src_, dst_;
  FakeConverter fake_;
};

TEST_F(ImageConvertTest, ConvertsManifestRewritesConfigAndTagsDestination) {
  Tag("v1", AddManifest({"layer-one", "layer-two", "already-seekable"}, "amd64", {2}));
  std::vector<LayerProgress> reports;
  absl::Mutex mu;
  ImageConvertOptions o = Options();
  o.progress = [&](const LayerProgress& p) {
    absl::MutexLock lock(&mu);
    reports.push_back(p);
  };
  auto r = ConvertImage(*src_, "v1", *dst_, "v1-seekable", o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake_.calls.load(), 2);

  auto top = dst_->Resolve("v1-seekable");
  ASSERT_TRUE(top.ok()) << top.status();
  EXPECT_EQ(top->digest, r->descriptor.digest);
  EXPECT_EQ(top->media_type, kOciManifestMediaType);
  Manifest m = ReadManifest(*dst_, *top);
  ASSERT_EQ(m.layers.size(), 3u);
  EXPECT_EQ(m.annotations.at("org.example.manifest"), "m");
  for (int i = 0; i < 2; ++i) {
    std::string content = i == 0 ? "layer-one" : "layer-two";
    EXPECT_EQ(m.layers[i].digest, Sha256::Of("SEEKABLE:" + content));
    EXPECT_EQ(m.layers[i].annotations.at(kEstargzTocDigestAnnotation),
              Sha256::Of("toc:" + content).ToString());
    EXPECT_EQ(m.layers[i].annotations.at("org.example.keep"), "yes");
    EXPECT_EQ(*dst_->ReadBlob(m.layers[i].digest, m.layers[i].size, 1024), "SEEKABLE:" + content);
  }
  // The seekable layer is kept and copied.
  EXPECT_EQ(m.layers[2].digest, Sha256::Of("already-seekable"));
  EXPECT_TRUE(dst_->ReadBlob(m.layers[2].digest, m.layers[2].size, 1024).ok());

  auto config_data = dst_->ReadBlob(m.config.digest, m.config.size, 1 << 20);
  ASSERT_TRUE(config_data.ok()) << config_data.status();
  auto config = ParseImageConfig(*config_data);
  ASSERT_TRUE(config.ok());
  // (DiffIdsFollowTheConverter checks that diff_ids are rewritten; here: kept in step.)
  ASSERT_EQ(config->diff_ids.size(), 3u);
  EXPECT_EQ(config->diff_ids[0], r->manifests[0].layers[0].diff_id);
  EXPECT_EQ(config->json.at("x-unknown").at("a"), 1);

  ASSERT_EQ(r->manifests.size(), 1u);
  EXPECT_EQ(r->manifests[0].platform.ToString(), "linux/amd64");
  EXPECT_TRUE(r->manifests[0].layers[0].converted);
  EXPECT_FALSE(r->manifests[0].layers[2].converted);
  EXPECT_THAT(ImageConvertResultToJson(*r), HasSubstr(m.layers[1].digest.ToString()));

  // Progress: both layers report reading all their bytes and finishing.
  std::map<size_t, LayerProgress> last;
  for (const auto& p : reports) last[p.id] = p;
  ASSERT_EQ(last.size(), 2u);
  for (const auto& [id, p] : last) {
    EXPECT_TRUE(p.done);
    EXPECT_EQ(p.source_read, p.source_size);
    EXPECT_EQ(p.uncompressed, p.source_size);
    EXPECT_EQ(p.count, 2u);
  }
  EXPECT_FALSE(HasTempFiles(root_ + "/dst"));
}

TEST_F(ImageConvertTest, DiffIdsFollowTheConverter) {
  Tag("v1", AddManifest({"a", "b"}, "amd64"));
  ImageConvertOptions o = Options();
  LayerConverter inner = o.converter;
  o.converter = [&](InputStream& in, OutputStream& out, const ConvertOptions& opts) {
    auto r = inner(in, out, opts);
    if (r.ok()) r->diff_id = Sha256::Of("new-diff-id");
    return r;
  };
  auto r = ConvertImage(*src_, "v1", *dst_, "v2", o);
  ASSERT_TRUE(r.ok()) << r.status();
  Manifest m = ReadManifest(*dst_, r->descriptor);
  auto config = ParseImageConfig(*dst_->ReadBlob(m.config.digest, m.config.size, 1 << 20));
  ASSERT_TRUE(config.ok());
  ASSERT_EQ(config->diff_ids.size(), 2u);
  EXPECT_EQ(config->diff_ids[0], Sha256::Of("new-diff-id"));
  EXPECT_EQ(config->diff_ids[1], Sha256::Of("new-diff-id"));
}

TEST_F(ImageConvertTest, IndexPlatformSelection) {
  Descriptor amd = AddManifest({"shared", "amd-only"}, "amd64");
  Descriptor arm = AddManifest({"shared", "arm-only"}, "arm64");
  amd.platform = Platform::Default();
  arm.platform = *Platform::Parse("linux/arm64/v8");
  Index index;
  index.media_type = kOciIndexMediaType;
  index.manifests = {amd, arm};
  index.annotations["org.example.index"] = "i";
  Tag("multi", *src_->WriteBlob(kOciIndexMediaType, SerializeIndex(index)));

  // Default: linux/amd64 only; the output is an index with one entry.
  auto r = ConvertImage(*src_, "multi", *dst_, "one", Options());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->descriptor.media_type, kOciIndexMediaType);
  auto out = ParseIndex(*dst_->ReadBlob(r->descriptor.digest, r->descriptor.size, 1 << 20));
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->manifests.size(), 1u);
  EXPECT_EQ(out->manifests[0].platform->architecture, "amd64");
  EXPECT_EQ(out->annotations.at("org.example.index"), "i");
  EXPECT_EQ(fake_.calls.load(), 2);

  // All platforms: the shared layer is converted once.
  fake_.calls = 0;
  ImageConvertOptions all = Options();
  all.all_platforms = true;
  r = ConvertImage(*src_, "multi", *dst_, "all", all);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->manifests.size(), 2u);
  EXPECT_EQ(fake_.calls.load(), 3);
  EXPECT_EQ(r->manifests[0].layers[0].digest, r->manifests[1].layers[0].digest);

  ImageConvertOptions s390 = Options();
  s390.platforms = {*Platform::Parse("linux/s390x")};
  auto missing = ConvertImage(*src_, "multi", *dst_, "x", s390);
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("linux/arm64/v8"));
  EXPECT_TRUE(absl::IsNotFound(dst_->Resolve("x").status()));
}

TEST_F(ImageConvertTest, SameLayoutSameTag) {
  Tag("v1", AddManifest({"a"}, "amd64"));
  auto r = ConvertImage(*src_, "v1", *src_, "v1", Options());
  ASSERT_TRUE(r.ok()) << r.status();
  auto index = src_->ReadIndex();
  ASSERT_EQ(index->manifests.size(), 1u);
  EXPECT_EQ(index->manifests[0].digest, r->descriptor.digest);
  // Converting the result again keeps every layer as it is.
  fake_.calls = 0;
  auto again = ConvertImage(*src_, "v1", *src_, "v1", Options());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(fake_.calls.load(), 0);
  EXPECT_EQ(again->descriptor.digest, r->descriptor.digest);
}

TEST_F(ImageConvertTest, DockerMediaTypesBecomeOci) {
  Tag("d", AddManifest({"a"}, "amd64", {}, kDockerManifestMediaType, kDockerLayerGzipMediaType));
  auto r = ConvertImage(*src_, "d", *dst_, "d", Options());
  ASSERT_TRUE(r.ok()) << r.status();
  Manifest m = ReadManifest(*dst_, r->descriptor);
  EXPECT_EQ(m.media_type, kOciManifestMediaType);
  EXPECT_EQ(m.config.media_type, kOciConfigMediaType);
  EXPECT_EQ(m.layers[0].media_type, kOciLayerGzipMediaType);
}

TEST_F(ImageConvertTest, FailureLeavesNoTag) {
  Tag("v1", AddManifest({"good", "bad", "good2"}, "amd64"));
  fake_.fail_on = "bad";
  auto r = ConvertImage(*src_, "v1", *dst_, "v1", Options());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(Sha256::Of("bad").ToString()));
  EXPECT_TRUE(dst_->ReadIndex()->manifests.empty());
  EXPECT_FALSE(HasTempFiles(root_ + "/dst"));
}

TEST_F(ImageConvertTest, CorruptSourceLayerIsDataLoss) {
  Tag("v1", AddManifest({"content"}, "amd64"));
  ASSERT_TRUE(WriteFileAtomically(src_->BlobPath(Sha256::Of("content")), "CONTENT").ok());
  auto r = ConvertImage(*src_, "v1", *dst_, "v1", Options());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_TRUE(dst_->ReadIndex()->manifests.empty());
}

TEST_F(ImageConvertTest, RejectsBadInputs) {
  Manifest m;
  m.media_type = kOciManifestMediaType;
  m.config = *src_->WriteBlob(kOciConfigMediaType, Config({"a", "b"}, "amd64"));
  m.layers.push_back(*src_->WriteBlob(kOciLayerGzipMediaType, "a"));
  Tag("mismatch", *src_->WriteBlob(kOciManifestMediaType, SerializeManifest(m)));
  auto r = ConvertImage(*src_, "mismatch", *dst_, "x", Options());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("2 diff_ids for 1 layers"));

  Tag("ok", AddManifest({"a"}, "amd64"));
  EXPECT_TRUE(absl::IsNotFound(ConvertImage(*src_, "nope", *dst_, "x", Options()).status()));
  EXPECT_EQ(ConvertImage(*src_, "ok", *dst_, "bad tag", Options()).status().code(),
            absl::StatusCode::kInvalidArgument);
  ImageConvertOptions arm = Options();
  arm.platforms = {*Platform::Parse("linux/arm64")};
  EXPECT_TRUE(absl::IsNotFound(ConvertImage(*src_, "ok", *dst_, "x", arm).status()));
}

// With the real converter: the output layers open as seekable layers whose TOC matches the
// annotation, hold the input's files, and the config's diff_ids are their uncompressed digests.
TEST_F(ImageConvertTest, RealConverterBothFormats) {
  std::string layer0 = Tar({{"etc/hello", "hello world\n"}, {"usr/bin/tool", std::string(70000, 'x')}});
  std::string layer1 = Tar({{"etc/second", "two"}});
  Tag("v1", AddManifest({layer0, layer1}, "amd64", {}, kOciManifestMediaType, kOciLayerMediaType));
  for (LayerFormat format : {LayerFormat::kEstargz, LayerFormat::kZstdChunked}) {
    ImageConvertOptions o;
    o.converter = ConvertLayer;
    o.layer.format = format;
    o.layer.chunk_size = 4096;
    o.layer.prioritized_files = {"etc/hello", "not/there"};
    std::string tag = format == LayerFormat::kEstargz ? "estargz" : "zstd";
    auto r = ConvertImage(*src_, "v1", *dst_, tag, o);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->missed_prioritized_files, std::vector<std::string>{"not/there"});
    Manifest m = ReadManifest(*dst_, r->descriptor);
    auto config = ParseImageConfig(*dst_->ReadBlob(m.config.digest, m.config.size, 1 << 20));
    ASSERT_TRUE(config.ok()) << config.status();
    ASSERT_EQ(m.layers.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      SCOPED_TRACE(tag + " layer " + std::to_string(i));
      const Descriptor& l = m.layers[i];
      EXPECT_EQ(l.media_type, format == LayerFormat::kEstargz ? kOciLayerGzipMediaType
                                                              : kOciLayerZstdMediaType);
      auto blob = FileBlobSource::Open(dst_->BlobPath(l.digest));
      ASSERT_TRUE(blob.ok());
      EXPECT_EQ(static_cast<int64_t>((*blob)->Size()), l.size);
      OpenOptions open;
      open.annotations = l.annotations;
      auto layer = OpenLayer(**blob, open);
      ASSERT_TRUE(layer.ok()) << layer.status();
      ASSERT_TRUE(r->manifests[0].layers[i].toc_digest.has_value());
      EXPECT_EQ((*layer)->toc_digest, *r->manifests[0].layers[i].toc_digest);
      std::string path = i == 0 ? "etc/hello" : "etc/second";
      EntryId id = (*layer)->index.LookupPath(path);
      ASSERT_NE(id, kNoEntry);
      auto content = ReadFile(**blob, **layer, id);
      ASSERT_TRUE(content.ok()) << content.status();
      EXPECT_EQ(*content, i == 0 ? "hello world\n" : "two");
      // diff_id: the digest of the decompressed blob.
      auto in = FileInputStream::Open(dst_->BlobPath(l.digest));
      ASSERT_TRUE(in.ok());
      auto plain = NewDecompressingStream(in->get());
      ASSERT_TRUE(plain.ok());
      Sha256Hasher hasher;
      char buf[65536];
      for (;;) {
        auto n = (*plain)->Read(absl::MakeSpan(buf));
        ASSERT_TRUE(n.ok()) << n.status();
        if (*n == 0) break;
        hasher.Update(buf, *n);
      }
      EXPECT_EQ(config->diff_ids[i], hasher.Finish());
    }
  }
}

}  // namespace
}  // namespace lazysnap

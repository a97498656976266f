// RegistryClient and RegistryBlobSource against a real docker-registry over plain HTTP.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/blob_source.h"
#include "base/digest.h"
#include "base/stream.h"
#include "base/strings.h"
#include "format/oci.h"
#include "registry/blob_reader.h"
#include "registry/client.h"
#include "registry/curl_transport.h"
#include "registry/testenv.h"

namespace lazysnap::registry {
namespace {

using testing::RegistryProcess;
using testing::TempDir;

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed;
  for (char& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

class ClientIntegrationTest : public ::testing::Test {
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

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<RegistryProcess> registry_;
  std::unique_ptr<CurlTransport> transport_;
  std::unique_ptr<RegistryClient> client_;
  Reference ref_;
};

TEST_F(ClientIntegrationTest, PushedBlobReadsBackInRanges) {
  const std::string blob = Pattern(3 << 20, 7);
  auto d = client_->PushBlob(ref_, blob);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest, Sha256::Of(blob));
  EXPECT_EQ(*client_->BlobSize(ref_, d->digest), blob.size());

  auto src = client_->OpenBlob(ref_, d->digest);
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ((*src)->Size(), blob.size());
  for (auto [off, n] : std::vector<std::pair<uint64_t, size_t>>{
           {0, 1}, {0, 4096}, {12345, 100000}, {blob.size() - 7, 7}, {0, blob.size()}}) {
    std::string buf(n, '\0');
    ASSERT_TRUE((*src)->ReadAt(off, absl::MakeSpan(buf)).ok()) << off;
    EXPECT_TRUE(buf == blob.substr(off, n)) << "range at " << off;
  }
  std::string past(10, '\0');
  EXPECT_TRUE(absl::IsOutOfRange((*src)->ReadAt(blob.size() - 5, absl::MakeSpan(past))));

  auto whole = client_->FetchBlob(ref_, d->digest, blob.size());
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_TRUE(*whole == blob);
  EXPECT_TRUE(absl::IsFailedPrecondition(client_->FetchBlob(ref_, d->digest, 100).status()));
}

TEST_F(ClientIntegrationTest, MultiRangeReadsUseOneRequest) {
  const std::string blob = Pattern(1 << 20, 9);
  auto d = client_->PushBlob(ref_, blob);
  ASSERT_TRUE(d.ok()) << d.status();
  auto src = std::move(client_->OpenBlob(ref_, d->digest, blob.size())).value();
  std::vector<std::string> bufs;
  std::vector<RangeRead> ranges;
  for (uint64_t off : {0u, 5000u, 70000u, 500000u, 1048000u}) bufs.emplace_back(500, '\0');
  uint64_t offs[] = {0, 5000, 70000, 500000, 1048000};
  for (size_t i = 0; i < bufs.size(); ++i) ranges.push_back({offs[i], absl::MakeSpan(bufs[i])});
  uint64_t before = src->requests();
  ASSERT_TRUE(src->ReadRanges(ranges).ok());
  EXPECT_EQ(src->requests() - before, 1u);
  for (size_t i = 0; i < bufs.size(); ++i) EXPECT_TRUE(bufs[i] == blob.substr(offs[i], 500)) << i;
}

TEST_F(ClientIntegrationTest, ParallelReadsShareThePool) {
  const std::string blob = Pattern(2 << 20, 3);
  auto d = client_->PushBlob(ref_, blob);
  ASSERT_TRUE(d.ok()) << d.status();
  auto src = std::move(client_->OpenBlob(ref_, d->digest, blob.size())).value();
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        uint64_t off = (static_cast<uint64_t>(t) * 7919 + i * 104729) % (blob.size() - 4096);
        std::string buf(4096, '\0');
        if (!src->ReadAt(off, absl::MakeSpan(buf)).ok() || buf != blob.substr(off, 4096)) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST_F(ClientIntegrationTest, ManifestsIndexesAndPlatforms) {
  std::string config =
      R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})";
  std::string layer = Pattern(1000, 1);
  auto cd = client_->PushBlob(ref_, config);
  auto ld = client_->PushBlob(ref_, layer);
  ASSERT_TRUE(cd.ok() && ld.ok());
  auto manifest_for = [&](std::string_view mt) {
    Manifest m;
    m.media_type = std::string(mt);
    m.config = DescriptorOf(kOciConfigMediaType, config);
    m.layers.push_back(DescriptorOf(kOciLayerGzipMediaType, layer));
    return SerializeManifest(m);
  };
  std::string amd64 = manifest_for(kOciManifestMediaType);
  std::string arm64 = manifest_for(kOciManifestMediaType) + " ";  // another digest
  auto amd = client_->PushManifest(ref_.WithObject("amd64"), kOciManifestMediaType, amd64);
  auto arm = client_->PushManifest(ref_.WithObject("arm64"), kOciManifestMediaType, arm64);
  ASSERT_TRUE(amd.ok() && arm.ok()) << amd.status() << arm.status();
  Index index;
  index.media_type = kOciIndexMediaType;
  Descriptor a = DescriptorOf(kOciManifestMediaType, arm64);
  a.platform = Platform{"linux", "arm64", "v8", "", {}};
  Descriptor b = DescriptorOf(kOciManifestMediaType, amd64);
  b.platform = Platform::Default();
  index.manifests = {a, b};
  std::string index_bytes = SerializeIndex(index);
  ASSERT_TRUE(client_->PushManifest(ref_, kOciIndexMediaType, index_bytes).ok());

  auto resolved = client_->Resolve(ref_);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->digest, Sha256::Of(index_bytes));
  EXPECT_EQ(resolved->media_type, kOciIndexMediaType);

  auto image = client_->ResolveImage(ref_);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->bytes, amd64);
  auto arm_image = client_->ResolveImage(ref_, *Platform::Parse("linux/arm64"));
  ASSERT_TRUE(arm_image.ok()) << arm_image.status();
  EXPECT_EQ(arm_image->bytes, arm64);
  EXPECT_TRUE(
      absl::IsNotFound(client_->ResolveImage(ref_, *Platform::Parse("linux/s390x")).status()));

  // By digest: checked against the reference.
  auto by_digest = client_->FetchManifest(ref_.WithObject(amd->digest.ToString()));
  ASSERT_TRUE(by_digest.ok());
  EXPECT_EQ(by_digest->bytes, amd64);
  EXPECT_TRUE(absl::IsNotFound(client_->FetchManifest(ref_.WithObject("nope")).status()));
}

TEST_F(ClientIntegrationTest, DockerManifestList) {
  std::string config = R"({"architecture":"arm64","os":"linux"})";
  std::string layer = Pattern(2000, 2);
  ASSERT_TRUE(client_->PushBlob(ref_, config).ok());
  ASSERT_TRUE(client_->PushBlob(ref_, layer).ok());
  Manifest m;
  m.media_type = kDockerManifestMediaType;
  m.config = DescriptorOf(kDockerConfigMediaType, config);
  m.layers.push_back(DescriptorOf(kDockerLayerGzipMediaType, layer));
  const std::string amd64 = SerializeManifest(m);
  const std::string arm64 = amd64 + "\n";
  for (const std::string* bytes : {&amd64, &arm64}) {
    auto d = client_->PushManifest(ref_.WithObject(Sha256::Of(*bytes).ToString()),
                                   kDockerManifestMediaType, *bytes);
    ASSERT_TRUE(d.ok()) << d.status();
  }
  Index list;
  list.media_type = kDockerManifestListMediaType;
  Descriptor a = DescriptorOf(kDockerManifestMediaType, arm64);
  a.platform = Platform{"linux", "arm64", "v8", "", {}};
  Descriptor b = DescriptorOf(kDockerManifestMediaType, amd64);
  b.platform = Platform::Default();
  list.manifests = {a, b};
  Reference multi = ref_.WithObject("multi");
  ASSERT_TRUE(
      client_->PushManifest(multi, kDockerManifestListMediaType, SerializeIndex(list)).ok());
  auto top = client_->Resolve(multi);
  ASSERT_TRUE(top.ok()) << top.status();
  EXPECT_EQ(top->media_type, kDockerManifestListMediaType);
  auto image = client_->ResolveImage(multi);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->bytes, amd64);
  EXPECT_EQ(image->descriptor.media_type, kDockerManifestMediaType);
  auto arm = client_->ResolveImage(multi, *Platform::Parse("linux/arm64/v8"));
  ASSERT_TRUE(arm.ok()) << arm.status();
  EXPECT_EQ(arm->bytes, arm64);
}

TEST_F(ClientIntegrationTest, ChunkedUploadAndMount) {
  ClientOptions opts;
  opts.upload_chunk_size = 100000;
  RegistryClient chunked(transport_.get(), nullptr, opts);
  const std::string blob = Pattern(350000, 11);
  auto d = chunked.PushBlob(ref_, blob);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(*client_->FetchBlob(ref_, d->digest, blob.size()) == blob);

  // From a file, in chunks; a wrong digest is refused by the registry.
  std::string path = dir_->path() + "/layer.bin";
  const std::string big = Pattern(250000, 12);
  ASSERT_TRUE(WriteFileAtomically(path, big).ok());
  auto file = std::move(FileBlobSource::Open(path)).value();
  auto fd = chunked.PushBlobFrom(ref_, *file, Sha256::Of(big));
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_TRUE(*client_->FetchBlob(ref_, fd->digest, big.size()) == big);
  EXPECT_FALSE(chunked.PushBlobFrom(ref_, *file, Sha256::Of("not it")).ok());

  Reference other = *Reference::Parse(StrCat(registry_->host(), "/other/repo:x"));
  EXPECT_TRUE(absl::IsNotFound(client_->BlobSize(other, d->digest).status()));
  auto mounted = client_->MountBlob(other, ref_.repository, d->digest);
  ASSERT_TRUE(mounted.ok()) << mounted.status();
  EXPECT_TRUE(*mounted);
  EXPECT_EQ(*client_->BlobSize(other, d->digest), blob.size());
  auto not_there = client_->MountBlob(other, ref_.repository, Sha256::Of("absent"));
  ASSERT_TRUE(not_there.ok()) << not_there.status();
  EXPECT_FALSE(*not_there);
}

TEST_F(ClientIntegrationTest, ReferrersThroughTheTagSchema) {
  std::string config = "{}";
  ASSERT_TRUE(client_->PushBlob(ref_, config).ok());
  Manifest subject;
  subject.media_type = kOciManifestMediaType;
  subject.config = DescriptorOf(kOciConfigMediaType, config);
  std::string subject_bytes = SerializeManifest(subject);
  auto sd = client_->PushManifest(ref_, kOciManifestMediaType, subject_bytes);
  ASSERT_TRUE(sd.ok()) << sd.status();
  auto none = client_->Referrers(ref_, sd->digest);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());

  std::string trace =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("artifactType":"application/vnd.lazysnap.trace.v1",)"
      R"("config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":")" +
      Sha256::Of(config).ToString() +
      R"(","size":2},"layers":[],)"
      R"("subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
      sd->digest.ToString() + R"(","size":)" + std::to_string(sd->size) + "}}";
  auto td = client_->PushManifest(ref_.WithObject(Sha256::Of(trace).ToString()),
                                  kOciManifestMediaType, trace);
  ASSERT_TRUE(td.ok()) << td.status();
  auto refs = client_->Referrers(ref_, sd->digest, "application/vnd.lazysnap.trace.v1");
  ASSERT_TRUE(refs.ok()) << refs.status();
  ASSERT_EQ(refs->size(), 1u);
  EXPECT_EQ((*refs)[0].digest, td->digest);
  auto other = client_->Referrers(ref_, sd->digest, "application/other");
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->empty());
}

}  // namespace
}  // namespace lazysnap::registry

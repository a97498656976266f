#include "containerd/pull.h"

#include <set>

#include "absl/synchronization/mutex.h"

#include <gtest/gtest.h>

#include "base/status_macros.h"
#include "base/strings.h"

namespace lazysnap::containerd {
namespace {

// A containerd that keeps what it is told in maps, with a lease model (what is created under
// a lease disappears with it unless an image record refers to it) and injectable faults.
class FakeContainerd : public ContainerdApi {
 public:
  // Layers (by digest, from the cri.layer-digest label) the snapshotter mounts remotely.
  std::set<std::string> remote_layers;
  // Faults.
  absl::Status write_error, prepare_error, apply_error, commit_error, image_error;
  std::optional<Sha256> apply_result;  // else the config's diff ID passed via `diff_ids`
  std::map<std::string, Sha256> diff_ids;  // layer digest -> what Apply returns

  std::map<std::string, std::string> content;  // digest -> bytes
  std::map<std::string, Labels> content_labels;
  std::map<std::string, Labels> snapshots;       // committed: chain ID -> labels
  std::map<std::string, std::string> active;     // key -> parent
  std::map<std::string, ImageRecord> images;
  std::set<std::string> leases;
  std::vector<std::string> prepared_keys;
  std::vector<Labels> prepare_labels;
  int applies = 0;

  absl::StatusOr<std::string> CreateLease(absl::Duration) override {
    absl::MutexLock l(&mu_);  // content is written on a second thread
    std::string id = StrCat("lease-", leases.size() + deleted_leases_);
    leases.insert(id);
    return id;
  }
  void UseLease(const std::string& id) override {
    absl::MutexLock l(&mu_);
    lease_ = id;
  }
  absl::Status DeleteLease(const std::string& id, bool) override {
    absl::MutexLock l(&mu_);  // content is written on a second thread
    if (!leases.erase(id)) return absl::NotFoundError(id);
    ++deleted_leases_;
    return absl::OkStatus();
  }
  absl::Status WriteContent(const std::string&, const Sha256& digest, int64_t size,
                            BlobSource& src, const Labels& labels) override {
    absl::MutexLock l(&mu_);  // content is written on a second thread
    EXPECT_FALSE(lease_.empty()) << "content written outside the lease";
    if (!write_error.ok()) return write_error;
    if (content.count(digest.ToString())) return absl::AlreadyExistsError("exists");
    auto data = ReadRange(src, 0, src.Size());
    if (!data.ok()) return data.status();
    if (static_cast<int64_t>(data->size()) != size || Sha256::Of(*data) != digest) {
      return absl::FailedPreconditionError("digest mismatch");
    }
    content[digest.ToString()] = *data;
    content_labels[digest.ToString()] = labels;
    return absl::OkStatus();
  }
  absl::Status SetContentLabels(const Sha256& digest, const Labels& labels) override {
    absl::MutexLock l(&mu_);  // content is written on a second thread
    if (!content.count(digest.ToString())) return absl::NotFoundError("no content");
    for (const auto& [k, v] : labels) content_labels[digest.ToString()][k] = v;
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<Mount>> Prepare(const std::string& sn, const std::string& key,
                                             const std::string& parent,
                                             const Labels& labels) override {
    absl::MutexLock l(&mu_);  // content is written on a second thread
    EXPECT_EQ(sn, "lazysnap");
    EXPECT_FALSE(lease_.empty());
    prepared_keys.push_back(key);
    prepare_labels.push_back(labels);
    if (!prepare_error.ok()) return prepare_error;
    if (!parent.empty() && !snapshots.count(parent)) return absl::NotFoundError("no parent");
    std::string target = labels.at("containerd.io/snapshot.ref");
    if (remote_layers.count(labels.at("containerd.io/snapshot/cri.layer-digest"))) {
      snapshots[target] = labels;
      return absl::AlreadyExistsError("target snapshot exists");
    }
    active[key] = parent;
    return std::vector<Mount>{{"bind", "/x/" + key, "", {"rw"}}};
  }
  absl::Status Commit(const std::string&, const std::string& name, const std::string& key,
                      const Labels& labels) override {
    absl::MutexLock l(&mu_);  // content is written on a second thread
    if (!commit_error.ok()) return commit_error;
    if (!active.erase(key)) return absl::NotFoundError("no active snapshot");
    snapshots[name] = labels;
    return absl::OkStatus();
  }
  absl::Status Stat(const std::string&, const std::string& key) override {
    absl::MutexLock l(&mu_);  // content is written on a second thread
    return snapshots.count(key) || active.count(key) ? absl::OkStatus()
                                                     : absl::NotFoundError(key);
  }
  absl::Status Remove(const std::string&, const std::string& key) override {
    absl::MutexLock l(&mu_);  // content is written on a second thread
    return active.erase(key) || snapshots.erase(key) ? absl::OkStatus() : absl::NotFoundError(key);
  }
  absl::StatusOr<Sha256> Apply(const Descriptor& layer, const std::vector<Mount>& mounts) override {
    absl::MutexLock l(&mu_);  // content is written on a second thread
    ++applies;
    EXPECT_EQ(mounts.size(), 1u);
    if (!apply_error.ok()) return apply_error;
    if (!content.count(layer.digest.ToString())) return absl::NotFoundError("layer not in store");
    if (apply_result) return *apply_result;
    return diff_ids.at(layer.digest.ToString());
  }
  absl::Status PutImage(const ImageRecord& image) override {
    absl::MutexLock l(&mu_);  // content is written on a second thread
    if (!image_error.ok()) return image_error;
    images[image.name] = image;
    return absl::OkStatus();
  }

 private:
  absl::Mutex mu_;
  std::string lease_;
  int deleted_leases_ = 0;
};

// An image in memory: an index with an amd64 and an arm64 manifest, two gzip "layers" each.
class FakeSource : public ImageSource {
 public:
  std::map<std::string, std::string> blobs;  // digest -> bytes
  Descriptor top;
  absl::Status top_error;
  int opened = 0;

  absl::Status Top(Descriptor* desc, std::string* bytes) override {
    if (!top_error.ok()) return top_error;
    *desc = top;
    *bytes = blobs.at(top.digest.ToString());
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> FetchManifest(const Descriptor& d) override { return Get(d); }
  absl::StatusOr<std::string> FetchBlob(const Descriptor& d) override { return Get(d); }
  absl::StatusOr<std::unique_ptr<BlobSource>> OpenBlob(const Descriptor& d) override {
    ++opened;
    ASSIGN_OR_RETURN(std::string b, Get(d));
    return std::unique_ptr<BlobSource>(new MemoryBlobSource(b));
  }
  Descriptor Add(std::string_view media_type, std::string bytes) {
    Descriptor d = DescriptorOf(media_type, bytes);
    blobs[d.digest.ToString()] = std::move(bytes);
    return d;
  }

 private:
  absl::StatusOr<std::string> Get(const Descriptor& d) {
    auto it = blobs.find(d.digest.ToString());
    if (it == blobs.end()) return absl::NotFoundError(StrCat("blob ", d.digest.ToString()));
    return it->second;
  }
};

class PullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      Descriptor l = source_.Add(kOciLayerGzipMediaType, StrCat("layer-", i));
      if (i == 0) l.annotations["containerd.io/snapshot/stargz/toc.digest"] = "sha256:00";
      l.annotations["org.example.note"] = "n";
      diff_ids_.push_back(Sha256::Of(StrCat("tar-", i)));
      fake_.diff_ids[l.digest.ToString()] = diff_ids_.back();
      manifest_.layers.push_back(l);
    }
    ImageConfig config;
    config.diff_ids = diff_ids_;
    config.json = {{"architecture", "amd64"}, {"os", "linux"},
                   {"rootfs", {{"type", "layers"}, {"diff_ids", nlohmann::ordered_json::array()}}}};
    manifest_.media_type = kOciManifestMediaType;
    manifest_.config = source_.Add(kOciConfigMediaType, SerializeImageConfig(config));
    manifest_desc_ = source_.Add(kOciManifestMediaType, SerializeManifest(manifest_));
    Index index;
    index.media_type = kOciIndexMediaType;
    Descriptor arm = manifest_desc_;
    arm.digest = Sha256::Of("other");
    arm.platform = Platform{"linux", "arm64", "", "", {}};
    Descriptor amd = manifest_desc_;
    amd.platform = Platform::Default();
    index.manifests = {arm, amd};
    source_.top = source_.Add(kOciIndexMediaType, SerializeIndex(index));
    options_.name = "reg.example/app:v1";
    options_.image_ref = "reg.example/app:v1";
  }

  // What a failed pull must leave: no image, no lease, no active snapshot.
  void ExpectNothingLeft() {
    EXPECT_TRUE(fake_.images.empty());
    EXPECT_TRUE(fake_.leases.empty());
    EXPECT_TRUE(fake_.active.empty());
  }

  FakeContainerd fake_;
  FakeSource source_;
  Manifest manifest_;
  Descriptor manifest_desc_;
  std::vector<Sha256> diff_ids_;
  PullOptions options_;
};

TEST_F(PullTest, ChainIds) {
  Sha256 a = Sha256::Of("a"), b = Sha256::Of("b");
  auto c = ChainIds({a, b});
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0], a);
  EXPECT_EQ(c[1], Sha256::Of(a.ToString() + " " + b.ToString()));
}

TEST_F(PullTest, RemoteLayersAreNotDownloaded) {
  for (const auto& l : manifest_.layers) fake_.remote_layers.insert(l.digest.ToString());
  auto r = PullImage(fake_, source_, options_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(source_.opened, 0);
  EXPECT_EQ(fake_.applies, 0);
  ASSERT_EQ(r->layers.size(), 2u);
  for (const auto& l : r->layers) EXPECT_EQ(l.outcome, LayerOutcome::kRemote);
  auto chains = ChainIds(diff_ids_);
  EXPECT_TRUE(fake_.snapshots.count(chains[1].ToString()));

  // Prepare keys and labels as containerd's unpacker and CRI plugin make them.
  ASSERT_EQ(fake_.prepared_keys.size(), 2u);
  EXPECT_EQ(fake_.prepared_keys[1].rfind("extract-", 0), 0u);
  EXPECT_NE(fake_.prepared_keys[1].find(" " + chains[1].ToString()), std::string::npos);
  const Labels& l0 = fake_.prepare_labels[0];
  EXPECT_EQ(l0.at("containerd.io/snapshot.ref"), chains[0].ToString());
  EXPECT_EQ(l0.at("containerd.io/snapshot/cri.image-ref"), "reg.example/app:v1");
  EXPECT_EQ(l0.at("containerd.io/snapshot/cri.layer-digest"), manifest_.layers[0].digest.ToString());
  EXPECT_EQ(l0.at("containerd.io/snapshot/cri.manifest-digest"), manifest_desc_.digest.ToString());
  EXPECT_EQ(l0.at("containerd.io/snapshot/cri.image-layers"),
            manifest_.layers[0].digest.ToString() + "," + manifest_.layers[1].digest.ToString());
  EXPECT_EQ(l0.at("containerd.io/snapshot/stargz/toc.digest"), "sha256:00");
  EXPECT_EQ(l0.at("containerd.io/snapshot/org.example.note"), "n");
  EXPECT_EQ(fake_.prepare_labels[1].at("containerd.io/snapshot/cri.image-layers"),
            manifest_.layers[1].digest.ToString());

  // GC labels: index -> manifest -> config (+ layers) -> top snapshot.
  const Labels& idx = fake_.content_labels.at(source_.top.digest.ToString());
  EXPECT_EQ(idx.at("containerd.io/gc.ref.content.m.1"), manifest_desc_.digest.ToString());
  const Labels& man = fake_.content_labels.at(manifest_desc_.digest.ToString());
  EXPECT_EQ(man.at("containerd.io/gc.ref.content.config"), manifest_.config.digest.ToString());
  EXPECT_EQ(man.at("containerd.io/gc.ref.content.l.1"), manifest_.layers[1].digest.ToString());
  EXPECT_EQ(fake_.content_labels.at(manifest_.config.digest.ToString())
                .at("containerd.io/gc.ref.snapshot.lazysnap"),
            chains[1].ToString());
  ASSERT_TRUE(fake_.images.count("reg.example/app:v1"));
  EXPECT_EQ(fake_.images["reg.example/app:v1"].target.digest, source_.top.digest);
  EXPECT_EQ(fake_.images["reg.example/app:v1"].target.media_type, kOciIndexMediaType);
  EXPECT_TRUE(fake_.leases.empty());
  EXPECT_TRUE(fake_.active.empty());
}

TEST_F(PullTest, NotSeekableLayerIsAppliedAndCommitted) {
  fake_.remote_layers.insert(manifest_.layers[0].digest.ToString());
  auto r = PullImage(fake_, source_, options_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->layers[0].outcome, LayerOutcome::kRemote);
  EXPECT_EQ(r->layers[1].outcome, LayerOutcome::kApplied);
  EXPECT_EQ(source_.opened, 1);
  std::string l1 = manifest_.layers[1].digest.ToString();
  EXPECT_EQ(fake_.content.at(l1), "layer-1");
  EXPECT_EQ(fake_.content_labels.at(l1).at("containerd.io/uncompressed"), diff_ids_[1].ToString());
  EXPECT_TRUE(fake_.snapshots.count(ChainIds(diff_ids_)[1].ToString()));
  EXPECT_TRUE(fake_.active.empty());
}

TEST_F(PullTest, SecondPullFindsEverythingPresent) {
  ASSERT_TRUE(PullImage(fake_, source_, options_).ok());
  int opened = source_.opened;
  auto r = PullImage(fake_, source_, options_);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const auto& l : r->layers) EXPECT_EQ(l.outcome, LayerOutcome::kPresent);
  EXPECT_EQ(source_.opened, opened);
  EXPECT_TRUE(fake_.leases.empty());
}

TEST_F(PullTest, PlatformSelection) {
  options_.platform = Platform{"linux", "arm64", "", "", {}};
  auto r = PullImage(fake_, source_, options_);
  ASSERT_FALSE(r.ok());  // the arm64 manifest is not in the source
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
  options_.platform = Platform{"linux", "s390x", "", "", {}};
  r = PullImage(fake_, source_, options_);
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("linux/s390x"), std::string::npos);
  ExpectNothingLeft();
}

TEST_F(PullTest, UnknownReferenceCreatesNothing) {
  source_.top_error = absl::NotFoundError("manifest unknown");
  auto r = PullImage(fake_, source_, options_);
  EXPECT_TRUE(absl::IsNotFound(r.status()));
  ExpectNothingLeft();
  EXPECT_TRUE(fake_.content.empty());
}

TEST_F(PullTest, NonImageManifestIsRefused) {
  Manifest artifact = manifest_;
  artifact.config = source_.Add("application/vnd.example.thing", "{}");
  source_.top = source_.Add(kOciManifestMediaType, SerializeManifest(artifact));
  auto r = PullImage(fake_, source_, options_);
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("not a container image"), std::string::npos);
  ExpectNothingLeft();
}

TEST_F(PullTest, ContentWriteFailureLeavesNothing) {
  fake_.write_error = absl::UnavailableError("disk full");
  auto r = PullImage(fake_, source_, options_);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsUnavailable(r.status()));
  EXPECT_NE(r.status().message().find("disk full"), std::string::npos);
  ExpectNothingLeft();
}

TEST_F(PullTest, PrepareFailureLeavesNothing) {
  fake_.prepare_error = absl::InternalError("snapshotter broke");
  auto r = PullImage(fake_, source_, options_);
  EXPECT_TRUE(absl::IsInternal(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("prepare snapshot for layer"), std::string::npos);
  ExpectNothingLeft();
}

TEST_F(PullTest, ApplyFailureRemovesTheActiveSnapshot) {
  fake_.apply_error = absl::InternalError("bad tar");
  auto r = PullImage(fake_, source_, options_);
  EXPECT_TRUE(absl::IsInternal(r.status())) << r.status();
  ExpectNothingLeft();
}

TEST_F(PullTest, WrongDiffIdIsRefused) {
  fake_.apply_result = Sha256::Of("something else");
  auto r = PullImage(fake_, source_, options_);
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_TRUE(fake_.snapshots.empty());
  ExpectNothingLeft();
}

TEST_F(PullTest, CommitFailureRemovesTheActiveSnapshot) {
  fake_.commit_error = absl::InternalError("commit broke");
  auto r = PullImage(fake_, source_, options_);
  EXPECT_TRUE(absl::IsInternal(r.status())) << r.status();
  ExpectNothingLeft();
}

TEST_F(PullTest, ImageRecordFailureReleasesTheLease) {
  fake_.image_error = absl::PermissionDeniedError("no");
  auto r = PullImage(fake_, source_, options_);
  EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << r.status();
  ExpectNothingLeft();
}

TEST_F(PullTest, ConfigWithWrongLayerCountIsRefused) {
  ImageConfig config;
  config.diff_ids = {diff_ids_[0]};
  config.json = {{"architecture", "amd64"}, {"os", "linux"}};
  Manifest m = manifest_;
  m.config = source_.Add(kOciConfigMediaType, SerializeImageConfig(config));
  source_.top = source_.Add(kOciManifestMediaType, SerializeManifest(m));
  auto r = PullImage(fake_, source_, options_);
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  ExpectNothingLeft();
}

TEST(LayerLabelsTest, ImageLayersFitInOneLabel) {
  Manifest m;
  for (int i = 0; i < 200; ++i) {
    m.layers.push_back(DescriptorOf(kOciLayerGzipMediaType, StrCat(i)));
  }
  Labels l = LayerLabels(m, Sha256::Of("m"), 0, "sha256:c", "r/x:1");
  const std::string& v = l.at("containerd.io/snapshot/cri.image-layers");
  EXPECT_LE(v.size() + std::string("containerd.io/snapshot/cri.image-layers").size(), 4096u);
  EXPECT_EQ(v.rfind(m.layers[0].digest.ToString(), 0), 0u);
  EXPECT_GT(v.size(), 3000u);
}

}  // namespace
}  // namespace lazysnap::containerd

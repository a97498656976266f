// OverlaySnapshotter::RestoreRemoteLayers with a fake mounter: after a "restart" (the
// snapshotter opened again on the same root), every committed remote snapshot is mounted
// again at its directory with the labels it was committed with; failures are counted, not
// fatal, and leave the snapshot unavailable.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "absl/synchronization/mutex.h"
#include "snapshotter/overlay_snapshotter.h"

namespace lazysnap {
namespace {

// Records Mount calls; fails the digests in `fail`. Check is OK only for mounted dirs.
class RecordingMounter : public RemoteLayerMounter {
 public:
  struct State {
    absl::Mutex mu;
    std::vector<std::pair<std::string, std::string>> mounted ABSL_GUARDED_BY(mu);  // digest, dir
    std::vector<Labels> labels ABSL_GUARDED_BY(mu);
    std::set<std::string> fail ABSL_GUARDED_BY(mu);
    std::set<std::string> live ABSL_GUARDED_BY(mu);
  };
  explicit RecordingMounter(std::shared_ptr<State> s) : s_(std::move(s)) {}
  absl::Status Mount(const std::string& digest, const Labels& labels,
                     const std::string& dir) override {
    absl::MutexLock l(&s_->mu);
    s_->mounted.emplace_back(digest, dir);
    s_->labels.push_back(labels);
    if (s_->fail.count(digest)) return absl::UnavailableError("registry down");
    s_->live.insert(dir);
    return absl::OkStatus();
  }
  absl::Status Check(const std::string& dir) override {
    absl::MutexLock l(&s_->mu);
    return s_->live.count(dir) ? absl::OkStatus() : absl::UnavailableError("not mounted");
  }
  absl::Status Unmount(const std::string& dir) override {
    absl::MutexLock l(&s_->mu);
    s_->live.erase(dir);
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<State> s_;
};

const char kD1[] = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const char kD2[] = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

Labels RemoteLabels(const std::string& target, const std::string& digest) {
  return {{kTargetSnapshotLabel, target},
          {kStargzLayerDigestLabel, digest},
          {"containerd.io/snapshot/remote/stargz.reference", "127.0.0.1:5000/x:y"}};
}

TEST(RemoteRestoreTest, RemountsCommittedRemoteSnapshotsAfterRestart) {
  char tmpl[] = "/tmp/remote_restore_test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string root = std::string(tmpl) + "/state";
  std::vector<std::pair<std::string, std::string>> first_mounts;
  {
    auto state = std::make_shared<RecordingMounter::State>();
    auto s = OverlaySnapshotter::Open(root, std::make_unique<RecordingMounter>(state));
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_TRUE(absl::IsAlreadyExists((*s)->Prepare("k1", "", RemoteLabels("L1", kD1)).status()));
    EXPECT_TRUE(absl::IsAlreadyExists((*s)->Prepare("k2", "L1", RemoteLabels("L2", kD2)).status()));
    ASSERT_TRUE((*s)->Prepare("ordinary", "L2", {}).ok());  // active: not restored
    absl::MutexLock l(&state->mu);
    first_mounts.assign(state->mounted.begin(), state->mounted.begin() + 2);
  }
  auto state = std::make_shared<RecordingMounter::State>();
  {
    absl::MutexLock l(&state->mu);
    state->fail.insert(kD2);
  }
  auto s = OverlaySnapshotter::Open(root, std::make_unique<RecordingMounter>(state));
  ASSERT_TRUE(s.ok()) << s.status();
  auto r = (*s)->RestoreRemoteLayers();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->restored, 1u);
  EXPECT_EQ(r->failed, 1u);
  {
    absl::MutexLock l(&state->mu);
    ASSERT_EQ(state->mounted.size(), 2u);
    // Same digests at the same directories as the first process used.
    std::set<std::pair<std::string, std::string>> want(first_mounts.begin(), first_mounts.end());
    std::set<std::pair<std::string, std::string>> got(state->mounted.begin(), state->mounted.end());
    EXPECT_EQ(got, want);
    for (const Labels& l : state->labels) {
      EXPECT_EQ(l.at("containerd.io/snapshot/remote/stargz.reference"), "127.0.0.1:5000/x:y");
    }
  }
  // L1 serves; anything above the unrestorable L2 is unavailable, not wrong.
  EXPECT_TRUE((*s)->View("v1", "L1", {}).ok());
  EXPECT_TRUE(absl::IsUnavailable((*s)->View("v2", "L2", {}).status()));
  s->reset();
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace lazysnap

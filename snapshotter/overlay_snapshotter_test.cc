// OverlaySnapshotter without mounting anything: the mounts it hands out, the directories it
// keeps, usage, removal, cleanup, and the remote-snapshot protocol against a fake mounter.
// (containerd's conformance suite, test/integration/conformance_test.sh, mounts for real.)
#include "snapshotter/overlay_snapshotter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/synchronization/mutex.h"

namespace lazysnap {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Pretends to mount: records the call and drops a marker file into the directory.
class FakeMounter : public RemoteLayerMounter {
 public:
  struct State {
    absl::Mutex mu;
    absl::Status result ABSL_GUARDED_BY(mu);
    absl::Status check ABSL_GUARDED_BY(mu);
    std::vector<std::string> checked ABSL_GUARDED_BY(mu);
    std::vector<std::pair<std::string, std::string>> mounted ABSL_GUARDED_BY(mu);  // digest, dir
    Labels last_labels ABSL_GUARDED_BY(mu);
  };
  explicit FakeMounter(std::shared_ptr<State> state) : state_(std::move(state)) {}
  absl::Status Mount(const std::string& digest, const Labels& labels,
                     const std::string& dir) override {
    absl::MutexLock l(&state_->mu);
    state_->mounted.emplace_back(digest, dir);
    state_->last_labels = labels;
    if (state_->result.ok()) std::ofstream(dir + "/remote-marker") << digest;
    return state_->result;
  }
  absl::Status Check(const std::string& dir) override {
    absl::MutexLock l(&state_->mu);
    state_->checked.push_back(dir);
    return state_->check;
  }
  absl::Status Unmount(const std::string&) override { return absl::OkStatus(); }

 private:
  std::shared_ptr<State> state_;
};

class OverlaySnapshotterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/overlay_snapshotter_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_ = base_ + "/state";
    fake_ = std::make_shared<FakeMounter::State>();
    {
      absl::MutexLock l(&fake_->mu);
      fake_->result = absl::UnavailableError("not seekable");
    }
    auto s = OverlaySnapshotter::Open(root_, std::make_unique<FakeMounter>(fake_));
    ASSERT_TRUE(s.ok()) << s.status();
    s_ = std::move(*s);
  }
  void TearDown() override {
    s_.reset();
    std::filesystem::remove_all(base_);
  }
  // Prepares and commits `name` on `parent`; returns the layer directory.
  std::string Layer(const std::string& name, const std::string& parent,
                    const std::string& file_content = "") {
    auto m = s_->Prepare(name + "-active", parent, {});
    EXPECT_TRUE(m.ok()) << m.status();
    std::string fs = UpperOf(*m);
    if (!file_content.empty()) std::ofstream(fs + "/file-" + name) << file_content;
    EXPECT_TRUE(s_->Commit(name, name + "-active", {}).ok());
    return fs;
  }
  // The upper (or bind source) directory of an active snapshot's mounts.
  static std::string UpperOf(const std::vector<Mount>& m) {
    if (m.size() == 1 && m[0].type == "bind") return m[0].source;
    for (const std::string& o : m[0].options) {
      if (o.rfind("upperdir=", 0) == 0) return o.substr(9);
    }
    return "";
  }

  std::string base_, root_;
  std::shared_ptr<FakeMounter::State> fake_;
  std::unique_ptr<OverlaySnapshotter> s_;
};

TEST_F(OverlaySnapshotterTest, ParentlessActiveIsReadWriteBindOfA0755Dir) {
  auto m = s_->Prepare("a", "", {{"containerd.io/gc.root", "x"}});
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 1u);
  EXPECT_EQ((*m)[0].type, "bind");
  EXPECT_THAT((*m)[0].source, StartsWith(root_ + "/snapshots/"));
  EXPECT_THAT((*m)[0].options, ElementsAre("rw", "rbind"));
  struct stat st;
  ASSERT_EQ(stat((*m)[0].source.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  auto info = s_->Stat("a");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->kind, Kind::kActive);
  EXPECT_EQ(info->labels, (Labels{{"containerd.io/gc.root", "x"}}));
  auto again = s_->Mounts("a");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0].source, (*m)[0].source);
}

TEST_F(OverlaySnapshotterTest, ViewsAreReadOnly) {
  auto v = s_->View("v", "", {});
  ASSERT_TRUE(v.ok());
  EXPECT_THAT((*v)[0].options, ElementsAre("ro", "rbind"));
  std::string l1 = Layer("c1", "");
  auto v1 = s_->View("v1", "c1", {});
  ASSERT_TRUE(v1.ok());
  ASSERT_EQ(v1->size(), 1u);  // one parent: a read-only bind of it
  EXPECT_EQ((*v1)[0].type, "bind");
  EXPECT_EQ((*v1)[0].source, l1);
  EXPECT_THAT((*v1)[0].options, ElementsAre("ro", "rbind"));
  std::string l2 = Layer("c2", "c1");
  auto v2 = s_->View("v2", "c2", {});
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ((*v2)[0].type, "overlay");
  EXPECT_THAT((*v2)[0].options, Contains("lowerdir=" + l2 + ":" + l1));
  for (const std::string& o : (*v2)[0].options) EXPECT_THAT(o, Not(HasSubstr("upperdir")));
}

TEST_F(OverlaySnapshotterTest, ActiveOnParentsIsOverlayNearestLowerFirst) {
  std::string l1 = Layer("c1", "");
  std::string l2 = Layer("c2", "c1");
  auto m = s_->Prepare("a", "c2", {});
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->size(), 1u);
  EXPECT_EQ((*m)[0].type, "overlay");
  EXPECT_EQ((*m)[0].source, "overlay");
  const auto& o = (*m)[0].options;
  EXPECT_THAT(o, Contains(StartsWith("workdir=" + root_ + "/snapshots/")));
  EXPECT_THAT(o, Contains(StartsWith("upperdir=" + root_ + "/snapshots/")));
  EXPECT_EQ(o.back(), "lowerdir=" + l2 + ":" + l1);
  auto info = s_->Stat("a");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->parent, "c2");
}

TEST_F(OverlaySnapshotterTest, UsageIsMeasuredLiveThenRecordedAtCommit) {
  auto m = s_->Prepare("a", "", {});
  ASSERT_TRUE(m.ok());
  auto empty = s_->GetUsage("a");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->inodes, 1);  // the directory itself
  std::ofstream(UpperOf(*m) + "/data") << std::string(64 * 1024, 'x');
  auto live = s_->GetUsage("a");
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(live->inodes, 2);
  EXPECT_GE(live->size, 64 * 1024);
  ASSERT_TRUE(s_->Commit("c", "a", {{"k", "v"}}).ok());
  auto committed = s_->GetUsage("c");
  ASSERT_TRUE(committed.ok());
  EXPECT_EQ(committed->size, live->size);
  EXPECT_EQ(committed->inodes, 2);
  auto info = s_->Stat("c");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->kind, Kind::kCommitted);
  EXPECT_EQ(info->labels, (Labels{{"k", "v"}}));
  EXPECT_TRUE(absl::IsNotFound(s_->Stat("a").status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(s_->Mounts("c").status()));
}

TEST_F(OverlaySnapshotterTest, RemoveRefusesParentsAndDeletesTheDirectory) {
  std::string l1 = Layer("c1", "", "hello");
  ASSERT_TRUE(s_->Prepare("a", "c1", {}).ok());
  absl::Status busy = s_->Remove("c1");
  EXPECT_TRUE(absl::IsFailedPrecondition(busy)) << busy;
  EXPECT_THAT(std::string(busy.message()), HasSubstr("remove"));
  EXPECT_TRUE(std::filesystem::exists(l1 + "/file-c1"));
  ASSERT_TRUE(s_->Remove("a").ok());
  ASSERT_TRUE(s_->Remove("c1").ok());
  EXPECT_FALSE(std::filesystem::exists(l1));
  EXPECT_TRUE(absl::IsNotFound(s_->Remove("c1")));
}

TEST_F(OverlaySnapshotterTest, CleanupRemovesOnlyOrphanedDirectories) {
  std::string l1 = Layer("c1", "");
  std::filesystem::create_directories(root_ + "/snapshots/9999/fs/deep");
  std::filesystem::create_directories(root_ + "/snapshots/new-abc123/fs");
  ASSERT_TRUE(s_->Cleanup().ok());
  EXPECT_FALSE(std::filesystem::exists(root_ + "/snapshots/9999"));
  EXPECT_FALSE(std::filesystem::exists(root_ + "/snapshots/new-abc123"));
  EXPECT_TRUE(std::filesystem::exists(l1));
}

TEST_F(OverlaySnapshotterTest, ErrorsCarryContainerdCodes) {
  Layer("c1", "");
  ASSERT_TRUE(s_->Prepare("a", "c1", {}).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(s_->Prepare("a", "c1", {}).status()));
  EXPECT_TRUE(absl::IsAlreadyExists(s_->View("a", "c1", {}).status()));
  EXPECT_TRUE(absl::IsNotFound(s_->Prepare("b", "missing", {}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(s_->Prepare("b", "a", {}).status()));
  EXPECT_TRUE(absl::IsNotFound(s_->Stat("missing").status()));
  EXPECT_TRUE(absl::IsNotFound(s_->Mounts("missing").status()));
  EXPECT_TRUE(absl::IsNotFound(s_->GetUsage("missing").status()));
  EXPECT_TRUE(absl::IsNotFound(s_->Commit("x", "missing", {})));
  EXPECT_TRUE(absl::IsAlreadyExists(s_->Commit("c1", "a", {})));
  EXPECT_TRUE(absl::IsInvalidArgument(s_->Update(Info{.name = "a"}, {"parent"}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(s_->List({"kind=="}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      s_->Prepare("big", "", {{"k", std::string(5000, 'v')}}).status()));
  // A failed Prepare leaves no directory behind.
  ASSERT_TRUE(s_->Cleanup().ok());
  size_t dirs = 0;
  for (auto& e : std::filesystem::directory_iterator(root_ + "/snapshots")) dirs += e.is_directory();
  EXPECT_EQ(dirs, 2u);  // c1 and a
}

TEST_F(OverlaySnapshotterTest, ChildLayerTakesTheParentsRootOwner) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  std::string l1 = Layer("c1", "");
  ASSERT_EQ(chown(l1.c_str(), 1234, 5678), 0);
  auto m = s_->Prepare("a", "c1", {});
  ASSERT_TRUE(m.ok());
  struct stat st;
  ASSERT_EQ(stat(UpperOf(*m).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
}

TEST_F(OverlaySnapshotterTest, OneSnapshotterPerRoot) {
  auto second = OverlaySnapshotter::Open(root_, NewUnavailableRemoteLayerMounter());
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  s_.reset();
  auto third = OverlaySnapshotter::Open(root_, NewUnavailableRemoteLayerMounter());
  EXPECT_TRUE(third.ok()) << third.status();
}

// --- the remote-snapshot protocol --------------------------------------------------------

Labels RemoteLabels(const std::string& target) {
  return {{kTargetSnapshotLabel, target},
          {kCriLayerDigestLabel, "sha256:" + std::string(64, 'a')},
          {"containerd.io/snapshot/cri.image-ref", "registry.local/python:3"}};
}

TEST_F(OverlaySnapshotterTest, RemoteLayerIsCommittedUnderTheRefAndAnswersAlreadyExists) {
  {
    absl::MutexLock l(&fake_->mu);
    fake_->result = absl::OkStatus();
  }
  auto m = s_->Prepare("extract-1", "", RemoteLabels("chain-1"));
  ASSERT_TRUE(absl::IsAlreadyExists(m.status())) << m.status();
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("chain-1"));

  std::string mounted_dir;
  {
    absl::MutexLock l(&fake_->mu);
    ASSERT_EQ(fake_->mounted.size(), 1u);
    EXPECT_EQ(fake_->mounted[0].first, "sha256:" + std::string(64, 'a'));
    mounted_dir = fake_->mounted[0].second;
    EXPECT_EQ(fake_->last_labels.at("containerd.io/snapshot/cri.image-ref"),
              "registry.local/python:3");
  }
  EXPECT_THAT(mounted_dir, StartsWith(root_ + "/snapshots/"));
  EXPECT_TRUE(absl::IsNotFound(s_->Stat("extract-1").status()));
  auto info = s_->Stat("chain-1");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->kind, Kind::kCommitted);
  EXPECT_EQ(info->labels.at(kRemoteLabel), kRemoteLabelValue);
  EXPECT_EQ(info->labels.at(kTargetSnapshotLabel), "chain-1");

  // The container's root stacks on the remote mount.
  auto c = s_->Prepare("container", "chain-1", {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)[0].options.back(), "lowerdir=" + mounted_dir);

  // The next layer on top goes remote too, with the chain as parent.
  auto m2 = s_->Prepare("extract-2", "chain-1", RemoteLabels("chain-2"));
  EXPECT_TRUE(absl::IsAlreadyExists(m2.status())) << m2.status();
  auto info2 = s_->Stat("chain-2");
  ASSERT_TRUE(info2.ok());
  EXPECT_EQ(info2->parent, "chain-1");
  EXPECT_EQ(s_->remote_counters().prepared, 2u);
  EXPECT_EQ(s_->remote_counters().fallbacks, 0u);
}

TEST_F(OverlaySnapshotterTest, RemoteLayersBelowAreCheckedBeforeUse) {
  {
    absl::MutexLock l(&fake_->mu);
    fake_->result = absl::OkStatus();
  }
  ASSERT_TRUE(absl::IsAlreadyExists(s_->Prepare("x1", "", RemoteLabels("chain-1")).status()));
  std::string layer_dir;
  {
    absl::MutexLock l(&fake_->mu);
    layer_dir = fake_->mounted.at(0).second;
  }
  ASSERT_TRUE(s_->Prepare("c", "chain-1", {}).ok());
  {
    absl::MutexLock l(&fake_->mu);
    EXPECT_EQ(fake_->checked, (std::vector<std::string>{layer_dir}));
    fake_->check = absl::UnavailableError("registry unreachable");
  }
  EXPECT_TRUE(absl::IsUnavailable(s_->Mounts("c").status()));
  EXPECT_TRUE(absl::IsUnavailable(s_->View("v", "chain-1", {}).status()));
  EXPECT_TRUE(absl::IsNotFound(s_->Stat("v").status()));  // nothing half-made
  {
    absl::MutexLock l(&fake_->mu);
    fake_->check = absl::OkStatus();
  }
  EXPECT_TRUE(s_->Mounts("c").ok());
  // Local layers are never checked.
  Layer("local", "");
  ASSERT_TRUE(s_->Prepare("d", "local", {}).ok());
  absl::MutexLock l(&fake_->mu);
  EXPECT_EQ(fake_->checked.size(), 4u);  // Prepare c, Mounts c twice, View v
}

TEST_F(OverlaySnapshotterTest, UnavailableRemoteLayerFallsBackToAnOrdinarySnapshot) {
  auto m = s_->Prepare("extract-1", "", RemoteLabels("chain-1"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)[0].type, "bind");
  EXPECT_TRUE(std::filesystem::is_empty(UpperOf(*m)));
  auto info = s_->Stat("extract-1");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->kind, Kind::kActive);
  EXPECT_TRUE(absl::IsNotFound(s_->Stat("chain-1").status()));
  // containerd then unpacks and commits it itself.
  EXPECT_TRUE(s_->Commit("chain-1", "extract-1", {}).ok());
  EXPECT_EQ(s_->remote_counters().fallbacks, 1u);
  EXPECT_EQ(s_->remote_counters().prepared, 0u);
}

TEST_F(OverlaySnapshotterTest, DirectoryLeftByACrashBeforeCommitIsReplaced) {
  // A crash between renaming the new directory to its id and committing the metadata leaves
  // snapshots/<id> behind with an id the database never recorded; it is handed out again.
  std::filesystem::create_directories(root_ + "/snapshots/1/fs/stale");
  auto m = s_->Prepare("a", "", {});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)[0].source, root_ + "/snapshots/1/fs");
  EXPECT_TRUE(std::filesystem::is_empty((*m)[0].source));
}

TEST_F(OverlaySnapshotterTest, NoRemoteAttemptWithoutRefAndDigest) {
  {
    absl::MutexLock l(&fake_->mu);
    fake_->result = absl::OkStatus();
  }
  ASSERT_TRUE(s_->Prepare("a", "", {{kTargetSnapshotLabel, "chain-1"}}).ok());
  ASSERT_TRUE(s_->Prepare("b", "", {{kCriLayerDigestLabel, "sha256:abc"}}).ok());
  absl::MutexLock l(&fake_->mu);
  EXPECT_TRUE(fake_->mounted.empty());
}

}  // namespace
}  // namespace lazysnap

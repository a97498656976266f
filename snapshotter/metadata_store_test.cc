#include "snapshotter/metadata_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

namespace lazysnap {
namespace {

class MetadataStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/metadata_store_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    Reopen();
  }
  void TearDown() override {
    ms_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    ms_.reset();
    auto ms = MetadataStore::Open(dir_ + "/metadata.db");
    ASSERT_TRUE(ms.ok()) << ms.status();
    ms_ = std::move(*ms);
  }
  std::unique_ptr<MetadataStore::Transaction> Write() {
    auto t = ms_->Begin(true);
    EXPECT_TRUE(t.ok()) << t.status();
    return std::move(*t);
  }
  std::unique_ptr<MetadataStore::Transaction> Read() {
    auto t = ms_->Begin(false);
    EXPECT_TRUE(t.ok()) << t.status();
    return std::move(*t);
  }
  // Prepares `key` on `parent` and commits it as `name`, in one transaction.
  std::string MakeCommitted(const std::string& name, const std::string& parent) {
    auto t = Write();
    auto rec = t->CreateSnapshot(Kind::kActive, name + "-active", parent, {});
    EXPECT_TRUE(rec.ok()) << rec.status();
    auto id = t->CommitActive(name + "-active", name, Usage{10, 2}, {{"l", name}});
    EXPECT_TRUE(id.ok()) << id.status();
    EXPECT_TRUE(t->Commit().ok());
    return rec->id;
  }

  std::string dir_;
  std::unique_ptr<MetadataStore> ms_;
};

TEST_F(MetadataStoreTest, CreateAndStatSurviveReopen) {
  {
    auto t = Write();
    auto rec = t->CreateSnapshot(Kind::kActive, "a", "", {{"k", "v"}});
    ASSERT_TRUE(rec.ok()) << rec.status();
    EXPECT_EQ(rec->kind, Kind::kActive);
    EXPECT_TRUE(rec->parent_ids.empty());
    ASSERT_TRUE(t->Commit().ok());
  }
  Reopen();
  auto e = Read()->GetInfo("a");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->info.name, "a");
  EXPECT_EQ(e->info.kind, Kind::kActive);
  EXPECT_EQ(e->info.parent, "");
  EXPECT_EQ(e->info.labels, (Labels{{"k", "v"}}));
  EXPECT_EQ(e->info.created, e->info.updated);
  EXPECT_LE(absl::Now() - e->info.created, absl::Minutes(1));
}

TEST_F(MetadataStoreTest, UncommittedTransactionLeavesNothing) {
  {
    auto t = Write();
    ASSERT_TRUE(t->CreateSnapshot(Kind::kActive, "a", "", {{"k", "v"}}).ok());
    // destroyed without Commit: rolled back
  }
  EXPECT_TRUE(absl::IsNotFound(Read()->GetInfo("a").status()));
  Reopen();
  EXPECT_TRUE(absl::IsNotFound(Read()->GetInfo("a").status()));
  auto ids = Read()->Ids();
  ASSERT_TRUE(ids.ok());
  EXPECT_TRUE(ids->empty());
}

TEST_F(MetadataStoreTest, ProcessDyingMidTransactionLeavesNothing) {
  MakeCommitted("kept", "");
  ms_.reset();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto ms = MetadataStore::Open(dir_ + "/metadata.db");
    if (!ms.ok()) _exit(2);
    auto t = (*ms)->Begin(true);
    if (!t.ok()) _exit(3);
    if (!(*t)->CreateSnapshot(Kind::kActive, "half", "kept", {{"k", "v"}}).ok()) _exit(4);
    _exit(0);  // no commit, no rollback, no close: as if killed
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  Reopen();
  auto t = Read();
  EXPECT_TRUE(absl::IsNotFound(t->GetInfo("half").status()));
  EXPECT_TRUE(t->GetInfo("kept").ok());
  auto ids = t->Ids();
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->size(), 1u);
}

TEST_F(MetadataStoreTest, ReadOnlyTransactionCannotWrite) {
  auto t = Read();
  EXPECT_TRUE(absl::IsFailedPrecondition(t->CreateSnapshot(Kind::kActive, "a", "", {}).status()));
}

TEST_F(MetadataStoreTest, ParentChainsNearestFirst) {
  std::string id1 = MakeCommitted("c1", "");
  std::string id2 = MakeCommitted("c2", "c1");
  std::string id3 = MakeCommitted("c3", "c2");
  auto t = Write();
  auto rec = t->CreateSnapshot(Kind::kView, "v", "c3", {});
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->parent_ids, (std::vector<std::string>{id3, id2, id1}));
  ASSERT_TRUE(t->Commit().ok());
  t.reset();  // a transaction holds the store until it is destroyed
  auto snap = Read()->GetSnapshot("v");
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_EQ(snap->kind, Kind::kView);
  EXPECT_EQ(snap->parent_ids, (std::vector<std::string>{id3, id2, id1}));
  auto info = Read()->GetInfo("c3");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->info.parent, "c2");
  EXPECT_EQ(info->info.kind, Kind::kCommitted);
  EXPECT_EQ(info->usage.size, 10);
  EXPECT_EQ(info->usage.inodes, 2);
}

TEST_F(MetadataStoreTest, CreateErrors) {
  MakeCommitted("c1", "");
  auto t = Write();
  ASSERT_TRUE(t->CreateSnapshot(Kind::kActive, "a", "c1", {}).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(t->CreateSnapshot(Kind::kView, "a", "", {}).status()));
  EXPECT_TRUE(absl::IsAlreadyExists(t->CreateSnapshot(Kind::kView, "c1", "", {}).status()));
  EXPECT_TRUE(absl::IsNotFound(t->CreateSnapshot(Kind::kActive, "b", "nope", {}).status()));
  // Parent must be committed.
  EXPECT_TRUE(absl::IsInvalidArgument(t->CreateSnapshot(Kind::kActive, "b", "a", {}).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(t->CreateSnapshot(Kind::kCommitted, "b", "", {}).status()));
}

TEST_F(MetadataStoreTest, CommitKeepsIdRenamesAndReplacesLabels) {
  auto t = Write();
  auto rec = t->CreateSnapshot(Kind::kActive, "a", "", {{"old", "1"}});
  ASSERT_TRUE(rec.ok());
  auto id = t->CommitActive("a", "c", Usage{4096, 1}, {{"new", "2"}});
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, rec->id);
  EXPECT_TRUE(absl::IsNotFound(t->GetInfo("a").status()));
  auto e = t->GetInfo("c");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->id, rec->id);
  EXPECT_EQ(e->info.labels, (Labels{{"new", "2"}}));
  EXPECT_EQ(e->info.created, e->info.updated);
  // Committed snapshots have no mounts of their own.
  EXPECT_TRUE(absl::IsFailedPrecondition(t->GetSnapshot("c").status()));
}

TEST_F(MetadataStoreTest, CommitErrors) {
  MakeCommitted("c1", "");
  auto t = Write();
  ASSERT_TRUE(t->CreateSnapshot(Kind::kActive, "a", "", {}).ok());
  ASSERT_TRUE(t->CreateSnapshot(Kind::kView, "v", "", {}).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(t->CommitActive("a", "c1", {}, {}).status()));
  EXPECT_TRUE(absl::IsNotFound(t->CommitActive("missing", "x", {}, {}).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(t->CommitActive("v", "x", {}, {}).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(t->CommitActive("c1", "x", {}, {}).status()));
}

TEST_F(MetadataStoreTest, ChildrenFollowTheirParentThroughCommit) {
  MakeCommitted("base", "");
  auto t = Write();
  ASSERT_TRUE(t->CreateSnapshot(Kind::kActive, "top-active", "base", {}).ok());
  ASSERT_TRUE(t->CommitActive("top-active", "top", {}, {}).ok());
  ASSERT_TRUE(t->CreateSnapshot(Kind::kActive, "child", "top", {}).ok());
  auto e = t->GetInfo("child");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->info.parent, "top");
}

TEST_F(MetadataStoreTest, RemoveRefusesParentsAndNeverReusesIds) {
  std::string base_id = MakeCommitted("base", "");
  std::string mid_id = MakeCommitted("mid", "base");
  auto t = Write();
  auto removed = t->Remove("base");
  EXPECT_TRUE(absl::IsFailedPrecondition(removed.status())) << removed.status();
  EXPECT_NE(removed.status().message().find("remove"), std::string::npos);
  EXPECT_TRUE(absl::IsNotFound(t->Remove("nope").status()));
  auto r1 = t->Remove("mid");
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->id, mid_id);
  EXPECT_EQ(r1->kind, Kind::kCommitted);
  ASSERT_TRUE(t->Remove("base").ok());
  ASSERT_TRUE(t->Commit().ok());
  t.reset();
  auto ids = Read()->Ids();
  ASSERT_TRUE(ids.ok());
  EXPECT_TRUE(ids->empty());
  // Directories are named by id: a new snapshot must not take a removed one's id.
  auto t2 = Write();
  auto rec = t2->CreateSnapshot(Kind::kActive, "again", "", {});
  ASSERT_TRUE(rec.ok());
  EXPECT_NE(rec->id, base_id);
  EXPECT_NE(rec->id, mid_id);
}

TEST_F(MetadataStoreTest, UpdateLabelsByFieldPath) {
  auto t = Write();
  ASSERT_TRUE(t->CreateSnapshot(Kind::kActive, "a", "", {{"l1", "v1"}, {"l2", "v2"}}).ok());
  auto before = t->GetInfo("a");
  ASSERT_TRUE(before.ok());
  Info in;
  in.name = "a";
  in.parent = "ignored";
  in.kind = Kind::kCommitted;  // immutable: ignored
  in.labels = {{"l1", "updated"}, {"l3", "v3"}};
  auto u = t->UpdateInfo(in, {"labels.l1", "labels.l2"});
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->labels, (Labels{{"l1", "updated"}}));  // l2 absent from `in`: removed
  EXPECT_EQ(u->parent, "");
  EXPECT_EQ(u->kind, Kind::kActive);
  EXPECT_EQ(u->created, before->info.created);
  EXPECT_GE(u->updated, before->info.updated);

  u = t->UpdateInfo(in, {});  // no paths: all mutable fields, i.e. the labels
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->labels, in.labels);
  u = t->UpdateInfo(Info{.name = "a", .labels = {{"x", "y"}}}, {"labels"});
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->labels, (Labels{{"x", "y"}}));
  EXPECT_TRUE(absl::IsInvalidArgument(t->UpdateInfo(in, {"parent"}).status()));
  EXPECT_TRUE(absl::IsNotFound(t->UpdateInfo(Info{.name = "zz"}, {}).status()));
  auto stored = t->GetInfo("a");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->info.labels, (Labels{{"x", "y"}}));
}

TEST_F(MetadataStoreTest, ListWithFilters) {
  MakeCommitted("p", "");
  auto t = Write();
  ASSERT_TRUE(t->CreateSnapshot(Kind::kActive, "a", "p", {{"l", "2"}}).ok());
  ASSERT_TRUE(t->CreateSnapshot(Kind::kView, "v", "p", {}).ok());
  ASSERT_TRUE(t->CreateSnapshot(Kind::kActive, "a-np", "", {}).ok());
  auto names = [&](const std::vector<std::string>& filters) {
    auto f = Filter::ParseAny(filters);
    EXPECT_TRUE(f.ok()) << f.status();
    auto infos = t->List(*f);
    EXPECT_TRUE(infos.ok()) << infos.status();
    std::vector<std::string> out;
    for (const Info& i : *infos) out.push_back(i.name);
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(names({}), (V{"a", "a-np", "p", "v"}));
  EXPECT_EQ(names({"parent==p"}), (V{"a", "v"}));
  EXPECT_EQ(names({"kind==active"}), (V{"a", "a-np"}));
  EXPECT_EQ(names({"kind==committed"}), (V{"p"}));
  EXPECT_EQ(names({"kind==view|name==p"}), (V{"p", "v"}));
  EXPECT_EQ(names({"labels.l==2"}), (V{"a"}));
  EXPECT_EQ(names({"labels.l"}), (V{"a", "p"}));  // MakeCommitted labels l=<name>
  EXPECT_EQ(names({"labels.l==2", "name==a-np"}), (V{"a", "a-np"}));
  EXPECT_EQ(names({"parent!=\"\""}), (V{"a", "v"}));
  EXPECT_EQ(names({"name~=^a"}), (V{"a", "a-np"}));
}

TEST_F(MetadataStoreTest, EndedTransactionRefusesWork) {
  auto t = Write();
  ASSERT_TRUE(t->Commit().ok());
  EXPECT_FALSE(t->Commit().ok());
  EXPECT_FALSE(t->CreateSnapshot(Kind::kActive, "a", "", {}).ok());
  t.reset();
  EXPECT_TRUE(absl::IsNotFound(Read()->GetInfo("a").status()));
}

}  // namespace
}  // namespace lazysnap

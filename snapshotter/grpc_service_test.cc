// The gRPC boundary: a real server on a unix socket and the generated client stub, as
// containerd's proxy plugin talks to lazysnapd. Checks message translation, List streaming
// and that errors arrive with the codes containerd's errdefs.FromGRPC maps back.
#include "snapshotter/grpc_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <set>

#include "snapshotter/grpc_status.h"

namespace lazysnap {
namespace {

TEST(GrpcStatusTest, KeepsCodeAndMessage) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  struct Case {
    absl::Status in;
    grpc::StatusCode out;
  } cases[] = {
      {absl::NotFoundError("nf"), grpc::StatusCode::NOT_FOUND},
      {absl::AlreadyExistsError("ae"), grpc::StatusCode::ALREADY_EXISTS},
      {absl::FailedPreconditionError("fp"), grpc::StatusCode::FAILED_PRECONDITION},
      {absl::InvalidArgumentError("ia"), grpc::StatusCode::INVALID_ARGUMENT},
      {absl::UnavailableError("un"), grpc::StatusCode::UNAVAILABLE},
      {absl::InternalError("in"), grpc::StatusCode::INTERNAL},
  };
  for (const Case& c : cases) {
    grpc::Status g = ToGrpcStatus(c.in);
    EXPECT_EQ(g.error_code(), c.out) << c.in;
    EXPECT_EQ(g.error_message(), std::string(c.in.message()));
  }
}

class SnapshotsServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/grpc_service_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    auto s = OverlaySnapshotter::Open(base_ + "/state", NewUnavailableRemoteLayerMounter());
    ASSERT_TRUE(s.ok()) << s.status();
    snapshotter_ = std::move(*s);
    service_ = std::make_unique<SnapshotsService>(snapshotter_.get());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + base_ + "/s.sock", grpc::InsecureServerCredentials());
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = snapshots_v1::Snapshots::NewStub(
        grpc::CreateChannel("unix:" + base_ + "/s.sock", grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    server_->Shutdown();
    server_.reset();
    std::filesystem::remove_all(base_);
  }
  grpc::Status Prepare(const std::string& key, const std::string& parent,
                       snapshots_v1::PrepareSnapshotResponse* resp = nullptr) {
    snapshots_v1::PrepareSnapshotRequest req;
    req.set_snapshotter("lazysnap");
    req.set_key(key);
    req.set_parent(parent);
    (*req.mutable_labels())["containerd.io/gc.root"] = "now";
    snapshots_v1::PrepareSnapshotResponse ignored;
    grpc::ClientContext ctx;
    return stub_->Prepare(&ctx, req, resp ? resp : &ignored);
  }
  grpc::Status Commit(const std::string& name, const std::string& key) {
    snapshots_v1::CommitSnapshotRequest req;
    req.set_name(name);
    req.set_key(key);
    google::protobuf::Empty e;
    grpc::ClientContext ctx;
    return stub_->Commit(&ctx, req, &e);
  }
  grpc::Status Stat(const std::string& key, snapshots_v1::StatSnapshotResponse* resp) {
    snapshots_v1::StatSnapshotRequest req;
    req.set_key(key);
    grpc::ClientContext ctx;
    return stub_->Stat(&ctx, req, resp);
  }
  grpc::Status Remove(const std::string& key) {
    snapshots_v1::RemoveSnapshotRequest req;
    req.set_key(key);
    google::protobuf::Empty e;
    grpc::ClientContext ctx;
    return stub_->Remove(&ctx, req, &e);
  }
  // Names listed for `filters`, and the status of the stream.
  std::pair<std::set<std::string>, grpc::Status> List(std::vector<std::string> filters,
                                                      int* messages = nullptr) {
    snapshots_v1::ListSnapshotsRequest req;
    for (auto& f : filters) req.add_filters(f);
    grpc::ClientContext ctx;
    auto reader = stub_->List(&ctx, req);
    snapshots_v1::ListSnapshotsResponse resp;
    std::set<std::string> names;
    int n = 0;
    while (reader->Read(&resp)) {
      ++n;
      for (const auto& info : resp.info()) names.insert(info.name());
    }
    if (messages) *messages = n;
    return {names, reader->Finish()};
  }

  std::string base_;
  std::unique_ptr<OverlaySnapshotter> snapshotter_;
  std::unique_ptr<SnapshotsService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<snapshots_v1::Snapshots::Stub> stub_;
};

TEST_F(SnapshotsServiceTest, PrepareCommitStat) {
  snapshots_v1::PrepareSnapshotResponse prep;
  ASSERT_TRUE(Prepare("a", "", &prep).ok());
  ASSERT_EQ(prep.mounts_size(), 1);
  EXPECT_EQ(prep.mounts(0).type(), "bind");
  EXPECT_EQ(prep.mounts(0).options(0), "rw");
  ASSERT_TRUE(Commit("c", "a").ok());
  ASSERT_TRUE(Prepare("b", "c", &prep).ok());
  EXPECT_EQ(prep.mounts(0).type(), "overlay");

  snapshots_v1::StatSnapshotResponse st;
  ASSERT_TRUE(Stat("b", &st).ok());
  EXPECT_EQ(st.info().name(), "b");
  EXPECT_EQ(st.info().parent(), "c");
  EXPECT_EQ(st.info().kind(), snapshots_v1::ACTIVE);
  EXPECT_EQ(st.info().labels().at("containerd.io/gc.root"), "now");
  EXPECT_GT(st.info().created_at().seconds(), 1700000000);
  EXPECT_EQ(st.info().created_at().seconds(), st.info().updated_at().seconds());
  EXPECT_EQ(st.info().created_at().nanos(), st.info().updated_at().nanos());
  ASSERT_TRUE(Stat("c", &st).ok());
  EXPECT_EQ(st.info().kind(), snapshots_v1::COMMITTED);

  snapshots_v1::MountsRequest mreq;
  mreq.set_key("b");
  snapshots_v1::MountsResponse mresp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Mounts(&ctx, mreq, &mresp).ok());
  EXPECT_EQ(mresp.mounts(0).type(), "overlay");
}

TEST_F(SnapshotsServiceTest, ErrorsArriveWithContainerdCodes) {
  snapshots_v1::StatSnapshotResponse st;
  EXPECT_EQ(Stat("missing", &st).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Prepare("a", "").ok());
  EXPECT_EQ(Prepare("a", "").error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Prepare("b", "a").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(Commit("c", "a").ok());
  ASSERT_TRUE(Prepare("child", "c").ok());
  grpc::Status busy = Remove("c");
  EXPECT_EQ(busy.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(busy.error_message().find("remove"), std::string::npos);
  EXPECT_EQ(List({"kind=="}).second.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  snapshots_v1::UpdateSnapshotRequest up;
  up.mutable_info()->set_name("c");
  up.mutable_update_mask()->add_paths("parent");
  snapshots_v1::UpdateSnapshotResponse upr;
  grpc::ClientContext ctx;
  EXPECT_EQ(stub_->Update(&ctx, up, &upr).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SnapshotsServiceTest, UpdateWithFieldMask) {
  ASSERT_TRUE(Prepare("a", "").ok());
  snapshots_v1::UpdateSnapshotRequest up;
  up.mutable_info()->set_name("a");
  (*up.mutable_info()->mutable_labels())["new"] = "1";
  up.mutable_update_mask()->add_paths("labels.new");
  snapshots_v1::UpdateSnapshotResponse upr;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Update(&ctx, up, &upr).ok());
  EXPECT_EQ(upr.info().labels().size(), 2u);
  EXPECT_EQ(upr.info().labels().at("new"), "1");
  EXPECT_EQ(upr.info().kind(), snapshots_v1::ACTIVE);
}

TEST_F(SnapshotsServiceTest, ListStreamsInBatchesAndFilters) {
  for (int i = 0; i < 150; ++i) ASSERT_TRUE(Prepare("a" + std::to_string(i), "").ok());
  ASSERT_TRUE(Commit("c", "a0").ok());
  int messages = 0;
  auto [all, status] = List({}, &messages);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(all.size(), 150u);
  EXPECT_EQ(messages, 2);
  auto [committed, s2] = List({"kind==committed"});
  ASSERT_TRUE(s2.ok());
  EXPECT_EQ(committed, (std::set<std::string>{"c"}));
  auto [two, s3] = List({"name==a1", "name==a2|name==c"});
  ASSERT_TRUE(s3.ok());
  EXPECT_EQ(two, (std::set<std::string>{"a1", "a2", "c"}));
  auto [none, s4] = List({"labels.nope"});
  ASSERT_TRUE(s4.ok());
  EXPECT_TRUE(none.empty());
}

TEST_F(SnapshotsServiceTest, UsageAndCleanup) {
  ASSERT_TRUE(Prepare("a", "").ok());
  snapshots_v1::UsageRequest ur;
  ur.set_key("a");
  snapshots_v1::UsageResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Usage(&ctx, ur, &resp).ok());
  EXPECT_EQ(resp.inodes(), 1);
  std::filesystem::create_directories(base_ + "/state/snapshots/777/fs");
  snapshots_v1::CleanupRequest cr;
  google::protobuf::Empty e;
  grpc::ClientContext ctx2;
  ASSERT_TRUE(stub_->Cleanup(&ctx2, cr, &e).ok());
  EXPECT_FALSE(std::filesystem::exists(base_ + "/state/snapshots/777"));
}

}  // namespace
}  // namespace lazysnap

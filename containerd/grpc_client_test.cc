// GrpcContainerd against an in-process gRPC server that answers as containerd's content,
// leases and snapshots services do (the Write stream's request/response protocol, codes).
#include "containerd/grpc_client.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "base/strings.h"
#include "containerd/services/content/v1/content.grpc.pb.h"
#include "containerd/services/leases/v1/leases.grpc.pb.h"
#include "containerd/services/snapshots/v1/snapshots.grpc.pb.h"

namespace lazysnap::containerd {
namespace {

namespace cdcontent = ::containerd::services::content::v1;
namespace cdleases = ::containerd::services::leases::v1;
namespace cdsnap = ::containerd::services::snapshots::v1;

std::string Header(grpc::ServerContext* ctx, const std::string& key) {
  auto it = ctx->client_metadata().find(key);
  return it == ctx->client_metadata().end() ? "" : std::string(it->second.data(), it->second.size());
}

// containerd's contentserver.Write, reduced: STAT first, writes at the current offset, commit
// checks size and digest; AlreadyExists on the first message for a blob it has.
class FakeContent : public cdcontent::Content::Service {
 public:
  absl::Mutex mu;
  std::map<std::string, std::string> blobs ABSL_GUARDED_BY(mu);
  std::map<std::string, std::string> labels ABSL_GUARDED_BY(mu);
  std::string ns, lease ABSL_GUARDED_BY(mu);
  int messages ABSL_GUARDED_BY(mu) = 0;

  grpc::Status Write(grpc::ServerContext* ctx,
                     grpc::ServerReaderWriter<cdcontent::WriteContentResponse,
                                              cdcontent::WriteContentRequest>* stream) override {
    cdcontent::WriteContentRequest req;
    std::string data;
    bool first = true;
    while (stream->Read(&req)) {
      absl::MutexLock l(&mu);
      ++messages;
      ns = Header(ctx, "containerd-namespace");
      lease = Header(ctx, "containerd-lease");
      if (first && blobs.count(req.expected())) {
        return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "blob exists");
      }
      if (first && req.action() != cdcontent::STAT) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no ref");
      }
      first = false;
      cdcontent::WriteContentResponse resp;
      if (req.action() != cdcontent::STAT) {
        if (req.offset() != static_cast<int64_t>(data.size())) {
          return grpc::Status(grpc::StatusCode::OUT_OF_RANGE, "bad offset");
        }
        data += req.data();
      }
      resp.set_offset(static_cast<int64_t>(data.size()));
      if (req.action() == cdcontent::COMMIT) {
        std::string d = Sha256::Of(data).ToString();
        if (d != req.expected() || req.total() != static_cast<int64_t>(data.size())) {
          return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "unexpected commit digest");
        }
        blobs[d] = data;
        for (const auto& [k, v] : req.labels()) labels[k] = v;
        resp.set_digest(d);
      }
      if (!stream->Write(resp)) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "gone");
      if (req.action() == cdcontent::COMMIT) return grpc::Status::OK;
    }
    return grpc::Status::OK;
  }
};

class FakeLeases : public cdleases::Leases::Service {
 public:
  absl::Mutex mu;
  std::map<std::string, std::string> expire ABSL_GUARDED_BY(mu);  // id -> gc.expire
  bool sync_delete ABSL_GUARDED_BY(mu) = false;

  grpc::Status Create(grpc::ServerContext*, const cdleases::CreateRequest* req,
                      cdleases::CreateResponse* resp) override {
    absl::MutexLock l(&mu);
    if (req->id().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no id");
    expire[req->id()] = req->labels().count("containerd.io/gc.expire")
                            ? req->labels().at("containerd.io/gc.expire")
                            : "";
    resp->mutable_lease()->set_id(req->id());
    return grpc::Status::OK;
  }
  grpc::Status Delete(grpc::ServerContext*, const cdleases::DeleteRequest* req,
                      google::protobuf::Empty*) override {
    absl::MutexLock l(&mu);
    sync_delete = req->sync();
    if (!expire.erase(req->id())) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no lease");
    return grpc::Status::OK;
  }
};

class FakeSnapshots : public cdsnap::Snapshots::Service {
 public:
  grpc::Status Prepare(grpc::ServerContext*, const cdsnap::PrepareSnapshotRequest* req,
                       cdsnap::PrepareSnapshotResponse* resp) override {
    if (req->labels().count("containerd.io/snapshot/cri.layer-digest")) {
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "target snapshot exists");
    }
    auto* m = resp->add_mounts();
    m->set_type("bind");
    m->set_source(StrCat("/snap/", req->snapshotter(), "/", req->key()));
    m->add_options("rw");
    return grpc::Status::OK;
  }
  grpc::Status Stat(grpc::ServerContext*, const cdsnap::StatSnapshotRequest* req,
                    cdsnap::StatSnapshotResponse* resp) override {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, StrCat("snapshot ", req->key()));
  }
};

class GrpcContainerdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lz-grpc-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    grpc::ServerBuilder b;
    b.AddListeningPort(StrCat("unix:", dir_, "/c.sock"), grpc::InsecureServerCredentials());
    b.RegisterService(&content_);
    b.RegisterService(&leases_);
    b.RegisterService(&snapshots_);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    GrpcOptions o;
    o.address = dir_ + "/c.sock";
    o.ns = "testns";
    o.call_timeout = absl::Seconds(10);
    o.apply_timeout = absl::Seconds(10);  // a hung stream fails the test, not the run
    o.write_chunk = 1000;
    auto c = GrpcContainerd::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = *std::move(c);
  }
  void TearDown() override {
    client_.reset();
    if (server_) server_->Shutdown();
    std::filesystem::remove_all(dir_);
  }

  std::string dir_;
  FakeContent content_;
  FakeLeases leases_;
  FakeSnapshots snapshots_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<GrpcContainerd> client_;
};

TEST_F(GrpcContainerdTest, WriteContentStreamsChunksAndCommits) {
  std::string data(4500, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  MemoryBlobSource src(data);
  Sha256 d = Sha256::Of(data);
  absl::Status s = client_->WriteContent("ref-1", d, static_cast<int64_t>(data.size()), src,
                                         {{"containerd.io/gc.ref.content.config", "sha256:x"}});
  ASSERT_TRUE(s.ok()) << s;
  absl::MutexLock l(&content_.mu);
  EXPECT_EQ(content_.blobs[d.ToString()], data);
  EXPECT_EQ(content_.messages, 1 + 5);  // STAT, then 4500 bytes in 1000-byte messages
  EXPECT_EQ(content_.labels["containerd.io/gc.ref.content.config"], "sha256:x");
  EXPECT_EQ(content_.ns, "testns");
  EXPECT_EQ(content_.lease, "");
}

TEST_F(GrpcContainerdTest, WriteContentOfAnExistingBlobIsAlreadyExists) {
  MemoryBlobSource src("abc");
  Sha256 d = Sha256::Of("abc");
  ASSERT_TRUE(client_->WriteContent("r", d, 3, src, {}).ok());
  absl::Status s = client_->WriteContent("r", d, 3, src, {});
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
}

TEST_F(GrpcContainerdTest, WriteContentWithTheWrongDigestFails) {
  MemoryBlobSource src("abc");
  absl::Status s = client_->WriteContent("r", Sha256::Of("abd"), 3, src, {});
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("unexpected commit digest"), std::string::npos);
  s = client_->WriteContent("r", Sha256::Of("abc"), 4, src, {});
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
}

TEST_F(GrpcContainerdTest, LeaseIsSentWithCallsAndDeletedSynchronously) {
  auto lease = client_->CreateLease(absl::Hours(1));
  ASSERT_TRUE(lease.ok()) << lease.status();
  {
    absl::MutexLock l(&leases_.mu);
    ASSERT_TRUE(leases_.expire.count(*lease));
    EXPECT_FALSE(leases_.expire[*lease].empty());  // RFC 3339 time
  }
  client_->UseLease(*lease);
  MemoryBlobSource src("abc");
  ASSERT_TRUE(client_->WriteContent("r", Sha256::Of("abc"), 3, src, {}).ok());
  {
    absl::MutexLock l(&content_.mu);
    EXPECT_EQ(content_.lease, *lease);
  }
  client_->UseLease("");
  ASSERT_TRUE(client_->DeleteLease(*lease, /*sync=*/true).ok());
  absl::MutexLock l(&leases_.mu);
  EXPECT_TRUE(leases_.sync_delete);
  EXPECT_TRUE(leases_.expire.empty());
}

TEST_F(GrpcContainerdTest, SnapshotCodesAndMounts) {
  auto m = client_->Prepare("lazysnap", "k1", "", {});
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 1u);
  EXPECT_EQ((*m)[0].type, "bind");
  EXPECT_EQ((*m)[0].source, "/snap/lazysnap/k1");
  EXPECT_EQ((*m)[0].options, std::vector<std::string>{"rw"});
  auto remote = client_->Prepare("lazysnap", "k2", "", {{"containerd.io/snapshot/cri.layer-digest", "d"}});
  EXPECT_TRUE(absl::IsAlreadyExists(remote.status())) << remote.status();
  absl::Status s = client_->Stat("lazysnap", "sha256:c");
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_NE(s.message().find("sha256:c"), std::string::npos);
}

TEST(GrpcContainerdConnectTest, NoSocketIsUnavailable) {
  GrpcOptions o;
  o.address = "/nonexistent/containerd.sock";
  auto c = GrpcContainerd::Connect(o);
  EXPECT_TRUE(absl::IsUnavailable(c.status())) << c.status();
  EXPECT_NE(c.status().message().find("/nonexistent/containerd.sock"), std::string::npos);
}

}  // namespace
}  // namespace lazysnap::containerd

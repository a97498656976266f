// The real lazysnapd binary, started as a child process, spoken to over its unix socket as
// containerd's proxy plugin does:
//  - malformed requests (unknown keys and parents, wrong kinds, bad labels) get the gRPC
//    codes containerd maps back, and the daemon stays up and serving;
//  - registry credentials: a layer on an htpasswd-protected docker-registry is mounted
//    lazily with the credentials from a Docker config or from [registry.auths."HOST"], and
//    without them the Prepare falls back to an ordinary snapshot (logged, counted), the
//    secret never logged.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <grpcpp/grpcpp.h>
#include <sstream>

#include "absl/strings/escaping.h"
#include "base/strings.h"
#include "cmd/lazysnapd/daemon_testenv.h"
#include "registry/client.h"
#include "registry/credentials.h"
#include "registry/curl_transport.h"
#include "registry/testenv.h"

namespace lazysnap::testing {
namespace {

using registry::testing::RegistryConfig;
using registry::testing::RegistryProcess;
using registry::testing::RunCommand;
using registry::testing::TempDir;

class Client {
 public:
  explicit Client(const DaemonProcess& d) : stub_(d.NewStub()) {}
  grpc::Status Prepare(const std::string& key, const std::string& parent,
                       const std::map<std::string, std::string>& labels = {},
                       snapshots_v1::PrepareSnapshotResponse* resp = nullptr) {
    snapshots_v1::PrepareSnapshotRequest req;
    req.set_snapshotter("lazysnap");
    req.set_key(key);
    req.set_parent(parent);
    for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
    snapshots_v1::PrepareSnapshotResponse ignored;
    grpc::ClientContext ctx;
    return stub_->Prepare(&ctx, req, resp ? resp : &ignored);
  }
  grpc::Status View(const std::string& key, const std::string& parent) {
    snapshots_v1::ViewSnapshotRequest req;
    req.set_key(key);
    req.set_parent(parent);
    snapshots_v1::ViewSnapshotResponse resp;
    grpc::ClientContext ctx;
    return stub_->View(&ctx, req, &resp);
  }
  grpc::Status Mounts(const std::string& key, snapshots_v1::MountsResponse* resp = nullptr) {
    snapshots_v1::MountsRequest req;
    req.set_key(key);
    snapshots_v1::MountsResponse ignored;
    grpc::ClientContext ctx;
    return stub_->Mounts(&ctx, req, resp ? resp : &ignored);
  }
  grpc::Status Commit(const std::string& name, const std::string& key) {
    snapshots_v1::CommitSnapshotRequest req;
    req.set_name(name);
    req.set_key(key);
    google::protobuf::Empty e;
    grpc::ClientContext ctx;
    return stub_->Commit(&ctx, req, &e);
  }
  grpc::Status Remove(const std::string& key) {
    snapshots_v1::RemoveSnapshotRequest req;
    req.set_key(key);
    google::protobuf::Empty e;
    grpc::ClientContext ctx;
    return stub_->Remove(&ctx, req, &e);
  }
  grpc::Status Stat(const std::string& key, snapshots_v1::StatSnapshotResponse* resp = nullptr) {
    snapshots_v1::StatSnapshotRequest req;
    req.set_key(key);
    snapshots_v1::StatSnapshotResponse ignored;
    grpc::ClientContext ctx;
    return stub_->Stat(&ctx, req, resp ? resp : &ignored);
  }
  grpc::Status Update(const std::string& name, const std::string& path) {
    snapshots_v1::UpdateSnapshotRequest req;
    req.mutable_info()->set_name(name);
    if (!path.empty()) req.mutable_update_mask()->add_paths(path);
    snapshots_v1::UpdateSnapshotResponse resp;
    grpc::ClientContext ctx;
    return stub_->Update(&ctx, req, &resp);
  }
  grpc::Status Usage(const std::string& key) {
    snapshots_v1::UsageRequest req;
    req.set_key(key);
    snapshots_v1::UsageResponse resp;
    grpc::ClientContext ctx;
    return stub_->Usage(&ctx, req, &resp);
  }

 private:
  std::unique_ptr<snapshots_v1::Snapshots::Stub> stub_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class LazysnapdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = LazysnapdBinary();
    if (access(binary_.c_str(), X_OK) != 0) GTEST_SKIP() << "no lazysnapd binary at " << binary_;
    dir_ = std::move(TempDir::Create()).value();
  }
  std::string Path(std::string_view name) { return StrCat(dir_->path(), "/", name); }
  // A daemon under DIR/NAME with `extra` config (no Docker config unless `extra` names one).
  std::unique_ptr<DaemonProcess> StartDaemon(const std::string& name, const std::string& extra) {
    std::string d = Path(name);
    std::filesystem::create_directories(StrCat(d, "/certs.d"));
    std::string toml = StrCat("log_level = \"debug\"\n", extra);
    if (extra.find("[registry]") == std::string::npos) {
      toml += StrCat("[registry]\nconfig_path = \"", d, "/certs.d\"\ndocker_config = \"\"\n");
    }
    auto daemon = DaemonProcess::Start(binary_, d, toml);
    EXPECT_TRUE(daemon.ok()) << daemon.status();
    return daemon.ok() ? *std::move(daemon) : nullptr;
  }

  std::string binary_;
  std::unique_ptr<TempDir> dir_;
};

constexpr char kDigest[] = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST_F(LazysnapdTest, MalformedRequestsGetContainerdCodesAndTheDaemonStaysUp) {
  auto d = StartDaemon("malformed", "");
  ASSERT_NE(d, nullptr);
  Client c(*d);
  using grpc::StatusCode;
  // Unknown keys.
  EXPECT_EQ(c.Stat("missing").error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(c.Mounts("missing").error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(c.Commit("name", "missing").error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(c.Remove("missing").error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(c.Update("missing", "labels").error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(c.Usage("missing").error_code(), StatusCode::NOT_FOUND);
  // Unknown parents.
  EXPECT_EQ(c.Prepare("a", "missing-parent").error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(c.View("v", "missing-parent").error_code(), StatusCode::NOT_FOUND);

  // Wrong kinds.
  ASSERT_TRUE(c.Prepare("active", "").ok());
  EXPECT_EQ(c.Prepare("active", "").error_code(), StatusCode::ALREADY_EXISTS);
  // An active snapshot is no parent.
  EXPECT_EQ(c.Prepare("child-of-active", "active").error_code(), StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(c.Commit("committed", "active").ok());
  // A committed snapshot is not committed again, has no mounts, and is not removed while it
  // has children.
  EXPECT_EQ(c.Commit("again", "committed").error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(c.Mounts("committed").error_code(), StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(c.View("view", "committed").ok());
  EXPECT_EQ(c.Commit("from-view", "view").error_code(), StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(c.Prepare("active2", "committed").ok());
  EXPECT_EQ(c.Commit("committed", "active2").error_code(), StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(c.Remove("committed").error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(c.Update("committed", "parent").error_code(), StatusCode::INVALID_ARGUMENT);

  // Bad labels: too large is refused; remote-layer labels that make no sense fall back to an
  // ordinary snapshot (containerd then pulls the layer itself).
  EXPECT_EQ(c.Prepare("huge", "", {{"l", std::string(5000, 'x')}}).error_code(),
            StatusCode::INVALID_ARGUMENT);
  snapshots_v1::PrepareSnapshotResponse resp;
  grpc::Status s = c.Prepare("bad-digest", "", RemoteLayerLabels("127.0.0.1:1/x:y", "sha256:zz", "", "chain-1"), &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.mounts_size(), 1);
  s = c.Prepare("bad-ref", "", RemoteLayerLabels("UPPER/Case:x", kDigest, "", "chain-2"));
  EXPECT_TRUE(s.ok()) << s.error_message();
  s = c.Prepare("bad-toc", "", RemoteLayerLabels("127.0.0.1:1/x:y", kDigest, "nope", "chain-3"));
  EXPECT_TRUE(s.ok()) << s.error_message();
  // Nothing listens on port 1: retried until the mount deadline (10 s), then the fallback.
  s = c.Prepare("no-registry", "", RemoteLayerLabels("127.0.0.1:1/x:y", kDigest, "", "chain-4"));
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(c.Stat("chain-4").error_code(), StatusCode::NOT_FOUND);  // not committed remotely
  // The chain ID label naming an existing snapshot with a parent that does not exist.
  EXPECT_EQ(c.Prepare("orphan", "missing-parent",
                      RemoteLayerLabels("127.0.0.1:1/x:y", kDigest, "", "committed"))
                .error_code(),
            StatusCode::NOT_FOUND);

  // Still up and serving.
  EXPECT_TRUE(d->Alive());
  EXPECT_TRUE(c.Prepare("after", "committed").ok());
  EXPECT_TRUE(c.Stat("committed").ok());
  std::string log = d->Log();
  EXPECT_NE(log.find("falling back to an ordinary snapshot"), std::string::npos) << log;
  EXPECT_TRUE(d->Stop().ok());  // SIGTERM: exit 0
}

constexpr char kUser[] = "alice";
constexpr char kPassword[] = "s3cret-Pa55word";

TEST_F(LazysnapdTest, RegistryCredentialsFromDockerConfigAndDaemonConfig) {
  if (getuid() != 0) GTEST_SKIP() << "needs root (FUSE mounts)";
  if (!RegistryProcess::Available()) GTEST_SKIP() << "no docker-registry";
  if (access("/usr/bin/htpasswd", X_OK) != 0) GTEST_SKIP() << "no htpasswd (apache2-utils)";
  ASSERT_TRUE(RunCommand({"htpasswd", "-Bbc", Path("htpasswd"), kUser, kPassword}).ok());
  RegistryConfig cfg;
  cfg.htpasswd_file = Path("htpasswd");
  std::filesystem::create_directories(Path("reg"));
  auto reg = RegistryProcess::Start(cfg, Path("reg"));
  ASSERT_TRUE(reg.ok()) << reg.status();
  const std::string host = (*reg)->host();

  std::map<std::string, std::string> files = {{"etc/hello.txt", "hello, registry with auth\n"},
                                              {"usr/lib/big.bin", std::string(300000, 'b')}};
  auto layer = MakeEstargzLayer(files);
  ASSERT_TRUE(layer.ok()) << layer.status();
  auto transport = std::move(registry::CurlTransport::Create()).value();
  registry::CredentialStore creds;
  creds.Add(host, {kUser, kPassword, ""});
  registry::RegistryClient pusher(transport.get(), &creds, {});
  const std::string ref = StrCat(host, "/private/app:1");
  ASSERT_TRUE(pusher.PushBlob(*registry::Reference::Parse(ref), layer->blob).ok());
  auto labels = RemoteLayerLabels(ref, layer->digest.ToString(), layer->toc_digest.ToString(),
                                  "chain-remote");

  // No credentials: the Prepare falls back to an ordinary snapshot, and says why.
  {
    auto d = StartDaemon("anonymous", "");
    ASSERT_NE(d, nullptr);
    Client c(*d);
    grpc::Status s = c.Prepare("extract-1", "", labels);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(c.Stat("chain-remote").error_code(), grpc::StatusCode::NOT_FOUND);
    std::string log = d->Log();
    EXPECT_NE(log.find(StrCat("layer ", layer->digest.ToString(), " for chain-remote not available "
                              "remotely, falling back")),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("UNAUTHENTICATED"), std::string::npos) << log;
    EXPECT_TRUE(d->Alive());
  }

  // With the Docker config (as `docker login` writes it), or lazysnapd's own config: the
  // layer is mounted lazily (ALREADY_EXISTS: containerd skips the download), its files read
  // through FUSE with chunks fetched under the same credentials.
  std::string docker_config = Path("docker-config.json");
  {
    std::ofstream out(docker_config);
    out << R"({"auths":{")" << host << R"(":{"auth":")"
        << absl::Base64Escape(StrCat(kUser, ":", kPassword)) << R"("}}})";
  }
  const std::string via_docker =
      StrCat("[registry]\ndocker_config = \"", docker_config, "\"\n");
  const std::string via_daemon = StrCat("[registry]\ndocker_config = \"\"\n[registry.auths.\"",
                                        host, "\"]\nusername = \"", kUser, "\"\npassword = \"",
                                        kPassword, "\"\n");
  for (const auto& [name, extra] : {std::pair<std::string, std::string>{"docker", via_docker},
                                    {"daemon", via_daemon}}) {
    SCOPED_TRACE(name);
    auto d = StartDaemon(name, extra);
    ASSERT_NE(d, nullptr);
    Client c(*d);
    grpc::Status s = c.Prepare("extract-1", "", labels);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS) << s.error_message() << d->Log();
    snapshots_v1::StatSnapshotResponse st;
    ASSERT_TRUE(c.Stat("chain-remote", &st).ok());
    EXPECT_EQ(st.info().kind(), snapshots_v1::COMMITTED);
    snapshots_v1::PrepareSnapshotResponse container;
    ASSERT_TRUE(c.Prepare("container", "chain-remote", {}, &container).ok());
    ASSERT_EQ(container.mounts_size(), 1);
    std::string lower;
    for (const std::string& o : container.mounts(0).options()) {
      if (o.rfind("lowerdir=", 0) == 0) lower = o.substr(9);
    }
    ASSERT_FALSE(lower.empty()) << container.mounts(0).DebugString();
    EXPECT_EQ(ReadFile(StrCat(lower, "/etc/hello.txt")), files["etc/hello.txt"]);
    EXPECT_EQ(ReadFile(StrCat(lower, "/usr/lib/big.bin")), files["usr/lib/big.bin"]);
    EXPECT_TRUE(c.Remove("container").ok());
    EXPECT_TRUE(d->Stop().ok());
    std::string log = d->Log();
    EXPECT_NE(log.find("remote snapshot: prepared chain-remote"), std::string::npos) << log;
    EXPECT_EQ(log.find(kPassword), std::string::npos);
    EXPECT_EQ(log.find(absl::Base64Escape(StrCat(kUser, ":", kPassword))), std::string::npos);
  }
}

}  // namespace
}  // namespace lazysnap::testing

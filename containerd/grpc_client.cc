#include "containerd/grpc_client.h"

#include <sys/stat.h>

#include <chrono>
#include <random>

#include <grpcpp/grpcpp.h>

#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "containerd/services/content/v1/content.grpc.pb.h"
#include "containerd/services/diff/v1/diff.grpc.pb.h"
#include "containerd/services/images/v1/images.grpc.pb.h"
#include "containerd/services/leases/v1/leases.grpc.pb.h"
#include "containerd/services/snapshots/v1/snapshots.grpc.pb.h"

namespace cdcontent = ::containerd::services::content::v1;
namespace cddiff = ::containerd::services::diff::v1;
namespace cdimages = ::containerd::services::images::v1;
namespace cdleases = ::containerd::services::leases::v1;
namespace cdsnap = ::containerd::services::snapshots::v1;
namespace cdtypes = ::containerd::types;

namespace lazysnap::containerd {

struct GrpcContainerd::Stubs {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<cdcontent::Content::Stub> content;
  std::unique_ptr<cddiff::Diff::Stub> diff;
  std::unique_ptr<cdimages::Images::Stub> images;
  std::unique_ptr<cdleases::Leases::Stub> leases;
  std::unique_ptr<cdsnap::Snapshots::Stub> snapshots;
};

namespace {

absl::Status FromGrpc(const grpc::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      StrCat(what, ": ", s.error_message()));
}

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d);
}

void ToProto(const Descriptor& d, cdtypes::Descriptor* p) {
  p->set_media_type(d.media_type);
  p->set_digest(d.digest.ToString());
  p->set_size(d.size);
  for (const auto& [k, v] : d.annotations) (*p->mutable_annotations())[k] = v;
}

}  // namespace

GrpcContainerd::GrpcContainerd(GrpcOptions options, std::unique_ptr<Stubs> stubs)
    : options_(std::move(options)), stubs_(std::move(stubs)) {}

GrpcContainerd::~GrpcContainerd() = default;

absl::StatusOr<std::unique_ptr<GrpcContainerd>> GrpcContainerd::Connect(
    const GrpcOptions& options) {
  struct stat st;
  if (::stat(options.address.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
    return absl::UnavailableError(
        StrCat("cannot connect to containerd at ", options.address, " (no socket there)"));
  }
  auto stubs = std::make_unique<Stubs>();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  stubs->channel = grpc::CreateCustomChannel(StrCat("unix:", options.address),
                                             grpc::InsecureChannelCredentials(), args);
  if (!stubs->channel->WaitForConnected(Deadline(std::min(options.call_timeout, absl::Seconds(10))))) {
    return absl::UnavailableError(
        StrCat("cannot connect to containerd at ", options.address, " (is it running?)"));
  }
  stubs->content = cdcontent::Content::NewStub(stubs->channel);
  stubs->diff = cddiff::Diff::NewStub(stubs->channel);
  stubs->images = cdimages::Images::NewStub(stubs->channel);
  stubs->leases = cdleases::Leases::NewStub(stubs->channel);
  stubs->snapshots = cdsnap::Snapshots::NewStub(stubs->channel);
  return std::unique_ptr<GrpcContainerd>(new GrpcContainerd(options, std::move(stubs)));
}

void GrpcContainerd::Setup(grpc::ClientContext& ctx, absl::Duration timeout) const {
  ctx.AddMetadata("containerd-namespace", options_.ns);
  if (!lease_.empty()) ctx.AddMetadata("containerd-lease", lease_);
  ctx.set_deadline(Deadline(timeout));
}

absl::StatusOr<std::string> GrpcContainerd::CreateLease(absl::Duration expire) {
  grpc::ClientContext ctx;
  Setup(ctx, options_.call_timeout);
  cdleases::CreateRequest req;
  std::random_device rd;
  req.set_id(StrCat("lazysnap-pull-", absl::ToUnixNanos(absl::Now()), "-", rd() % 1000000));
  (*req.mutable_labels())["containerd.io/gc.expire"] =
      absl::FormatTime(absl::RFC3339_sec, absl::Now() + expire, absl::UTCTimeZone());
  cdleases::CreateResponse resp;
  RETURN_IF_ERROR(FromGrpc(stubs_->leases->Create(&ctx, req, &resp), "create lease"));
  return resp.lease().id();
}

absl::Status GrpcContainerd::DeleteLease(const std::string& id, bool sync) {
  grpc::ClientContext ctx;
  Setup(ctx, options_.call_timeout);
  cdleases::DeleteRequest req;
  req.set_id(id);
  req.set_sync(sync);
  google::protobuf::Empty resp;
  return FromGrpc(stubs_->leases->Delete(&ctx, req, &resp), StrCat("delete lease ", id));
}

absl::Status GrpcContainerd::WriteContent(const std::string& ref, const Sha256& digest,
                                          int64_t size, BlobSource& src, const Labels& labels) {
  grpc::ClientContext ctx;
  Setup(ctx, options_.apply_timeout);
  std::string what = StrCat("write ", digest.ToString());
  if (static_cast<int64_t>(src.Size()) != size) {
    return absl::InvalidArgumentError(
        StrCat(what, ": source has ", src.Size(), " bytes, descriptor says ", size));
  }
  auto stream = stubs_->content->Write(&ctx);
  cdcontent::WriteContentResponse resp;
  // One request, one response (containerd's remoteWriter does the same).
  auto exchange = [&](const cdcontent::WriteContentRequest& req) -> absl::Status {
    if (stream->Write(req) && stream->Read(&resp)) return absl::OkStatus();
    stream->WritesDone();
    cdcontent::WriteContentResponse ignored;
    while (stream->Read(&ignored)) {
    }
    grpc::Status s = stream->Finish();
    if (s.ok()) return absl::UnavailableError(StrCat(what, ": stream closed"));
    return FromGrpc(s, what);
  };
  cdcontent::WriteContentRequest req;
  req.set_action(cdcontent::STAT);
  req.set_ref(ref);
  req.set_total(size);
  req.set_expected(digest.ToString());
  RETURN_IF_ERROR(exchange(req));  // AlreadyExists when the store has the blob

  std::string buf;
  int64_t offset = 0;  // offset 0 restarts an upload left over under the same ref
  do {
    size_t n = static_cast<size_t>(std::min<int64_t>(options_.write_chunk, size - offset));
    buf.resize(n);
    RETURN_IF_ERROR(src.ReadAt(static_cast<uint64_t>(offset), absl::MakeSpan(buf)));
    bool last = offset + static_cast<int64_t>(n) == size;
    req.Clear();
    req.set_action(last ? cdcontent::COMMIT : cdcontent::WRITE);
    req.set_offset(offset);
    req.set_data(buf);
    if (last) {
      req.set_total(size);
      req.set_expected(digest.ToString());
      for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
    }
    RETURN_IF_ERROR(exchange(req));
    offset += static_cast<int64_t>(n);
    if (resp.offset() != offset) {
      return absl::DataLossError(
          StrCat(what, ": containerd is at offset ", resp.offset(), ", expected ", offset));
    }
  } while (offset < size);
  if (resp.digest() != digest.ToString()) {
    return absl::DataLossError(StrCat(what, ": containerd committed ", resp.digest()));
  }
  // containerd ends the stream after the commit; Finish waits for that end to be read.
  stream->WritesDone();
  cdcontent::WriteContentResponse ignored;
  while (stream->Read(&ignored)) {
  }
  return FromGrpc(stream->Finish(), what);
}

absl::Status GrpcContainerd::SetContentLabels(const Sha256& digest, const Labels& labels) {
  grpc::ClientContext ctx;
  Setup(ctx, options_.call_timeout);
  cdcontent::UpdateRequest req;
  req.mutable_info()->set_digest(digest.ToString());
  for (const auto& [k, v] : labels) {
    (*req.mutable_info()->mutable_labels())[k] = v;
    req.mutable_update_mask()->add_paths(StrCat("labels.", k));
  }
  cdcontent::UpdateResponse resp;
  return FromGrpc(stubs_->content->Update(&ctx, req, &resp),
                  StrCat("label ", digest.ToString()));
}

absl::StatusOr<std::vector<Mount>> GrpcContainerd::Prepare(const std::string& snapshotter,
                                                           const std::string& key,
                                                           const std::string& parent,
                                                           const Labels& labels) {
  grpc::ClientContext ctx;
  Setup(ctx, options_.call_timeout);
  cdsnap::PrepareSnapshotRequest req;
  req.set_snapshotter(snapshotter);
  req.set_key(key);
  req.set_parent(parent);
  for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
  cdsnap::PrepareSnapshotResponse resp;
  RETURN_IF_ERROR(FromGrpc(stubs_->snapshots->Prepare(&ctx, req, &resp), StrCat("prepare ", key)));
  std::vector<Mount> mounts;
  for (const auto& m : resp.mounts()) {
    mounts.push_back(Mount{m.type(), m.source(), m.target(), {m.options().begin(), m.options().end()}});
  }
  return mounts;
}

absl::Status GrpcContainerd::Commit(const std::string& snapshotter, const std::string& name,
                                    const std::string& key, const Labels& labels) {
  grpc::ClientContext ctx;
  Setup(ctx, options_.call_timeout);
  cdsnap::CommitSnapshotRequest req;
  req.set_snapshotter(snapshotter);
  req.set_name(name);
  req.set_key(key);
  for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
  google::protobuf::Empty resp;
  return FromGrpc(stubs_->snapshots->Commit(&ctx, req, &resp), StrCat("commit ", name));
}

absl::Status GrpcContainerd::Stat(const std::string& snapshotter, const std::string& key) {
  grpc::ClientContext ctx;
  Setup(ctx, options_.call_timeout);
  cdsnap::StatSnapshotRequest req;
  req.set_snapshotter(snapshotter);
  req.set_key(key);
  cdsnap::StatSnapshotResponse resp;
  return FromGrpc(stubs_->snapshots->Stat(&ctx, req, &resp), StrCat("stat ", key));
}

absl::Status GrpcContainerd::Remove(const std::string& snapshotter, const std::string& key) {
  grpc::ClientContext ctx;
  Setup(ctx, options_.call_timeout);
  cdsnap::RemoveSnapshotRequest req;
  req.set_snapshotter(snapshotter);
  req.set_key(key);
  google::protobuf::Empty resp;
  return FromGrpc(stubs_->snapshots->Remove(&ctx, req, &resp), StrCat("remove ", key));
}

absl::StatusOr<Sha256> GrpcContainerd::Apply(const Descriptor& layer,
                                             const std::vector<Mount>& mounts) {
  grpc::ClientContext ctx;
  Setup(ctx, options_.apply_timeout);
  cddiff::ApplyRequest req;
  ToProto(layer, req.mutable_diff());
  for (const Mount& m : mounts) {
    cdtypes::Mount* p = req.add_mounts();
    p->set_type(m.type);
    p->set_source(m.source);
    p->set_target(m.target);
    for (const auto& o : m.options) p->add_options(o);
  }
  cddiff::ApplyResponse resp;
  RETURN_IF_ERROR(FromGrpc(stubs_->diff->Apply(&ctx, req, &resp),
                           StrCat("apply ", layer.digest.ToString())));
  auto d = Sha256::Parse(resp.applied().digest());
  if (!d.ok()) {
    return absl::InternalError(StrCat("apply: containerd returned digest \"",
                                      resp.applied().digest(), "\""));
  }
  return *d;
}

absl::Status GrpcContainerd::PutImage(const ImageRecord& image) {
  cdimages::Image img;
  img.set_name(image.name);
  for (const auto& [k, v] : image.labels) (*img.mutable_labels())[k] = v;
  ToProto(image.target, img.mutable_target());
  {
    grpc::ClientContext ctx;
  Setup(ctx, options_.call_timeout);
    cdimages::CreateImageRequest req;
    *req.mutable_image() = img;
    cdimages::CreateImageResponse resp;
    grpc::Status s = stubs_->images->Create(&ctx, req, &resp);
    if (s.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      return FromGrpc(s, StrCat("create image ", image.name));
    }
  }
  grpc::ClientContext ctx;
  Setup(ctx, options_.call_timeout);
  cdimages::UpdateImageRequest req;
  *req.mutable_image() = img;
  cdimages::UpdateImageResponse resp;
  return FromGrpc(stubs_->images->Update(&ctx, req, &resp), StrCat("update image ", image.name));
}

}  // namespace lazysnap::containerd

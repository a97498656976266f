#include "snapshotter/grpc_service.h"

#include <string>
#include <vector>

#include "base/log.h"
#include "snapshotter/grpc_status.h"

namespace lazysnap {
namespace {

namespace types = ::containerd::types;

Labels ToLabels(const google::protobuf::Map<std::string, std::string>& m) {
  return Labels(m.begin(), m.end());
}

void ToProto(absl::Time t, google::protobuf::Timestamp* ts) {
  const int64_t ns = absl::ToUnixNanos(t);
  int64_t secs = ns / 1000000000;
  int64_t nanos = ns % 1000000000;
  if (nanos < 0) {
    nanos += 1000000000;
    --secs;
  }
  ts->set_seconds(secs);
  ts->set_nanos(static_cast<int32_t>(nanos));
}

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

void ToProto(const Info& info, snapshots_v1::Info* out) {
  out->set_name(info.name);
  out->set_parent(info.parent);
  out->set_kind(static_cast<snapshots_v1::Kind>(static_cast<int>(info.kind)));
  ToProto(info.created, out->mutable_created_at());
  ToProto(info.updated, out->mutable_updated_at());
  out->mutable_labels()->insert(info.labels.begin(), info.labels.end());
}

template <typename Field>
void ToProto(const std::vector<Mount>& mounts, Field* out) {
  for (const Mount& m : mounts) {
    types::Mount* pm = out->Add();
    pm->set_type(m.type);
    pm->set_source(m.source);
    for (const std::string& o : m.options) pm->add_options(o);
  }
}

// Logs failures other than the expected answers of the protocol.
grpc::Status Reply(std::string_view method, const std::string& key, const absl::Status& s,
                   absl::Time start = absl::InfinitePast()) {
  if (start != absl::InfinitePast()) {
    LZ_LOG(kDebug, "grpc: ", method, " ", key, " took ",
           absl::ToInt64Microseconds(absl::Now() - start) / 1000.0, " ms: ",
           absl::StatusCodeToString(s.code()));
  }
  if (!s.ok()) {
    const bool expected = absl::IsNotFound(s) || absl::IsAlreadyExists(s) ||
                          absl::IsFailedPrecondition(s) || absl::IsInvalidArgument(s);
    if (expected) {
      LZ_LOG(kDebug, method, " ", key, ": ", s.ToString());
    } else {
      LZ_LOG(kWarning, method, " ", key, ": ", s.ToString());
    }
  }
  return ToGrpcStatus(s);
}

}  // namespace

grpc::Status SnapshotsService::Prepare(grpc::ServerContext*,
                                       const snapshots_v1::PrepareSnapshotRequest* req,
                                       snapshots_v1::PrepareSnapshotResponse* resp) {
  const absl::Time start = absl::Now();
  auto mounts = s_->Prepare(req->key(), req->parent(), ToLabels(req->labels()));
  if (mounts.ok()) ToProto(*mounts, resp->mutable_mounts());
  return Reply("Prepare", req->key(), mounts.status(), start);
}

grpc::Status SnapshotsService::View(grpc::ServerContext*,
                                    const snapshots_v1::ViewSnapshotRequest* req,
                                    snapshots_v1::ViewSnapshotResponse* resp) {
  const absl::Time start = absl::Now();
  auto mounts = s_->View(req->key(), req->parent(), ToLabels(req->labels()));
  if (mounts.ok()) ToProto(*mounts, resp->mutable_mounts());
  return Reply("View", req->key(), mounts.status(), start);
}

grpc::Status SnapshotsService::Mounts(grpc::ServerContext*, const snapshots_v1::MountsRequest* req,
                                      snapshots_v1::MountsResponse* resp) {
  const absl::Time start = absl::Now();
  auto mounts = s_->Mounts(req->key());
  if (mounts.ok()) ToProto(*mounts, resp->mutable_mounts());
  return Reply("Mounts", req->key(), mounts.status(), start);
}

grpc::Status SnapshotsService::Commit(grpc::ServerContext*,
                                      const snapshots_v1::CommitSnapshotRequest* req,
                                      google::protobuf::Empty*) {
  const absl::Time start = absl::Now();
  return Reply("Commit", req->key(), s_->Commit(req->name(), req->key(), ToLabels(req->labels())), start);
}

grpc::Status SnapshotsService::Remove(grpc::ServerContext*,
                                      const snapshots_v1::RemoveSnapshotRequest* req,
                                      google::protobuf::Empty*) {
  const absl::Time start = absl::Now();
  return Reply("Remove", req->key(), s_->Remove(req->key()), start);
}

grpc::Status SnapshotsService::Stat(grpc::ServerContext*,
                                    const snapshots_v1::StatSnapshotRequest* req,
                                    snapshots_v1::StatSnapshotResponse* resp) {
  const absl::Time start = absl::Now();
  auto info = s_->Stat(req->key());
  if (info.ok()) ToProto(*info, resp->mutable_info());
  return Reply("Stat", req->key(), info.status(), start);
}

grpc::Status SnapshotsService::Update(grpc::ServerContext*,
                                      const snapshots_v1::UpdateSnapshotRequest* req,
                                      snapshots_v1::UpdateSnapshotResponse* resp) {
  const absl::Time start = absl::Now();
  Info info;
  info.name = req->info().name();
  info.parent = req->info().parent();
  info.kind = static_cast<Kind>(req->info().kind());
  info.created = FromProto(req->info().created_at());
  info.updated = FromProto(req->info().updated_at());
  info.labels = ToLabels(req->info().labels());
  std::vector<std::string> paths(req->update_mask().paths().begin(),
                                 req->update_mask().paths().end());
  auto updated = s_->Update(info, paths);
  if (updated.ok()) ToProto(*updated, resp->mutable_info());
  return Reply("Update", info.name, updated.status(), start);
}

grpc::Status SnapshotsService::List(grpc::ServerContext*,
                                    const snapshots_v1::ListSnapshotsRequest* req,
                                    grpc::ServerWriter<snapshots_v1::ListSnapshotsResponse>* w) {
  const absl::Time start = absl::Now();
  std::vector<std::string> filters(req->filters().begin(), req->filters().end());
  auto infos = s_->List(filters);
  if (!infos.ok()) return Reply("List", "", infos.status(), start);
  // Batches of 100, as containerd's own service sends them.
  constexpr size_t kBatch = 100;
  snapshots_v1::ListSnapshotsResponse resp;
  for (const Info& info : *infos) {
    ToProto(info, resp.add_info());
    if (static_cast<size_t>(resp.info_size()) >= kBatch) {
      if (!w->Write(resp)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      resp.Clear();
    }
  }
  if (resp.info_size() > 0 && !w->Write(resp)) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  }
  return grpc::Status::OK;
}

grpc::Status SnapshotsService::Usage(grpc::ServerContext*, const snapshots_v1::UsageRequest* req,
                                     snapshots_v1::UsageResponse* resp) {
  const absl::Time start = absl::Now();
  auto usage = s_->GetUsage(req->key());
  if (usage.ok()) {
    resp->set_size(usage->size);
    resp->set_inodes(usage->inodes);
  }
  return Reply("Usage", req->key(), usage.status(), start);
}

grpc::Status SnapshotsService::Cleanup(grpc::ServerContext*, const snapshots_v1::CleanupRequest*,
                                       google::protobuf::Empty*) {
  const absl::Time start = absl::Now();
  return Reply("Cleanup", "", s_->Cleanup(), start);
}

}  // namespace lazysnap

// SnapshotsService: containerd.services.snapshots.v1.Snapshots over an OverlaySnapshotter,
// the service containerd's proxy plugin (`[proxy_plugins.lazysnap]`) talks to. Translates
// messages and turns errors into gRPC codes; no logic of its own. Thread-safe.
#ifndef LAZYSNAP_SNAPSHOTTER_GRPC_SERVICE_H_
#define LAZYSNAP_SNAPSHOTTER_GRPC_SERVICE_H_

#include "containerd/services/snapshots/v1/snapshots.grpc.pb.h"
#include "snapshotter/overlay_snapshotter.h"

namespace lazysnap {

namespace snapshots_v1 = ::containerd::services::snapshots::v1;

class SnapshotsService final : public snapshots_v1::Snapshots::Service {
 public:
  // `snapshotter` is not owned and must outlive the service (and the server running it).
  explicit SnapshotsService(OverlaySnapshotter* snapshotter) : s_(snapshotter) {}

  grpc::Status Prepare(grpc::ServerContext*, const snapshots_v1::PrepareSnapshotRequest*,
                       snapshots_v1::PrepareSnapshotResponse*) override;
  grpc::Status View(grpc::ServerContext*, const snapshots_v1::ViewSnapshotRequest*,
                    snapshots_v1::ViewSnapshotResponse*) override;
  grpc::Status Mounts(grpc::ServerContext*, const snapshots_v1::MountsRequest*,
                      snapshots_v1::MountsResponse*) override;
  grpc::Status Commit(grpc::ServerContext*, const snapshots_v1::CommitSnapshotRequest*,
                      google::protobuf::Empty*) override;
  grpc::Status Remove(grpc::ServerContext*, const snapshots_v1::RemoveSnapshotRequest*,
                      google::protobuf::Empty*) override;
  grpc::Status Stat(grpc::ServerContext*, const snapshots_v1::StatSnapshotRequest*,
                    snapshots_v1::StatSnapshotResponse*) override;
  grpc::Status Update(grpc::ServerContext*, const snapshots_v1::UpdateSnapshotRequest*,
                      snapshots_v1::UpdateSnapshotResponse*) override;
  grpc::Status List(grpc::ServerContext*, const snapshots_v1::ListSnapshotsRequest*,
                    grpc::ServerWriter<snapshots_v1::ListSnapshotsResponse>*) override;
  grpc::Status Usage(grpc::ServerContext*, const snapshots_v1::UsageRequest*,
                     snapshots_v1::UsageResponse*) override;
  grpc::Status Cleanup(grpc::ServerContext*, const snapshots_v1::CleanupRequest*,
                       google::protobuf::Empty*) override;

 private:
  OverlaySnapshotter* const s_;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_SNAPSHOTTER_GRPC_SERVICE_H_

// The gRPC boundary for errors: absl::Status codes are gRPC's codes, so containerd's proxy
// client (errdefs.FromGRPC) maps them back to NotFound, AlreadyExists, FailedPrecondition,
// InvalidArgument, ... Only the gRPC service uses this.
#ifndef LAZYSNAP_SNAPSHOTTER_GRPC_STATUS_H_
#define LAZYSNAP_SNAPSHOTTER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace lazysnap {

// Same code, same message. Pure function; thread-safe.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace lazysnap

#endif  // LAZYSNAP_SNAPSHOTTER_GRPC_STATUS_H_

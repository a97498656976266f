// GrpcContainerd: ContainerdApi over containerd's gRPC socket. Every call carries the
// namespace (metadata header containerd-namespace) and, after UseLease, the lease
// (containerd-lease). Calls may run concurrently (gRPC stubs are thread-safe), except
// UseLease, which must not run concurrently with any other call; the channel is its own.
#ifndef LAZYSNAP_CONTAINERD_GRPC_CLIENT_H_
#define LAZYSNAP_CONTAINERD_GRPC_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "containerd/api.h"

namespace grpc {
class ClientContext;
}

namespace lazysnap::containerd {

struct GrpcOptions {
  std::string address = "/run/containerd/containerd.sock";  // unix socket path
  std::string ns = "default";
  absl::Duration call_timeout = absl::Minutes(2);    // each unary call
  absl::Duration apply_timeout = absl::Minutes(30);  // Apply and content uploads
  size_t write_chunk = size_t{4} << 20;             // bytes per content Write message
};

class GrpcContainerd : public ContainerdApi {
 public:
  // Connects (waits up to 10 s for the socket to accept). Unavailable, naming the address,
  // when there is no socket or nothing answers on it.
  static absl::StatusOr<std::unique_ptr<GrpcContainerd>> Connect(const GrpcOptions& options);
  ~GrpcContainerd() override;

  absl::StatusOr<std::string> CreateLease(absl::Duration expire) override;
  void UseLease(const std::string& id) override { lease_ = id; }
  absl::Status DeleteLease(const std::string& id, bool sync) override;
  absl::Status WriteContent(const std::string& ref, const Sha256& digest, int64_t size,
                            BlobSource& src, const Labels& labels) override;
  absl::Status SetContentLabels(const Sha256& digest, const Labels& labels) override;
  absl::StatusOr<std::vector<Mount>> Prepare(const std::string& snapshotter,
                                             const std::string& key, const std::string& parent,
                                             const Labels& labels) override;
  absl::Status Commit(const std::string& snapshotter, const std::string& name,
                      const std::string& key, const Labels& labels) override;
  absl::Status Stat(const std::string& snapshotter, const std::string& key) override;
  absl::Status Remove(const std::string& snapshotter, const std::string& key) override;
  absl::StatusOr<Sha256> Apply(const Descriptor& layer, const std::vector<Mount>& mounts) override;
  absl::Status PutImage(const ImageRecord& image) override;

 private:
  struct Stubs;
  GrpcContainerd(GrpcOptions options, std::unique_ptr<Stubs> stubs);
  // Sets namespace, lease and deadline on a call's context.
  void Setup(grpc::ClientContext& ctx, absl::Duration timeout) const;

  const GrpcOptions options_;
  std::unique_ptr<Stubs> stubs_;
  std::string lease_;
};

}  // namespace lazysnap::containerd

#endif  // LAZYSNAP_CONTAINERD_GRPC_CLIENT_H_

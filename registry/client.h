// RegistryClient: everything lazysnap says to an OCI registry (distribution API v2): resolve
// tags, fetch manifests (platform selection through indexes) and blobs with their digests
// checked, open blobs for ranged reads, push blobs/manifests/tags, list referrers.
//
// Every operation runs over the endpoints hosts.toml gives for the reference's domain
// (mirrors with the needed capability first, the origin last), with one deadline and
// backoff-with-jitter retries (RetryPolicy).
#ifndef LAZYSNAP_REGISTRY_CLIENT_H_
#define LAZYSNAP_REGISTRY_CLIENT_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "base/blob_source.h"
#include "base/digest.h"
#include "format/oci.h"
#include "registry/auth.h"
#include "registry/hosts.h"
#include "registry/reference.h"
#include "registry/retry.h"
#include "registry/session.h"

namespace lazysnap::registry {

class RegistryBlobSource;

struct ClientOptions {
  std::string hosts_dir;  // containerd's certs.d ("/etc/containerd/certs.d"); "" = defaults
  PlainHttp plain_http;   // registries reached over http when hosts_dir has no file for them
  RetryPolicy retry;
  Platform platform = Platform::Default();
  size_t upload_chunk_size = size_t{16} << 20;  // larger blobs are uploaded in chunks
  size_t max_manifest_bytes = size_t{4} << 20;
};

// A manifest or index as fetched: its descriptor (digest verified) and its exact bytes.
struct FetchedManifest {
  Descriptor descriptor;
  std::string bytes;
};

class RegistryClient {
 public:
  // `transport` and `credentials` (may be null) are not owned and must outlive the client.
  RegistryClient(HttpTransport* transport, const CredentialStore* credentials,
                 ClientOptions options);
  ~RegistryClient();

  // All methods are thread-safe.

  // The descriptor (media type, digest, size) of the manifest `ref` names (HEAD, or GET when
  // the registry sends no Docker-Content-Digest). A digest reference must match.
  absl::StatusOr<Descriptor> Resolve(const Reference& ref);
  // The manifest or index `ref` names; its sha256 checked against the reference's digest or
  // the registry's Docker-Content-Digest (DataLoss on mismatch).
  absl::StatusOr<FetchedManifest> FetchManifest(const Reference& ref);
  // FetchManifest, then through an index / manifest list to the entry for `platform`
  // (options.platform when nullopt). NotFound when no entry matches.
  absl::StatusOr<FetchedManifest> ResolveImage(const Reference& ref,
                                               std::optional<Platform> platform = {});
  // A whole blob of `ref`'s repository, sha256-checked; FailedPrecondition over max_size.
  // `size`: the blob's size when the caller knows it (a descriptor's): saves the HEAD, a
  // round trip (a wrong size fails the digest check).
  absl::StatusOr<std::string> FetchBlob(const Reference& ref, const Sha256& digest,
                                        size_t max_size, std::optional<uint64_t> size = {});
  // The size of a blob (HEAD).
  absl::StatusOr<uint64_t> BlobSize(const Reference& ref, const Sha256& digest);
  // The last `max_bytes` (or fewer) bytes of a blob and its size, in one round trip (a
  // suffix range request "bytes=-N", no HEAD): where eStargz and zstd:chunked keep their
  // footer and index. Not digest-checked (the caller verifies what it uses). A server that
  // ignores the range and sends a blob larger than max_bytes + 64 KiB, or answers it wrongly,
  // gives FailedPrecondition or DataLoss: read the blob with OpenBlob instead.
  struct BlobTail {
    uint64_t size = 0;  // of the whole blob
    std::string bytes;  // its last bytes.size() bytes
  };
  absl::StatusOr<BlobTail> ReadBlobTail(const Reference& ref, const Sha256& digest,
                                        uint64_t max_bytes);
  // A BlobSource reading `digest` of `ref`'s repository with range requests. `size` is
  // asked for (HEAD) when not given. The client must outlive the source.
  absl::StatusOr<std::unique_ptr<RegistryBlobSource>> OpenBlob(const Reference& ref,
                                                               const Sha256& digest,
                                                               std::optional<uint64_t> size = {});

  // Uploads `data` to `ref`'s repository unless it is there already: monolithic up to
  // options.upload_chunk_size, chunked above. Returns its descriptor (media type empty).
  absl::StatusOr<Descriptor> PushBlob(const Reference& ref, std::string_view data);
  // PushBlob from `src` (e.g. a FileBlobSource), read a chunk at a time, never whole in
  // memory above upload_chunk_size. `digest` is the caller's (the registry checks it).
  absl::StatusOr<Descriptor> PushBlobFrom(const Reference& ref, BlobSource& src,
                                          const Sha256& digest);
  // Asks the registry to mount blob `digest` from repository `from` (same registry) into
  // `ref`'s repository. true: mounted; false: the registry declined (push it instead).
  absl::StatusOr<bool> MountBlob(const Reference& ref, std::string_view from, const Sha256& digest);
  // Puts a manifest or index under `ref`'s tag (or digest). If it has a `subject` and the
  // registry does not say it indexed it (no OCI-Subject header), the referrers fallback tag
  // index ("sha256-<hex>" of the subject) is updated too. Returns its descriptor.
  absl::StatusOr<Descriptor> PushManifest(const Reference& ref, std::string_view media_type,
                                          std::string_view bytes);
  // The manifests that refer to `subject` in `ref`'s repository (OCI 1.1 referrers API,
  // else the "sha256-<hex>" tag), filtered by `artifact_type` when not empty.
  absl::StatusOr<std::vector<Descriptor>> Referrers(const Reference& ref, const Sha256& subject,
                                                    std::string_view artifact_type = "");

  // Plumbing shared with RegistryBlobSource.
  absl::StatusOr<std::vector<RegistryEndpoint>> Endpoints(std::string_view domain,
                                                          Capability capability);
  Session& session() { return session_; }
  const ClientOptions& options() const { return options_; }
  const Authorizer& authorizer() const { return authorizer_; }

 private:
  absl::StatusOr<FetchedManifest> FetchManifestFrom(const RegistryEndpoint& ep,
                                                    const Reference& ref, absl::Duration timeout);
  absl::Status UpdateReferrersTag(const Reference& ref, const Sha256& subject,
                                  const Descriptor& referrer);

  const ClientOptions options_;
  Authorizer authorizer_;
  Session session_;
  absl::Mutex mu_;
  std::map<std::string, std::vector<RegistryEndpoint>, std::less<>> endpoints_ ABSL_GUARDED_BY(mu_);
};

// URL of `suffix` ("blobs/sha256:...") in `repository` on `ep`; adds ?ns=DOMAIN for mirrors.
std::string ApiUrl(const RegistryEndpoint& ep, std::string_view domain, std::string_view repository,
                   std::string_view suffix);

}  // namespace lazysnap::registry

#endif  // LAZYSNAP_REGISTRY_CLIENT_H_

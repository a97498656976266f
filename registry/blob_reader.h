// RegistryBlobSource: a BlobSource over HTTP range requests to a registry blob, for the FUSE
// read path. All sources of one RegistryClient share its transport's connection pool.
//
// Each read has one deadline (RetryPolicy::deadline) and is retried with backoff on resets,
// timeouts, 429, 5xx, short bodies and wrong Content-Range; mirrors are tried before the
// origin, and the endpoint that last answered is asked first. Redirects to blob storage are
// followed and the target cached for this blob until a request to it fails. Several ranges
// go out in one multi-range request while the server answers those with
// multipart/byteranges, one request per range (8 at a time) once it does not; a 200 answer is
// accepted (the wanted bytes are cut from the whole blob).
//
// Ranged reads cannot be checked against the blob digest: the caller verifies what it reads
// (the layer readers check every chunk digest). ReadVerified() checks a whole blob.
#ifndef LAZYSNAP_REGISTRY_BLOB_READER_H_
#define LAZYSNAP_REGISTRY_BLOB_READER_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "base/blob_source.h"
#include "base/digest.h"
#include "registry/hosts.h"
#include "registry/reference.h"
#include "registry/transport.h"

namespace lazysnap::registry {

class RegistryClient;

// One range of a ReadRanges call: fill `buf` with the bytes at `offset`.
struct RangeRead {
  uint64_t offset = 0;
  absl::Span<char> buf;
};

class RegistryBlobSource : public BlobSource {
 public:
  // Use RegistryClient::OpenBlob. `client` is not owned and must outlive this;
  // `endpoints` are those with the pull capability, in order.
  RegistryBlobSource(RegistryClient* client, Reference ref, Sha256 digest, uint64_t size,
                     std::vector<RegistryEndpoint> endpoints);

  // All methods are thread-safe.
  uint64_t Size() const override { return size_; }
  // OutOfRange past Size(); DataLoss when every attempt got a short or mismatched answer;
  // DeadlineExceeded when the deadline passed; the registry's error when it is permanent.
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override;
  // Fills every range (up to 32 per request). Same errors as ReadAt.
  absl::Status ReadRanges(absl::Span<const RangeRead> ranges);
  // The whole blob, sha256-checked (DataLoss on mismatch, retried within the deadline).
  absl::StatusOr<std::string> ReadVerified();

  const Sha256& digest() const { return digest_; }
  // Counters for tests, metrics and benchmarks.
  uint64_t requests() const { return requests_.load(); }
  uint64_t bytes_received() const { return bytes_.load(); }
  // The HTTP version of the last answer (1 or 2; 0 before the first).
  int last_http_version() const { return http_version_.load(); }

 private:
  enum class MultiRange { kUnknown, kYes, kNo };
  // One attempt at `ranges` against endpoint `i` (or its cached redirect target).
  absl::Status Attempt(size_t i, absl::Span<const RangeRead> ranges, absl::Duration timeout);
  // Attempt() for each range alone, several at a time.
  absl::Status AttemptEach(size_t i, absl::Span<const RangeRead> ranges, absl::Duration timeout);
  absl::Status AttemptWhole(size_t i, std::string* out, absl::Duration timeout);
  absl::Status Fetch(size_t i, const std::string& range_header, absl::Duration timeout,
                     HttpResponse* out);
  // Copies what `resp` holds of `ranges` into their buffers, marking them in `covered`.
  absl::Status Fill(const HttpResponse& resp, absl::Span<const RangeRead> ranges,
                    std::vector<bool>* covered);

  RegistryClient* const client_;
  const Reference ref_;
  const Sha256 digest_;
  const uint64_t size_;
  const std::vector<RegistryEndpoint> endpoints_;
  absl::Mutex mu_;
  size_t preferred_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> redirects_ ABSL_GUARDED_BY(mu_);  // per endpoint; "" = none
  MultiRange multi_range_ ABSL_GUARDED_BY(mu_) = MultiRange::kUnknown;
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<int> http_version_{0};
};

}  // namespace lazysnap::registry

#endif  // LAZYSNAP_REGISTRY_BLOB_READER_H_

// Access traces: which chunks of an image's layers a workload read first, and when.
// The spec of the encoding and of the store is prefetch/trace.md.
//
// A Trace is keyed by the image manifest digest. Per layer it names the layer blob digest, the
// TOC digest (chunk indices are indices into that TOC's chunk table, stable for a given TOC
// digest: replay skips a layer whose TOC digest differs) and the traced chunks in first-access
// order, each with the milliseconds since the trace started.
#ifndef LAZYSNAP_PREFETCH_TRACE_H_
#define LAZYSNAP_PREFETCH_TRACE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "base/digest.h"

namespace lazysnap {

// The media type of an encoded trace (an OCI artifact's layer / the file's "mediaType").
inline constexpr char kTraceMediaType[] = "application/vnd.lazysnap.trace.v1+json";

// Bounds ParseTrace enforces on untrusted input.
inline constexpr size_t kMaxTraceBytes = 64u << 20;
inline constexpr size_t kMaxTraceLayers = 1024;
inline constexpr size_t kMaxTraceAccesses = 4u << 20;  // over all layers
inline constexpr uint64_t kMaxTraceBlobBytes = (uint64_t{1} << 53) - 1;  // JSON's exact ints

struct TraceAccess {
  uint32_t chunk = 0;   // index into the chunk table of the layer's TOC
  uint32_t millis = 0;  // since the trace started (the first mount of the image)
  bool operator==(const TraceAccess&) const = default;
};

// Where a traced chunk's compressed bytes lie in the layer blob.
struct TraceRange {
  uint64_t offset = 0;
  uint64_t size = 0;
  bool operator==(const TraceRange&) const = default;
};

struct LayerTrace {
  Sha256 digest;      // the layer blob
  Sha256 toc_digest;  // the TOC the chunk indices refer to
  std::vector<TraceAccess> chunks;  // first-access order; no chunk twice
  // Optional (traces from before them have neither): the blob's size, and chunks[i]'s blob
  // range at ranges[i] (empty, or exactly as many as chunks). Let a mount fetch the traced
  // bytes before the TOC has arrived (docs/prefetch.md); never trusted for data.
  uint64_t blob_size = 0;
  std::vector<TraceRange> ranges;
  bool operator==(const LayerTrace&) const = default;
};

// Value type.
struct Trace {
  Sha256 manifest;  // the image manifest digest (the key)
  std::vector<LayerTrace> layers;

  // The entry for layer blob `digest`, or null. Pointer valid while the Trace is unchanged.
  const LayerTrace* Find(const Sha256& digest) const;
  // Total accesses over all layers.
  size_t access_count() const;
  bool operator==(const Trace&) const = default;
};

// The JSON encoding (prefetch/trace.md). Deterministic for a given Trace.
std::string EncodeTrace(const Trace& trace);
// EncodeTrace within `max_bytes` (kMaxTraceBytes: what ParseTrace takes): when the encoding
// is longer, the blob ranges (optional; they about double it) are left out; when it is still
// longer, ResourceExhausted. What the trace store and the registry push write.
absl::StatusOr<std::string> EncodeTraceWithin(const Trace& trace, size_t max_bytes);
// Parses an encoded trace; input is untrusted: anything malformed, too large (the kMax*
// bounds), of another media type or version, with a bad digest or a chunk listed twice in a
// layer is InvalidArgument with a message naming what is wrong. Unknown fields are ignored.
absl::StatusOr<Trace> ParseTrace(std::string_view json);

// The local store of traces: <root>/traces/<manifest hex>.json, one file a trace.
// Thread-safe; several stores on one root in one process are not (use one).
class TraceStore {
 public:
  // `root` is the daemon's state directory (DaemonConfig::root); <root>/traces is created
  // by the first Put.
  explicit TraceStore(std::string root);

  // Stores `trace` under trace.manifest, replacing any (atomic: temporary file + rename).
  absl::Status Put(const Trace& trace);
  // The stored trace of `manifest`: NotFound if none, InvalidArgument if the file does not
  // parse or names another manifest.
  absl::StatusOr<Trace> Get(const Sha256& manifest) const;
  // True when a trace of `manifest` is stored (the file exists).
  bool Has(const Sha256& manifest) const;
  // The manifests with a stored trace, sorted (files whose names are not digests skipped).
  absl::StatusOr<std::vector<Sha256>> List() const;
  // Removes the trace of `manifest`: NotFound if none.
  absl::Status Remove(const Sha256& manifest);

  const std::string& dir() const { return dir_; }
  std::string PathOf(const Sha256& manifest) const;

 private:
  const std::string dir_;
  mutable absl::Mutex mu_;  // serializes writers (the temporary file name is per process)
};

}  // namespace lazysnap

#endif  // LAZYSNAP_PREFETCH_TRACE_H_

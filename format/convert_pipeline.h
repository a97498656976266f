// Ordered parallel processing for the converter: jobs 0..n-1 run on a pool of threads and
// their results are consumed strictly in order on the calling thread, with a bounded number
// of results in flight (memory stays bounded however far the workers could run ahead).
#ifndef LAZYSNAP_FORMAT_CONVERT_PIPELINE_H_
#define LAZYSNAP_FORMAT_CONVERT_PIPELINE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "base/digest.h"

namespace lazysnap {

// What one job produces: a compressed unit (gzip member / zstd frame) and what the in-order
// consumer needs to know about it.
struct JobOutput {
  std::string compressed;
  std::string raw;            // the uncompressed bytes of the unit
  Sha256 chunk_digest;        // sha256 of the file chunk in it, if any
  uint64_t chunk_crc64 = 0;   // CRC-64/ISO of that chunk (zstd:chunked tar-split)
};

// Runs work(i, thread, &out) for every i in [0, n) on `threads` (>= 1) worker threads,
// `thread` being the worker's index in [0, threads) (for per-thread state), and
// consume(i, &out) on the calling thread for i = 0, 1, ... in order. At most `window`
// outputs exist at once. The first error of any call stops all work (jobs not yet started
// are skipped) and is returned. `work` must be safe to call concurrently.
absl::Status RunOrdered(size_t n, int threads, size_t window,
                        const std::function<absl::Status(size_t, int, JobOutput*)>& work,
                        const std::function<absl::Status(size_t, JobOutput*)>& consume);

// The same for jobs that are still being produced: has_job(i) blocks until job i exists
// (true) or it is known there is none (false; then there is no job past i either). It is
// called from the workers and the calling thread, and must be thread-safe.
absl::Status RunOrdered(const std::function<bool(size_t)>& has_job, int threads, size_t window,
                        const std::function<absl::Status(size_t, int, JobOutput*)>& work,
                        const std::function<absl::Status(size_t, JobOutput*)>& consume);

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_CONVERT_PIPELINE_H_

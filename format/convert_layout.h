// The converter's output layout: which bytes make up each independently compressed unit
// (gzip member / zstd frame), built member by member in output order. Jobs can be taken by
// compression workers while members are still being added (streaming conversion).
#ifndef LAZYSNAP_FORMAT_CONVERT_LAYOUT_H_
#define LAZYSNAP_FORMAT_CONVERT_LAYOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "format/convert_plan.h"
#include "format/convert_spool.h"
#include "format/index.h"

namespace lazysnap {

// A piece of a unit's uncompressed bytes. `member` must outlive the job.
struct Piece {
  enum Kind : uint8_t { kSpool, kHeader, kData, kZeros };
  Kind kind;
  const InputMember* member = nullptr;  // kHeader: EncodeTarHeader of it; kData: its data
  uint64_t off = 0;                     // kSpool: spool offset; kData: offset into the data
  uint64_t len = 0;                     // kSpool, kData, kZeros
};

// Appends the bytes of `p` to `out`. Thread-safe (spool reads are pread).
absl::Status AppendPiece(const Piece& p, const SpoolFile& spool, std::string* out);

// One unit. If it carries a file chunk, the chunk's bytes start the unit.
struct Job {
  std::vector<Piece> pieces;
  int64_t chunk = -1;           // chunk number in the output (0, 1, ...), -1: none
  uint32_t member = 0;          // the chunk's file (member index)
  uint32_t chunk_in_file = 0, chunks_in_file = 0;
  uint64_t chunk_file_offset = 0, chunk_size = 0;
};

// Builds jobs from members in output order. eStargz (as the Go writer): a unit per chunk;
// the member's padding and the headers that follow stay in its last chunk's unit; headers
// are re-encoded. zstd:chunked (as containers/storage): a frame per chunk holding only the
// chunk, the raw tar bytes between file contents in frames of their own. Thread-safe.
class LayoutBuilder {
 public:
  LayoutBuilder(LayerFormat format, uint64_t chunk_size)
      : estargz_(format == LayerFormat::kEstargz), chunk_size_(chunk_size) {}

  // Appends member `index` (`m` must outlive the builder's jobs).
  void Add(uint32_t index, const InputMember& m);
  // Ends the layout. zstd:chunked appends the raw bytes after the archive: spool
  // [trailer_offset, spool_size) if the input had an end-of-archive marker, else one.
  void Finish(bool had_trailer, uint64_t trailer_offset, uint64_t spool_size);
  // Ends the layout without finishing it (an error elsewhere): waiters get false.
  void Abort();
  // Blocks until job i exists (copies it to *job, true) or the layout is complete without
  // it (false).
  bool Get(size_t i, Job* job);

  // After Finish: the order members were added in, and each one's chunk numbers.
  const std::vector<uint32_t>& order() const { return order_; }
  uint32_t chunks_begin(uint32_t member) const;
  uint32_t chunks_end(uint32_t member) const;

 private:
  void Flush() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const bool estargz_;
  const uint64_t chunk_size_;
  mutable absl::Mutex mu_;
  std::vector<Job> jobs_ ABSL_GUARDED_BY(mu_);
  Job cur_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t chunks_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<uint32_t> order_;              // written only by Add's caller thread
  std::vector<uint32_t> begin_, end_;        // per member index
};

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_CONVERT_LAYOUT_H_

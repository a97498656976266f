// TailedBlobSource: a BlobSource whose last bytes are already in memory (read together with
// the blob's size in one suffix range request, RegistryClient::ReadBlobTail), over another
// source for the rest. Reading a seekable layer's index then costs one round trip when the
// index fits in the tail (footer and index both in it), else two (the part of the index
// before the tail is read from `inner`, only that part).
#ifndef LAZYSNAP_REMOTE_TAIL_SOURCE_H_
#define LAZYSNAP_REMOTE_TAIL_SOURCE_H_

#include <cstdint>
#include <string>

#include "base/blob_source.h"

namespace lazysnap {

class TailedBlobSource : public BlobSource {
 public:
  // `tail` holds the last tail.size() bytes of `inner` (<= inner->Size()). `inner` is not
  // owned and must outlive this.
  TailedBlobSource(BlobSource* inner, std::string tail)
      : inner_(inner), tail_(std::move(tail)), tail_start_(inner->Size() - tail_.size()) {}

  uint64_t Size() const override { return inner_->Size(); }
  // Thread-safe (as `inner`'s ReadAt).
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override;

 private:
  BlobSource* const inner_;
  const std::string tail_;
  const uint64_t tail_start_;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_REMOTE_TAIL_SOURCE_H_

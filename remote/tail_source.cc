#include "remote/tail_source.h"

#include <cstring>

#include "base/strings.h"

namespace lazysnap {

absl::Status TailedBlobSource::ReadAt(uint64_t offset, absl::Span<char> buf) {
  const uint64_t size = Size();
  if (offset > size || buf.size() > size - offset) {
    return absl::OutOfRangeError(StrCat("read of ", buf.size(), " bytes at ", offset,
                                        " past the end of a ", size, "-byte blob"));
  }
  const uint64_t end = offset + buf.size();
  if (end <= tail_start_) return inner_->ReadAt(offset, buf);
  size_t head = 0;  // bytes before the tail
  if (offset < tail_start_) {
    head = static_cast<size_t>(tail_start_ - offset);
    absl::Status s = inner_->ReadAt(offset, buf.subspan(0, head));
    if (!s.ok()) return s;
  }
  const uint64_t from = offset + head - tail_start_;
  std::memcpy(buf.data() + head, tail_.data() + from, buf.size() - head);
  return absl::OkStatus();
}

}  // namespace lazysnap

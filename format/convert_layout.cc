#include "format/convert_layout.h"

#include <algorithm>

namespace lazysnap {

absl::Status AppendPiece(const Piece& p, const SpoolFile& spool, std::string* out) {
  switch (p.kind) {
    case Piece::kHeader: {
      TarEntry e = p.member->entry;
      if (e.typeflag != '0') e.size = 0;
      out->append(EncodeTarHeader(e));
      return absl::OkStatus();
    }
    case Piece::kData:
      out->append(p.member->data, p.off, p.len);
      return absl::OkStatus();
    case Piece::kZeros:
      out->append(p.len, '\0');
      return absl::OkStatus();
    case Piece::kSpool: {
      size_t at = out->size();
      out->resize(at + p.len);
      return spool.ReadAt(p.off, absl::MakeSpan(out->data() + at, p.len));
    }
  }
  return absl::InternalError("bad piece");
}

void LayoutBuilder::Flush() {
  if (!cur_.pieces.empty()) jobs_.push_back(std::move(cur_));
  cur_ = Job();
}

void LayoutBuilder::Add(uint32_t index, const InputMember& m) {
  order_.push_back(index);
  if (begin_.size() <= index) {
    begin_.resize(index + 1, 0);
    end_.resize(index + 1, 0);
  }
  absl::MutexLock lock(&mu_);
  if (estargz_ || m.synthetic) {
    cur_.pieces.push_back({Piece::kHeader, &m});
  } else {
    cur_.pieces.push_back({Piece::kSpool, &m, m.header_offset, m.data_offset - m.header_offset});
  }
  uint64_t size = m.entry.typeflag == '0' ? m.entry.size : 0;
  uint32_t n = static_cast<uint32_t>((size + chunk_size_ - 1) / chunk_size_);
  begin_[index] = static_cast<uint32_t>(chunks_);
  for (uint32_t k = 0; k < n; ++k) {
    uint64_t off = k * chunk_size_;
    uint64_t len = std::min(chunk_size_, size - off);
    Flush();
    cur_.chunk = static_cast<int64_t>(chunks_++);
    cur_.member = index;
    cur_.chunk_in_file = k;
    cur_.chunks_in_file = n;
    cur_.chunk_file_offset = off;
    cur_.chunk_size = len;
    if (m.synthetic) {
      cur_.pieces.push_back({Piece::kData, &m, off, len});
    } else {
      cur_.pieces.push_back({Piece::kSpool, &m, m.data_offset + off, len});
    }
    if (!estargz_) Flush();
  }
  end_[index] = static_cast<uint32_t>(chunks_);
  // Padding after the data: raw from the spool (zstd:chunked keeps input bytes) or zeros.
  uint64_t pad_at = m.data_offset + size;
  if (!estargz_ && !m.synthetic) {
    if (m.end_offset > pad_at) {
      cur_.pieces.push_back({Piece::kSpool, &m, pad_at, m.end_offset - pad_at});
    }
  } else if (TarPaddingFor(size) > 0) {
    cur_.pieces.push_back({Piece::kZeros, &m, 0, TarPaddingFor(size)});
  }
  // Everything before the unit being filled is final: let the workers have it.
}

void LayoutBuilder::Finish(bool had_trailer, uint64_t trailer_offset, uint64_t spool_size) {
  absl::MutexLock lock(&mu_);
  if (!estargz_) {
    if (had_trailer) {
      cur_.pieces.push_back({Piece::kSpool, nullptr, trailer_offset, spool_size - trailer_offset});
    } else {
      cur_.pieces.push_back({Piece::kZeros, nullptr, 0, 1024});
    }
  }
  Flush();
  done_ = true;
}

void LayoutBuilder::Abort() {
  absl::MutexLock lock(&mu_);
  done_ = true;
}

bool LayoutBuilder::Get(size_t i, Job* job) {
  absl::MutexLock lock(&mu_);
  auto ready = [this, i]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return done_ || i < jobs_.size(); };
  mu_.Await(absl::Condition(&ready));
  if (i >= jobs_.size()) return false;
  *job = jobs_[i];
  return true;
}

uint32_t LayoutBuilder::chunks_begin(uint32_t member) const {
  return member < begin_.size() ? begin_[member] : 0;
}
uint32_t LayoutBuilder::chunks_end(uint32_t member) const {
  return member < end_.size() ? end_[member] : 0;
}

}  // namespace lazysnap

#include "format/decompress.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/status_macros.h"
#include "base/strings.h"

namespace lazysnap {

std::string_view CompressionName(Compression c) {
  switch (c) {
    case Compression::kNone: return "none";
    case Compression::kGzip: return "gzip";
    case Compression::kZstd: return "zstd";
  }
  return "?";
}

namespace {

constexpr size_t kInBuf = 256 << 10;

// Buffered access to the compressed input.
class Source {
 public:
  explicit Source(InputStream* in) : in_(in), buf_(kInBuf) {}
  // Makes at least one byte available unless at EOF; returns false at EOF.
  absl::StatusOr<bool> Fill() {
    if (pos_ < end_) return true;
    if (eof_) return false;
    ASSIGN_OR_RETURN(size_t n, in_->Read(absl::MakeSpan(buf_)));
    pos_ = 0;
    end_ = n;
    if (n == 0) eof_ = true;
    return n > 0;
  }
  // Reads until `n` bytes are buffered (or EOF); for magic detection.
  absl::Status Peek(size_t n) {
    while (end_ - pos_ < n && !eof_) {
      if (pos_ > 0) {
        std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
        end_ -= pos_;
        pos_ = 0;
      }
      ASSIGN_OR_RETURN(size_t got, in_->Read(absl::MakeSpan(buf_.data() + end_, buf_.size() - end_)));
      if (got == 0) eof_ = true;
      end_ += got;
    }
    return absl::OkStatus();
  }
  const char* data() const { return buf_.data() + pos_; }
  size_t avail() const { return end_ - pos_; }
  void Consume(size_t n) { pos_ += n; }
  InputStream* raw() { return in_; }

 private:
  InputStream* in_;
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
};

class Limited : public InputStream {
 public:
  Limited(InputStream* in, const DecompressLimits& limits) : src_(in), limits_(limits) {}
  absl::StatusOr<size_t> Read(absl::Span<char> buf) final {
    if (buf.empty()) return size_t{0};
    ASSIGN_OR_RETURN(size_t n, DoRead(buf));
    total_ += n;
    if (total_ > limits_.max_output_bytes) {
      return absl::ResourceExhaustedError(
          StrCat("decompressed layer exceeds ", limits_.max_output_bytes, " bytes"));
    }
    return n;
  }
  Source& src() { return src_; }

 protected:
  virtual absl::StatusOr<size_t> DoRead(absl::Span<char> buf) = 0;
  Source src_;

 private:
  DecompressLimits limits_;
  uint64_t total_ = 0;
};

class PlainStream final : public Limited {
 public:
  using Limited::Limited;
  absl::StatusOr<size_t> DoRead(absl::Span<char> buf) override {
    if (src_.avail() > 0) {
      size_t n = std::min(buf.size(), src_.avail());
      std::memcpy(buf.data(), src_.data(), n);
      src_.Consume(n);
      return n;
    }
    return src_.raw()->Read(buf);
  }
};

class GzipStream final : public Limited {
 public:
  GzipStream(InputStream* in, const DecompressLimits& limits) : Limited(in, limits) {
    std::memset(&zs_, 0, sizeof(zs_));
    ok_ = inflateInit2(&zs_, 15 + 16) == Z_OK;
  }
  ~GzipStream() override { inflateEnd(&zs_); }

  absl::StatusOr<size_t> DoRead(absl::Span<char> buf) override {
    if (!ok_) return absl::InternalError("zlib: inflateInit2 failed");
    size_t produced = 0;
    while (produced == 0 && !done_) {
      if (member_ended_) {
        // Another member follows, or the stream ends here.
        RETURN_IF_ERROR(src_.Peek(2));
        if (src_.avail() == 0) {
          done_ = true;
          break;
        }
        if (src_.avail() < 2 || static_cast<uint8_t>(src_.data()[0]) != 0x1f ||
            static_cast<uint8_t>(src_.data()[1]) != 0x8b) {
          return absl::DataLossError("gzip: trailing garbage after the compressed stream");
        }
        inflateReset(&zs_);
        member_ended_ = false;
      }
      ASSIGN_OR_RETURN(bool more, src_.Fill());
      if (!more) return absl::DataLossError("gzip: truncated stream");
      zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(src_.data()));
      zs_.avail_in = static_cast<uInt>(src_.avail());
      zs_.next_out = reinterpret_cast<Bytef*>(buf.data() + produced);
      zs_.avail_out = static_cast<uInt>(std::min<size_t>(buf.size() - produced, 1u << 30));
      int rc = inflate(&zs_, Z_NO_FLUSH);
      src_.Consume(src_.avail() - zs_.avail_in);
      produced = buf.size() - zs_.avail_out;
      if (rc == Z_STREAM_END) {
        member_ended_ = true;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return absl::DataLossError(
            StrCat("gzip: corrupt stream: ", zs_.msg ? zs_.msg : "inflate error"));
      }
    }
    return produced;
  }

 private:
  z_stream zs_;
  bool ok_ = false;
  bool member_ended_ = false;
  bool done_ = false;
};

class ZstdStream final : public Limited {
 public:
  ZstdStream(InputStream* in, const DecompressLimits& limits)
      : Limited(in, limits), dctx_(ZSTD_createDCtx()) {}
  ~ZstdStream() override { ZSTD_freeDCtx(dctx_); }

  absl::StatusOr<size_t> DoRead(absl::Span<char> buf) override {
    if (dctx_ == nullptr) return absl::ResourceExhaustedError("zstd: cannot create context");
    ZSTD_outBuffer out{buf.data(), buf.size(), 0};
    while (out.pos == 0) {
      ASSIGN_OR_RETURN(bool more, src_.Fill());
      if (!more) {
        if (pending_ != 0) return absl::DataLossError("zstd: truncated stream");
        break;
      }
      ZSTD_inBuffer in{src_.data(), src_.avail(), 0};
      size_t rc = ZSTD_decompressStream(dctx_, &out, &in);
      src_.Consume(in.pos);
      if (ZSTD_isError(rc)) {
        return absl::DataLossError(StrCat("zstd: corrupt stream: ", ZSTD_getErrorName(rc)));
      }
      pending_ = rc;
    }
    return out.pos;
  }

 private:
  ZSTD_DCtx* dctx_;
  size_t pending_ = 0;  // 0: at a frame boundary
};

}  // namespace

absl::StatusOr<std::unique_ptr<InputStream>> NewDecompressingStream(
    InputStream* in, Compression* detected, const DecompressLimits& limits) {
  // Peek through a plain stream's buffer, then hand the bytes to the chosen decoder (the
  // plain stream then only relays compressed bytes, so it gets no limit of its own).
  DecompressLimits relay;
  relay.max_output_bytes = ~0ull;
  auto plain = std::make_unique<PlainStream>(in, relay);
  RETURN_IF_ERROR(plain->src().Peek(4));
  const auto* p = reinterpret_cast<const uint8_t*>(plain->src().data());
  size_t n = plain->src().avail();
  Compression c = Compression::kNone;
  if (n >= 3 && p[0] == 0x1f && p[1] == 0x8b && p[2] == 0x08) {
    c = Compression::kGzip;
  } else if (n >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd) {
    c = Compression::kZstd;
  }
  if (detected != nullptr) *detected = c;
  if (c == Compression::kNone) {
    // A limited stream over the relay, which still holds the peeked bytes.
    class Chain final : public InputStream {
     public:
      Chain(std::unique_ptr<InputStream> base, const DecompressLimits& limits)
          : base_(std::move(base)), top_(base_.get(), limits) {}
      absl::StatusOr<size_t> Read(absl::Span<char> buf) override { return top_.Read(buf); }

     private:
      std::unique_ptr<InputStream> base_;
      PlainStream top_;
    };
    return std::unique_ptr<InputStream>(std::make_unique<Chain>(std::move(plain), limits));
  }
  // The peeked bytes live in `plain`'s buffer; chain the decoder on top of it.
  class Owning final : public InputStream {
   public:
    Owning(std::unique_ptr<InputStream> base, Compression c, const DecompressLimits& limits)
        : base_(std::move(base)) {
      if (c == Compression::kGzip) {
        dec_ = std::make_unique<GzipStream>(base_.get(), limits);
      } else {
        dec_ = std::make_unique<ZstdStream>(base_.get(), limits);
      }
    }
    absl::StatusOr<size_t> Read(absl::Span<char> buf) override { return dec_->Read(buf); }

   private:
    std::unique_ptr<InputStream> base_;
    std::unique_ptr<InputStream> dec_;
  };
  return std::unique_ptr<InputStream>(std::make_unique<Owning>(std::move(plain), c, limits));
}

}  // namespace lazysnap

#include "format/compress.h"

#include <libdeflate.h>
#include <zstd.h>

#include "absl/status/statusor.h"
#include "base/strings.h"

namespace lazysnap {
namespace {

class GzipCompressor final : public Compressor {
 public:
  explicit GzipCompressor(libdeflate_compressor* c) : c_(c) {}
  ~GzipCompressor() override { libdeflate_free_compressor(c_); }
  absl::Status Compress(std::string_view in, std::string* out) override {
    size_t bound = libdeflate_gzip_compress_bound(c_, in.size());
    size_t base = out->size();
    out->resize(base + bound);
    size_t n = libdeflate_gzip_compress(c_, in.data(), in.size(), out->data() + base, bound);
    if (n == 0) return absl::InternalError("libdeflate: output exceeded its bound");
    out->resize(base + n);
    return absl::OkStatus();
  }

 private:
  libdeflate_compressor* c_;
};

class ZstdCompressor final : public Compressor {
 public:
  explicit ZstdCompressor(ZSTD_CCtx* c) : c_(c) {}
  ~ZstdCompressor() override { ZSTD_freeCCtx(c_); }
  absl::Status Compress(std::string_view in, std::string* out) override {
    size_t bound = ZSTD_compressBound(in.size());
    size_t base = out->size();
    out->resize(base + bound);
    size_t n = ZSTD_compress2(c_, out->data() + base, bound, in.data(), in.size());
    if (ZSTD_isError(n)) {
      out->resize(base);
      return absl::InternalError(StrCat("zstd: ", ZSTD_getErrorName(n)));
    }
    out->resize(base + n);
    return absl::OkStatus();
  }

 private:
  ZSTD_CCtx* c_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Compressor>> NewGzipCompressor(int level) {
  if (level == 0) level = kDefaultGzipLevel;
  if (level < 1 || level > 12) {
    return absl::InvalidArgumentError(StrCat("gzip level ", level, " not in 1..12"));
  }
  libdeflate_compressor* c = libdeflate_alloc_compressor(level);
  if (c == nullptr) return absl::ResourceExhaustedError("libdeflate: cannot allocate compressor");
  return std::unique_ptr<Compressor>(new GzipCompressor(c));
}

absl::StatusOr<std::unique_ptr<Compressor>> NewZstdCompressor(int level) {
  if (level == 0) level = kDefaultZstdLevel;
  if (level < 1 || level > 19) {
    return absl::InvalidArgumentError(StrCat("zstd level ", level, " not in 1..19"));
  }
  ZSTD_CCtx* c = ZSTD_createCCtx();
  if (c == nullptr) return absl::ResourceExhaustedError("zstd: cannot allocate context");
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
  return std::unique_ptr<Compressor>(new ZstdCompressor(c));
}

std::string ZstdSkippableFrame(std::string_view payload) {
  std::string out("\x50\x2a\x4d\x18", 4);
  uint32_t n = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out.append(payload);
  return out;
}

}  // namespace lazysnap

#include "cache/chunk_bitmap.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include "base/errors.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace lazysnap {
namespace {

constexpr char kMagic[8] = {'L', 'Z', 'B', 'I', 'T', 'M', 'A', 'P'};

void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void Put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t Get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

std::string_view AsChars(const uint8_t* p, size_t n) {
  return std::string_view(reinterpret_cast<const char*>(p), n);
}

void EncodeHeader(const BitmapIdentity& id, uint8_t* h) {
  std::memset(h, 0, ChunkBitmap::kHeaderSize);
  std::memcpy(h, kMagic, sizeof(kMagic));
  Put32(h + 8, ChunkBitmap::kVersion);
  Put64(h + 16, id.chunk_count);
  Put64(h + 24, id.data_size);
  std::memcpy(h + 32, id.layer_id.bytes.data(), 32);
  Sha256 sum = Sha256::Of(AsChars(h, 64));
  std::memcpy(h + 64, sum.bytes.data(), 8);
}

uint64_t BitBytes(uint64_t chunks) { return (chunks + 7) / 8; }

}  // namespace

ChunkBitmap::ChunkBitmap(UniqueFd fd, std::string path, const BitmapIdentity& identity)
    : fd_(std::move(fd)), path_(std::move(path)), identity_(identity) {}

ChunkBitmap::~ChunkBitmap() = default;

absl::StatusOr<std::unique_ptr<ChunkBitmap>> ChunkBitmap::Open(const std::string& path,
                                                               const BitmapIdentity& identity) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoToStatus(errno, StrCat("open ", path));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, StrCat("stat ", path));
  std::unique_ptr<ChunkBitmap> bm(new ChunkBitmap(std::move(fd), path, identity));
  absl::MutexLock lock(&bm->mu_);
  if (st.st_size == 0) {
    RETURN_IF_ERROR(bm->WriteFresh());
    return bm;
  }
  absl::Status loaded = bm->Load();
  if (!loaded.ok()) {
    LZ_LOG(kWarning, "cache: not trusting chunk bitmap ", path, " (", loaded.ToString(),
           "); resetting it, the layer's chunks will be fetched again");
    bm->reset_reason_ = loaded;
    RETURN_IF_ERROR(bm->WriteFresh());
  }
  return bm;
}

absl::Status ChunkBitmap::Load() {
  uint8_t want[kHeaderSize];
  EncodeHeader(identity_, want);
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0) return ErrnoToStatus(errno, StrCat("stat ", path_));
  uint64_t want_size = kHeaderSize + BitBytes(identity_.chunk_count);
  if (static_cast<uint64_t>(st.st_size) < kHeaderSize) {
    return absl::DataLossError(
        StrCat("bitmap file is ", st.st_size, " bytes, shorter than its header"));
  }
  uint8_t got[kHeaderSize];
  RETURN_IF_ERROR(
      PreadFull(fd_.get(), 0, absl::MakeSpan(reinterpret_cast<char*>(got), kHeaderSize), path_));
  if (std::memcmp(got, kMagic, sizeof(kMagic)) != 0) return absl::DataLossError("bad magic");
  if (Get32(got + 8) != kVersion) {
    return absl::FailedPreconditionError(StrCat("unsupported bitmap version ", Get32(got + 8)));
  }
  Sha256 sum = Sha256::Of(AsChars(got, 64));
  if (std::memcmp(got + 64, sum.bytes.data(), 8) != 0) {
    return absl::DataLossError("header checksum mismatch");
  }
  if (std::memcmp(got + 32, want + 32, 32) != 0) {
    return absl::FailedPreconditionError("bitmap belongs to a different layer (identity mismatch)");
  }
  if (Get64(got + 16) != identity_.chunk_count || Get64(got + 24) != identity_.data_size) {
    return absl::FailedPreconditionError(StrCat("bitmap describes ", Get64(got + 16), " chunks / ",
                                                Get64(got + 24), " bytes, the layer has ",
                                                identity_.chunk_count, " / ", identity_.data_size));
  }
  if (static_cast<uint64_t>(st.st_size) != want_size) {
    return absl::DataLossError(
        StrCat("bitmap file is ", st.st_size, " bytes, expected ", want_size));
  }
  std::vector<uint8_t> bits(BitBytes(identity_.chunk_count));
  RETURN_IF_ERROR(PreadFull(fd_.get(), kHeaderSize,
                            absl::MakeSpan(reinterpret_cast<char*>(bits.data()), bits.size()),
                            path_));
  if (identity_.chunk_count % 8 != 0 && !bits.empty() &&
      (bits.back() >> (identity_.chunk_count % 8)) != 0) {
    return absl::DataLossError("bits set past the last chunk");
  }
  bits_ = std::move(bits);
  return absl::OkStatus();
}

absl::Status ChunkBitmap::WriteFresh() {
  bits_.assign(BitBytes(identity_.chunk_count), 0);
  // Truncate first so no stale bit survives; then header + zeroed bits in one write.
  if (::ftruncate(fd_.get(), 0) != 0) return ErrnoToStatus(errno, StrCat("truncate ", path_));
  std::string buf(kHeaderSize + bits_.size(), '\0');
  EncodeHeader(identity_, reinterpret_cast<uint8_t*>(buf.data()));
  RETURN_IF_ERROR(PwriteFull(fd_.get(), 0, buf, path_));
  return DataSync(fd_.get(), path_);
}

bool ChunkBitmap::Test(uint64_t chunk) const {
  absl::MutexLock lock(&mu_);
  if (chunk >= identity_.chunk_count) return false;
  return (bits_[chunk / 8] >> (chunk % 8)) & 1;
}

uint64_t ChunkBitmap::CountSet() const {
  absl::MutexLock lock(&mu_);
  uint64_t n = 0;
  for (uint8_t b : bits_) n += std::popcount(b);
  return n;
}

std::vector<bool> ChunkBitmap::Snapshot() const {
  absl::MutexLock lock(&mu_);
  std::vector<bool> out(identity_.chunk_count);
  for (uint64_t i = 0; i < identity_.chunk_count; i++) out[i] = (bits_[i / 8] >> (i % 8)) & 1;
  return out;
}

absl::Status ChunkBitmap::Set(absl::Span<const uint32_t> chunks) {
  std::vector<uint32_t> bytes;  // indices of the bytes that changed
  bytes.reserve(chunks.size());
  absl::MutexLock lock(&mu_);
  for (uint32_t c : chunks) {
    if (c >= identity_.chunk_count) {
      return absl::InvalidArgumentError(
          StrCat("chunk ", c, " out of range (", identity_.chunk_count, " chunks)"));
    }
  }
  for (uint32_t c : chunks) {
    uint8_t bit = static_cast<uint8_t>(1u << (c % 8));
    if (!(bits_[c / 8] & bit)) {
      bits_[c / 8] |= bit;
      bytes.push_back(c / 8);
    }
  }
  std::sort(bytes.begin(), bytes.end());
  bytes.erase(std::unique(bytes.begin(), bytes.end()), bytes.end());
  // Write runs of consecutive changed bytes; the writes are tiny page-cache copies.
  for (size_t i = 0; i < bytes.size();) {
    size_t j = i + 1;
    while (j < bytes.size() && bytes[j] == bytes[j - 1] + 1) j++;
    RETURN_IF_ERROR(PwriteFull(fd_.get(), kHeaderSize + bytes[i],
                               AsChars(bits_.data() + bytes[i], j - i), path_));
    i = j;
  }
  return absl::OkStatus();
}

absl::Status ChunkBitmap::Reset() {
  absl::MutexLock lock(&mu_);
  return WriteFresh();
}

absl::Status ChunkBitmap::Sync() { return DataSync(fd_.get(), path_); }

}  // namespace lazysnap

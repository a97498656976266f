#include "format/zstd_chunked.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "nlohmann/json.hpp"

namespace lazysnap {
namespace {

constexpr char kGithubPrefix[] = "io.github.containers.zstd-chunked.";

uint64_t LoadLE64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint32_t LoadLE32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
void StoreLE64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

// Looks up `suffix` under the current annotation prefix, then under the legacy one.
const std::string* FindAnnotation(const std::map<std::string, std::string>& annotations,
                                  std::string_view suffix) {
  for (std::string_view prefix : {std::string_view(kGithubPrefix),
                                  std::string_view(kZstdChunkedLegacyAnnotationPrefix)}) {
    auto it = annotations.find(StrCat(prefix, suffix));
    if (it != annotations.end()) return &it->second;
  }
  return nullptr;
}

// Parses exactly `n` colon-separated decimal u64 values.
absl::StatusOr<std::vector<uint64_t>> ParseColonList(std::string_view value, size_t n,
                                                     std::string_view what) {
  std::vector<uint64_t> out;
  size_t start = 0;
  while (true) {
    size_t colon = value.find(':', start);
    std::string_view part = value.substr(start, colon == std::string_view::npos
                                                    ? std::string_view::npos
                                                    : colon - start);
    uint64_t v = 0;
    bool digits = !part.empty() && part.size() <= 20 &&
                  part.find_first_not_of("0123456789") == std::string_view::npos;
    if (!digits || !absl::SimpleAtoi(AV(part), &v)) {
      return absl::InvalidArgumentError(
          StrCat("zstd:chunked annotation ", what, ": \"", value.substr(0, 100),
                 "\" is not ", n, " colon-separated decimal integers"));
    }
    out.push_back(v);
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  if (out.size() != n) {
    return absl::InvalidArgumentError(StrCat("zstd:chunked annotation ", what, ": expected ", n,
                                             " fields, got ", out.size()));
  }
  return out;
}

absl::StatusOr<std::optional<Sha256>> ParseChecksum(const std::string* value,
                                                    std::string_view what) {
  if (value == nullptr) return std::optional<Sha256>();
  auto d = Sha256::Parse(*value);
  if (!d.ok()) {
    return absl::InvalidArgumentError(StrCat("zstd:chunked annotation ", what, ": ",
                                             SV(d.status().message())));
  }
  return std::optional<Sha256>(*d);
}

// [offset - header, offset + length) must lie inside the blob, without overflow.
absl::Status CheckRange(uint64_t offset, uint64_t length, uint64_t blob_size,
                        std::string_view what) {
  if (offset < kZstdSkippableHeaderSize || offset > blob_size ||
      length > blob_size - offset) {
    return absl::DataLossError(StrCat("zstd:chunked ", what, " at offset ", offset, " length ",
                                      length, " lies outside the blob of ", blob_size,
                                      " bytes"));
  }
  if (length > 0xffffffffull) {
    return absl::DataLossError(StrCat("zstd:chunked ", what, " length ", length,
                                      " does not fit a skippable frame"));
  }
  return absl::OkStatus();
}

// The blob's last bytes, when they were read to find the footer.
struct Tail {
  uint64_t offset = 0;
  std::string bytes;
};

// Returns the payload of the skippable frame holding [offset, offset + length): from `tail`
// when it is all there, else read from the blob.
absl::StatusOr<std::string> ReadSkippablePayload(BlobSource& blob, uint64_t offset,
                                                 uint64_t length, std::string_view what,
                                                 const Tail* tail = nullptr) {
  const uint64_t begin = offset - kZstdSkippableHeaderSize;
  const uint64_t n = length + kZstdSkippableHeaderSize;
  std::string frame;
  if (tail != nullptr && begin >= tail->offset && n <= tail->bytes.size() &&
      begin - tail->offset <= tail->bytes.size() - n) {
    frame = tail->bytes.substr(begin - tail->offset, n);
  } else {
    ASSIGN_OR_RETURN(frame, ReadRange(blob, begin, n));
  }
  if (LoadLE32(frame.data()) != kZstdSkippableFrameMagic ||
      LoadLE32(frame.data() + 4) != length) {
    return absl::DataLossError(StrCat("zstd:chunked ", what, " at offset ", offset,
                                      " is not the payload of a skippable frame of ", length,
                                      " bytes"));
  }
  frame.erase(0, kZstdSkippableHeaderSize);
  return frame;
}

absl::Status VerifyChecksum(std::string_view data, const Sha256& want, std::string_view what) {
  Sha256 got = Sha256::Of(data);
  if (!(got == want)) {
    return absl::DataLossError(StrCat("zstd:chunked ", what, " checksum mismatch: want ",
                                      want.ToString(), ", got ", got.ToString()));
  }
  return absl::OkStatus();
}

// DecompressZstdExact refuses declared sizes above this (1 TiB) outright.
constexpr uint64_t kMaxExactOutput = uint64_t{1} << 40;

// std::string::resize without letting an allocation failure escape as an exception.
bool Resize(std::string* s, uint64_t n) {
  try {
    s->resize(n);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

struct DctxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

}  // namespace

absl::StatusOr<ZstdChunkedLocation> ParseZstdChunkedFooter(std::string_view tail) {
  constexpr size_t kMagicSize = 8;
  if (tail.size() < kMagicSize) {
    return absl::NotFoundError("not zstd:chunked: blob too small for a footer");
  }
  std::string_view magic = tail.substr(tail.size() - kMagicSize);
  size_t footer_size = 0;
  bool legacy = false;
  if (magic == kZstdChunkedFooterMagic) {
    footer_size = kZstdChunkedFooterSize;
  } else if (magic == kZstdChunkedLegacyFooterMagic) {
    footer_size = kZstdChunkedLegacyFooterSize;
    legacy = true;
  } else {
    return absl::NotFoundError("not zstd:chunked: no footer magic");
  }
  if (tail.size() < footer_size + kZstdSkippableHeaderSize) {
    return absl::DataLossError(StrCat("zstd:chunked footer truncated: ", tail.size(),
                                      " bytes, need ", footer_size + kZstdSkippableHeaderSize));
  }
  const char* frame = tail.data() + tail.size() - footer_size - kZstdSkippableHeaderSize;
  if (LoadLE32(frame) != kZstdSkippableFrameMagic || LoadLE32(frame + 4) != footer_size) {
    return absl::DataLossError(StrCat("zstd:chunked footer magic found but not in a ",
                                      footer_size, "-byte skippable frame"));
  }
  const char* f = frame + kZstdSkippableHeaderSize;
  ZstdChunkedLocation loc;
  loc.legacy_footer = legacy;
  loc.manifest_offset = LoadLE64(f);
  loc.manifest_length = LoadLE64(f + 8);
  loc.manifest_uncompressed_length = LoadLE64(f + 16);
  loc.manifest_type = LoadLE64(f + 24);
  if (!legacy) {
    loc.tar_split_offset = LoadLE64(f + 32);
    loc.tar_split_length = LoadLE64(f + 40);
    loc.tar_split_uncompressed_length = LoadLE64(f + 48);
  }
  return loc;
}

std::string EncodeZstdChunkedFooter(const ZstdChunkedLocation& loc) {
  std::string out(kZstdChunkedFooterSize, '\0');
  StoreLE64(out.data(), loc.manifest_offset);
  StoreLE64(out.data() + 8, loc.manifest_length);
  StoreLE64(out.data() + 16, loc.manifest_uncompressed_length);
  StoreLE64(out.data() + 24, loc.manifest_type);
  StoreLE64(out.data() + 32, loc.tar_split_offset);
  StoreLE64(out.data() + 40, loc.tar_split_length);
  StoreLE64(out.data() + 48, loc.tar_split_uncompressed_length);
  std::memcpy(out.data() + 56, kZstdChunkedFooterMagic, 8);
  return out;
}

absl::StatusOr<ZstdChunkedLocation> ZstdChunkedLocationFromAnnotations(
    const std::map<std::string, std::string>& annotations) {
  const std::string* position = FindAnnotation(annotations, "manifest-position");
  if (position == nullptr) {
    return absl::NotFoundError("no zstd:chunked manifest-position annotation");
  }
  ASSIGN_OR_RETURN(std::vector<uint64_t> m, ParseColonList(*position, 4, "manifest-position"));
  ZstdChunkedLocation loc;
  loc.manifest_offset = m[0];
  loc.manifest_length = m[1];
  loc.manifest_uncompressed_length = m[2];
  loc.manifest_type = m[3];
  if (const std::string* ts = FindAnnotation(annotations, "tarsplit-position")) {
    ASSIGN_OR_RETURN(std::vector<uint64_t> t, ParseColonList(*ts, 3, "tarsplit-position"));
    loc.tar_split_offset = t[0];
    loc.tar_split_length = t[1];
    loc.tar_split_uncompressed_length = t[2];
  }
  ASSIGN_OR_RETURN(loc.manifest_checksum,
                   ParseChecksum(FindAnnotation(annotations, "manifest-checksum"),
                                 "manifest-checksum"));
  ASSIGN_OR_RETURN(loc.tar_split_checksum,
                   ParseChecksum(FindAnnotation(annotations, "tarsplit-checksum"),
                                 "tarsplit-checksum"));
  return loc;
}

namespace {

// LocateZstdChunked; the bytes read from the end of the blob, if any, are left in `tail`.
absl::StatusOr<ZstdChunkedLocation> Locate(BlobSource& blob, const OpenOptions& options,
                                           Tail* tail) {
  const uint64_t size = blob.Size();
  ZstdChunkedLocation loc;
  auto from_annotations = ZstdChunkedLocationFromAnnotations(options.annotations);
  if (from_annotations.ok()) {
    loc = *std::move(from_annotations);
  } else if (absl::IsNotFound(from_annotations.status())) {
    const uint64_t n = std::min<uint64_t>(size, kZstdChunkedSpeculativeTailSize);
    tail->offset = size - n;
    ASSIGN_OR_RETURN(tail->bytes, ReadRange(blob, tail->offset, n));
    ASSIGN_OR_RETURN(loc, ParseZstdChunkedFooter(tail->bytes));
    // Without a position annotation the checksums may still be annotated.
    ASSIGN_OR_RETURN(loc.manifest_checksum,
                     ParseChecksum(FindAnnotation(options.annotations, "manifest-checksum"),
                                   "manifest-checksum"));
    ASSIGN_OR_RETURN(loc.tar_split_checksum,
                     ParseChecksum(FindAnnotation(options.annotations, "tarsplit-checksum"),
                                   "tarsplit-checksum"));
  } else {
    return from_annotations.status();
  }

  if (loc.manifest_type != kZstdChunkedManifestTypeCrfs) {
    return absl::InvalidArgumentError(
        StrCat("zstd:chunked manifest type ", loc.manifest_type, " is not supported (want 1)"));
  }
  const uint64_t max_toc = options.limits.max_toc_bytes;
  if (loc.manifest_uncompressed_length > max_toc) {
    return absl::InvalidArgumentError(
        StrCat("zstd:chunked manifest of ", loc.manifest_uncompressed_length,
               " bytes exceeds the limit of ", max_toc, " bytes"));
  }
  if (loc.manifest_length > ZSTD_compressBound(max_toc)) {
    return absl::InvalidArgumentError(StrCat("zstd:chunked compressed manifest of ",
                                             loc.manifest_length,
                                             " bytes exceeds the limit for a TOC"));
  }
  RETURN_IF_ERROR(CheckRange(loc.manifest_offset, loc.manifest_length, size, "manifest"));
  if (loc.manifest_length == 0) {
    return absl::DataLossError("zstd:chunked manifest has length 0");
  }
  if (loc.tar_split_offset != 0) {
    RETURN_IF_ERROR(CheckRange(loc.tar_split_offset, loc.tar_split_length, size, "tar-split"));
  }
  return loc;
}

}  // namespace

absl::StatusOr<ZstdChunkedLocation> LocateZstdChunked(BlobSource& blob,
                                                      const OpenOptions& options) {
  Tail tail;
  return Locate(blob, options, &tail);
}

absl::StatusOr<RawToc> ReadZstdChunkedToc(BlobSource& blob, const OpenOptions& options) {
  Tail tail;
  ASSIGN_OR_RETURN(ZstdChunkedLocation loc, Locate(blob, options, &tail));
  ASSIGN_OR_RETURN(std::string compressed, ReadSkippablePayload(blob, loc.manifest_offset,
                                                                loc.manifest_length,
                                                                "manifest", &tail));
  if (loc.manifest_checksum.has_value()) {
    RETURN_IF_ERROR(VerifyChecksum(compressed, *loc.manifest_checksum, "manifest"));
  }
  RawToc toc;
  toc.format = LayerFormat::kZstdChunked;
  toc.toc_offset = loc.manifest_offset;
  ASSIGN_OR_RETURN(toc.json, DecompressZstdExact(compressed, loc.manifest_uncompressed_length,
                                                 "zstd:chunked manifest"));
  return toc;
}

absl::StatusOr<std::string> ReadZstdChunkedTarSplit(BlobSource& blob,
                                                    const ZstdChunkedLocation& loc,
                                                    std::optional<Sha256> expected,
                                                    uint64_t max_bytes) {
  if (loc.tar_split_offset == 0) {
    return absl::NotFoundError("zstd:chunked layer has no tar-split");
  }
  if (loc.tar_split_uncompressed_length > max_bytes) {
    return absl::InvalidArgumentError(
        StrCat("zstd:chunked tar-split of ", loc.tar_split_uncompressed_length,
               " bytes exceeds the limit of ", max_bytes, " bytes"));
  }
  RETURN_IF_ERROR(CheckRange(loc.tar_split_offset, loc.tar_split_length, blob.Size(),
                             "tar-split"));
  ASSIGN_OR_RETURN(std::string compressed, ReadSkippablePayload(blob, loc.tar_split_offset,
                                                                loc.tar_split_length,
                                                                "tar-split"));
  if (expected.has_value()) RETURN_IF_ERROR(VerifyChecksum(compressed, *expected, "tar-split"));
  if (loc.tar_split_checksum.has_value()) {
    RETURN_IF_ERROR(VerifyChecksum(compressed, *loc.tar_split_checksum, "tar-split"));
  }
  return DecompressZstdExact(compressed, loc.tar_split_uncompressed_length,
                             "zstd:chunked tar-split");
}

absl::StatusOr<std::string> DecompressZstdExact(std::string_view compressed,
                                                uint64_t expected_size, std::string_view what) {
  if (expected_size > kMaxExactOutput) {
    return absl::InvalidArgumentError(
        StrCat(what, ": declared size ", expected_size, " is beyond any sane limit"));
  }
  std::unique_ptr<ZSTD_DCtx, DctxDeleter> dctx(ZSTD_createDCtx());
  if (dctx == nullptr) return absl::ResourceExhaustedError("ZSTD_createDCtx failed");
  // One byte of room past the declared size detects output that outgrows it.
  const uint64_t cap = expected_size + 1;
  std::string out;
  if (!Resize(&out, std::min<uint64_t>(cap, 1 << 20))) {
    return absl::ResourceExhaustedError(StrCat(what, ": out of memory"));
  }
  ZSTD_inBuffer in{compressed.data(), compressed.size(), 0};
  ZSTD_outBuffer ob{out.data(), out.size(), 0};
  size_t ret = 1;
  while (!(in.pos == in.size && ret == 0)) {
    if (ob.pos == ob.size && ob.size < cap) {  // grow with the real output
      if (!Resize(&out, std::min<uint64_t>(cap, out.size() * 2))) {
        return absl::ResourceExhaustedError(
            StrCat(what, ": out of memory at ", out.size(), " bytes"));
      }
      ob.dst = out.data();
      ob.size = out.size();
    }
    const size_t in_before = in.pos, out_before = ob.pos;
    ret = ZSTD_decompressStream(dctx.get(), &ob, &in);
    if (ZSTD_isError(ret)) {
      return absl::DataLossError(
          StrCat(what, ": corrupt zstd data: ", ZSTD_getErrorName(ret)));
    }
    if (ob.pos > expected_size) {
      return absl::DataLossError(StrCat(what, " decompresses to more than the declared ",
                                        expected_size, " bytes"));
    }
    if (in.pos == in_before && ob.pos == out_before && ob.pos < ob.size) {
      return absl::DataLossError(StrCat(what, ": zstd stream truncated after ", in.pos,
                                        " of ", in.size, " bytes"));
    }
  }
  if (ob.pos != expected_size) {
    return absl::DataLossError(StrCat(what, " decompresses to ", ob.pos,
                                      " bytes, declared ", expected_size));
  }
  out.resize(ob.pos);
  return out;
}

absl::Status ForEachTarSplitEntry(std::string_view tar_split,
                                  const std::function<absl::Status(const TarSplitEntry&)>& fn) {
  size_t line_no = 0;
  size_t start = 0;
  while (start < tar_split.size()) {
    size_t nl = tar_split.find('\n', start);
    std::string_view line = tar_split.substr(
        start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    start = nl == std::string_view::npos ? tar_split.size() : nl + 1;
    ++line_no;
    if (line.empty()) continue;
    auto bad = [&](std::string_view why) {
      return absl::InvalidArgumentError(StrCat("tar-split line ", line_no, ": ", why));
    };
    nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
    TarSplitEntry e;
    auto type = j.find("type");
    if (type == j.end() || !type->is_number_unsigned()) return bad("missing or bad \"type\"");
    uint64_t t = type->get<uint64_t>();
    if (t != TarSplitEntry::kFile && t != TarSplitEntry::kSegment) {
      return bad(StrCat("unknown type ", t));
    }
    e.type = static_cast<TarSplitEntry::Type>(t);
    if (auto p = j.find("position"); p != j.end()) {
      if (!p->is_number_unsigned()) return bad("bad \"position\"");
      e.position = p->get<uint64_t>();
    }
    if (auto s = j.find("size"); s != j.end()) {
      if (!s->is_number_unsigned()) return bad("bad \"size\"");
      e.size = s->get<uint64_t>();
    }
    if (auto n = j.find("name"); n != j.end()) {
      if (!n->is_string()) return bad("bad \"name\"");
      e.name = n->get<std::string>();
    }
    if (auto n = j.find("name_raw"); n != j.end() && !n->is_null()) {
      if (!n->is_string() || !absl::Base64Unescape(n->get_ref<const std::string&>(), &e.name)) {
        return bad("bad \"name_raw\"");
      }
    }
    if (auto p = j.find("payload"); p != j.end() && !p->is_null()) {
      if (!p->is_string() ||
          !absl::Base64Unescape(p->get_ref<const std::string&>(), &e.payload)) {
        return bad("bad \"payload\" (not base64)");
      }
    }
    RETURN_IF_ERROR(fn(e));
  }
  return absl::OkStatus();
}

}  // namespace lazysnap

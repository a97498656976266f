// Test helper: builds small eStargz blobs the way the estargz writer lays them out (a gzip
// member for each tar header, one for each data chunk, the TOC member, the footer), with
// zlib and a minimal ustar writer, so reader tests don't depend on format/convert.h.
// Header-only; tests and fuzzers only. Not thread-safe.
#ifndef LAZYSNAP_FORMAT_ESTARGZ_TESTUTIL_H_
#define LAZYSNAP_FORMAT_ESTARGZ_TESTUTIL_H_

#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "base/digest.h"
#include "base/strings.h"
#include "format/estargz.h"

namespace lazysnap::testing {

// One gzip member holding `data`. `extra`, if non-empty, goes into the header's Extra field.
inline std::string GzipMember(std::string_view data, std::string_view extra = {},
                              int level = 6) {
  z_stream zs{};
  deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  gz_header head{};
  std::string extra_copy(extra);
  if (!extra.empty()) {
    head.extra = reinterpret_cast<Bytef*>(extra_copy.data());
    head.extra_len = static_cast<uInt>(extra_copy.size());
    head.os = 255;
    deflateSetHeader(&zs, &head);
  }
  std::string out(deflateBound(&zs, data.size()) + 64 + extra.size(), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// A ustar header block. typeflag '0' reg, '2' symlink, '5' dir, ...
inline std::string UstarHeader(std::string_view name, char typeflag, uint64_t size,
                               std::string_view link = {}, unsigned mode = 0644) {
  char h[512] = {};
  if (!name.empty()) memcpy(h, name.data(), std::min<size_t>(name.size(), 100));
  snprintf(h + 100, 8, "%07o", mode);
  snprintf(h + 108, 8, "%07o", 0);
  snprintf(h + 116, 8, "%07o", 0);
  snprintf(h + 124, 12, "%011llo", static_cast<unsigned long long>(size));
  snprintf(h + 136, 12, "%011o", 0);
  h[156] = typeflag;
  if (!link.empty()) memcpy(h + 157, link.data(), std::min<size_t>(link.size(), 100));
  memcpy(h + 257, "ustar\0" "00", 8);
  memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  return std::string(h, 512);
}

inline std::string TarPad(uint64_t n) { return std::string((512 - n % 512) % 512, '\0'); }

// The gzip member holding the TOC: a tar with stargz.index.json.
inline std::string TocMember(std::string_view json) {
  std::string tar = UstarHeader(kEstargzTocTarName, '0', json.size());
  tar.append(json);
  tar.append(TarPad(json.size()));
  tar.append(1024, '\0');
  return GzipMember(tar);
}

// The legacy 47-byte stargz footer, written with zlib (independently of EncodeEstargzFooter).
inline std::string LegacyFooter(uint64_t toc_offset) {
  char payload[23];
  snprintf(payload, sizeof(payload), "%016llxSTARGZ", static_cast<unsigned long long>(toc_offset));
  return GzipMember("", std::string_view(payload, 22), /*level=*/0);  // stored: 47 bytes
}

// Builds a blob: AddDir/AddFile/... then Finish. Each file's chunks are separate members.
class EstargzBuilder {
 public:
  void AddDir(std::string_view name, unsigned mode = 0755) {
    blob_.append(GzipMember(UstarHeader(name, '5', 0, {}, mode)));
    Entry(StrCat("\"name\":\"", name, "\",\"type\":\"dir\",\"mode\":", mode));
  }
  void AddSymlink(std::string_view name, std::string_view target) {
    blob_.append(GzipMember(UstarHeader(name, '2', 0, target, 0777)));
    Entry(StrCat("\"name\":\"", name, "\",\"type\":\"symlink\",\"linkName\":\"", target,
                 "\",\"mode\":511"));
  }
  void AddHardlink(std::string_view name, std::string_view target) {
    blob_.append(GzipMember(UstarHeader(name, '1', 0, target)));
    Entry(StrCat("\"name\":\"", name, "\",\"type\":\"hardlink\",\"linkName\":\"", target, "\""));
  }
  // chunk_size 0: one chunk.
  void AddFile(std::string_view name, std::string_view data, size_t chunk_size = 0,
               unsigned mode = 0644) {
    blob_.append(GzipMember(UstarHeader(name, '0', data.size(), {}, mode)));
    if (chunk_size == 0) chunk_size = data.size() == 0 ? 1 : data.size();
    for (size_t off = 0; off < data.size() || (off == 0 && data.empty()); off += chunk_size) {
      std::string_view piece = data.substr(off, chunk_size);
      std::string payload(piece);
      if (off + chunk_size >= data.size()) payload.append(TarPad(data.size()));
      uint64_t at = blob_.size();
      if (!data.empty()) blob_.append(GzipMember(payload));
      std::string e;
      if (off == 0) {
        e = StrCat("\"name\":\"", name, "\",\"type\":\"reg\",\"size\":", data.size(),
                   ",\"mode\":", mode, ",\"digest\":\"", Sha256::Of(data).ToString(), "\"");
      } else {
        e = StrCat("\"name\":\"", name, "\",\"type\":\"chunk\",\"chunkOffset\":", off);
      }
      if (!data.empty()) {
        StrAppend(&e, ",\"offset\":", at, ",\"chunkDigest\":\"", Sha256::Of(piece).ToString(),
                  "\"");
        if (piece.size() != data.size()) StrAppend(&e, ",\"chunkSize\":", piece.size());
      }
      Entry(e);
      if (data.empty()) break;
    }
  }
  // Adds a raw TOC entry (JSON object body without braces) with no blob data.
  void Entry(std::string_view body) {
    if (!entries_.empty()) entries_.append(",\n");
    StrAppend(&entries_, "{", body, "}");
  }
  std::string TocJson() const { return StrCat("{\"version\":1,\"entries\":[\n", entries_, "\n]}"); }
  // The finished blob with `toc_json` (default: the recorded entries) and the chosen footer.
  std::string Finish(bool legacy_footer = false) const { return FinishWithToc(TocJson(), legacy_footer); }
  std::string FinishWithToc(std::string_view toc_json, bool legacy_footer = false) const {
    std::string out = blob_;
    uint64_t toc_offset = out.size();
    out.append(TocMember(toc_json));
    out.append(legacy_footer ? LegacyFooter(toc_offset) : EncodeEstargzFooter(toc_offset));
    return out;
  }
  uint64_t size() const { return blob_.size(); }

 private:
  std::string blob_;
  std::string entries_;
};

inline std::string FromHex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

}  // namespace lazysnap::testing

#endif  // LAZYSNAP_FORMAT_ESTARGZ_TESTUTIL_H_

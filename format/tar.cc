#include "format/tar.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/escaping.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "format/tar_fields.h"

namespace lazysnap {
namespace {

using namespace tar_fields;  // NOLINT: internal constants

std::string_view FieldView(const char* b, Field f) {
  std::string_view v(b + f.off, f.len);
  size_t nul = v.find('\0');
  return nul == std::string_view::npos ? v : v.substr(0, nul);
}

absl::Status Corrupt(std::string_view what) {
  return absl::DataLossError(StrCat("tar: ", what));
}

// Parses a numeric header field: octal text (space/NUL padded) or GNU base-256 (high bit of
// the first byte set). Values outside [min, max] are errors naming `what`.
absl::StatusOr<int64_t> ParseNumeric(const char* b, Field f, std::string_view what,
                                     int64_t min, int64_t max) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(b + f.off);
  if (p[0] & 0x80) {
    // Base-256, two's complement, big-endian; 0x80 marks positive, 0xff negative.
    bool negative = p[0] == 0xff;
    if (!negative && p[0] != 0x80) return Corrupt(StrCat("bad base-256 ", what));
    uint64_t v = 0;
    for (size_t i = 1; i < f.len; ++i) {
      uint8_t c = negative ? static_cast<uint8_t>(~p[i]) : p[i];
      if (v >> 56) return Corrupt(StrCat(what, " overflows"));
      v = (v << 8) | c;
    }
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Corrupt(StrCat(what, " overflows"));
    }
    int64_t s = negative ? -static_cast<int64_t>(v) - 1 : static_cast<int64_t>(v);
    if (s < min || s > max) return Corrupt(StrCat(what, " out of range"));
    return s;
  }
  size_t i = 0;
  while (i < f.len && (p[i] == ' ' || p[i] == '\0')) ++i;
  uint64_t v = 0;
  bool any = false;
  for (; i < f.len && p[i] >= '0' && p[i] <= '7'; ++i) {
    if (v >> 60) return Corrupt(StrCat(what, " overflows"));
    v = v * 8 + (p[i] - '0');
    any = true;
  }
  for (; i < f.len; ++i) {
    if (p[i] != ' ' && p[i] != '\0') return Corrupt(StrCat("bad octal in ", what));
  }
  (void)any;  // an all-blank field is 0
  if (v > static_cast<uint64_t>(max)) return Corrupt(StrCat(what, " out of range"));
  if (static_cast<int64_t>(v) < min) return Corrupt(StrCat(what, " out of range"));
  return static_cast<int64_t>(v);
}

bool IsZeroBlock(const char* b) {
  for (size_t i = 0; i < kBlock; ++i) {
    if (b[i] != 0) return false;
  }
  return true;
}

absl::Status VerifyChecksum(const char* b) {
  auto want = ParseNumeric(b, kChksum, "checksum", 0, 0xffffffff);
  if (!want.ok()) return want.status();
  int64_t unsigned_sum = 0, signed_sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    bool in_field = i >= kChksum.off && i < kChksum.off + kChksum.len;
    unsigned char u = in_field ? ' ' : static_cast<unsigned char>(b[i]);
    signed char s = in_field ? ' ' : static_cast<signed char>(b[i]);
    unsigned_sum += u;
    signed_sum += s;
  }
  if (*want != unsigned_sum && *want != signed_sum) return Corrupt("header checksum mismatch");
  return absl::OkStatus();
}

// Parses a decimal integer (optionally negative) that must make up all of `s`.
bool ParseDecimal(std::string_view s, int64_t* out) {
  bool neg = !s.empty() && s[0] == '-';
  if (neg) s.remove_prefix(1);
  if (s.empty() || s.size() > 18) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = neg ? -v : v;
  return true;
}

}  // namespace

bool ParsePaxTime(std::string_view s, int64_t* sec, uint32_t* nsec) {
  size_t dot = s.find('.');
  std::string_view whole = s.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? "" : s.substr(dot + 1);
  if (!ParseDecimal(whole, sec)) return false;
  uint32_t n = 0;
  for (size_t i = 0; i < frac.size(); ++i) {
    char c = frac[i];
    if (c < '0' || c > '9') return false;
    if (i < 9) n = n * 10 + (c - '0');
  }
  for (size_t i = frac.size(); i < 9; ++i) n *= 10;
  *nsec = n;
  if (!whole.empty() && whole[0] == '-' && n != 0) {  // -1.25 = -2 s + 0.75 s
    *sec -= 1;
    *nsec = 1000000000u - n;
  }
  return true;
}

namespace {

// Parses PAX records "LEN KEY=VALUE\n" into `out` (later records override earlier).
absl::Status ParsePaxRecords(std::string_view data, std::map<std::string, std::string>* out) {
  while (!data.empty()) {
    size_t sp = data.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp > 20) return Corrupt("bad PAX record length");
    int64_t len;
    if (!ParseDecimal(data.substr(0, sp), &len) || len <= static_cast<int64_t>(sp) + 2 ||
        static_cast<uint64_t>(len) > data.size()) {
      return Corrupt("bad PAX record length");
    }
    std::string_view rec = data.substr(sp + 1, len - sp - 1);
    data.remove_prefix(len);
    if (rec.back() != '\n') return Corrupt("PAX record not newline-terminated");
    rec.remove_suffix(1);
    size_t eq = rec.find('=');
    if (eq == std::string_view::npos || eq == 0) return Corrupt("PAX record without key");
    std::string key(rec.substr(0, eq));
    if (key.find('\0') != std::string::npos) return Corrupt("NUL in PAX key");
    (*out)[key] = std::string(rec.substr(eq + 1));
  }
  return absl::OkStatus();
}

// Decodes %XX escapes (libarchive's xattr names).
std::string UrlDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 &&
        hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Applies PAX records to `e` (standard keys override header fields).
absl::Status ApplyPax(const std::map<std::string, std::string>& pax, TarEntry* e) {
  for (const auto& [key, value] : pax) {
    int64_t n;
    if (key == "path") {
      if (!value.empty()) e->name = value;
    } else if (key == "linkpath") {
      if (!value.empty()) e->linkname = value;
    } else if (key == "size") {
      if (!ParseDecimal(value, &n) || n < 0) return Corrupt("bad PAX size");
      e->size = static_cast<uint64_t>(n);
    } else if (key == "uid" || key == "gid") {
      if (!ParseDecimal(value, &n) || n < 0 || n > 0xffffffffll) return Corrupt(StrCat("bad PAX ", key));
      (key == "uid" ? e->uid : e->gid) = static_cast<uint32_t>(n);
    } else if (key == "uname") {
      e->uname = value;
    } else if (key == "gname") {
      e->gname = value;
    } else if (key == "mtime") {
      if (!ParsePaxTime(value, &e->mtime_sec, &e->mtime_nsec)) return Corrupt("bad PAX mtime");
    } else if (key.rfind("SCHILY.xattr.", 0) == 0) {
      e->xattrs[key.substr(13)] = value;
    } else if (key.rfind("LIBARCHIVE.xattr.", 0) == 0) {
      std::string decoded;
      if (!absl::Base64Unescape(AV(value), &decoded)) return Corrupt("bad LIBARCHIVE.xattr value");
      e->xattrs[UrlDecode(key.substr(17))] = std::move(decoded);
    } else if (key.rfind("GNU.sparse.", 0) == 0) {
      return absl::UnimplementedError("tar: GNU sparse files are not supported");
    } else if (key == "comment" || key == "hdrcharset" || key == "charset") {
      // Informational; dropped.
    } else {
      e->pax[key] = value;
    }
  }
  if (e->name.size() > kTarMaxNameLength || e->linkname.size() > kTarMaxNameLength) {
    return Corrupt("name too long");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status TarReader::Skip(uint64_t n) {
  std::array<char, 16384> scratch;
  while (n > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(n, scratch.size()));
    RETURN_IF_ERROR(ReadFull(*in_, absl::MakeSpan(scratch.data(), want)));
    offset_ += want;
    n -= want;
  }
  return absl::OkStatus();
}

absl::Status TarReader::ReadBlock(char* block, bool* eof) {
  size_t got = 0;
  while (got < kBlock) {
    ASSIGN_OR_RETURN(size_t n, in_->Read(absl::MakeSpan(block + got, kBlock - got)));
    if (n == 0) break;
    got += n;
  }
  offset_ += got;
  *eof = got == 0;
  if (got != 0 && got != kBlock) return Corrupt("truncated header block");
  return absl::OkStatus();
}

absl::StatusOr<std::string> TarReader::ReadExtension(uint64_t size, uint64_t cap,
                                                     std::string_view what) {
  if (size > cap) return absl::InvalidArgumentError(StrCat("tar: ", what, " header too large"));
  std::string data(size, '\0');
  RETURN_IF_ERROR(ReadFull(*in_, absl::MakeSpan(data)));
  offset_ += size;
  RETURN_IF_ERROR(Skip(TarPaddingFor(size)));
  return data;
}

absl::StatusOr<std::optional<TarEntry>> TarReader::Next() {
  if (done_) return std::optional<TarEntry>();
  RETURN_IF_ERROR(Skip(remaining_ + padding_));
  remaining_ = padding_ = 0;
  header_offset_ = offset_;

  std::map<std::string, std::string> pax;
  std::optional<std::string> long_name, long_link;
  char b[kBlock];
  for (int ext = 0;; ++ext) {
    if (ext > kTarMaxExtensionHeaders) return Corrupt("too many extension headers");
    bool eof;
    RETURN_IF_ERROR(ReadBlock(b, &eof));
    if (eof) {
      if (ext > 0) return Corrupt("archive ends after an extension header");
      done_ = true;
      return std::optional<TarEntry>();
    }
    if (IsZeroBlock(b)) {
      if (ext > 0) return Corrupt("zero block after an extension header");
      RETURN_IF_ERROR(ReadBlock(b, &eof));
      if (!eof && !IsZeroBlock(b)) return Corrupt("lone zero block in the archive");
      done_ = true;
      return std::optional<TarEntry>();
    }
    RETURN_IF_ERROR(VerifyChecksum(b));
    char type = b[kTypeflag];
    if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
      ASSIGN_OR_RETURN(int64_t size, ParseNumeric(b, kSize, "size", 0,
                                                  std::numeric_limits<int64_t>::max()));
      bool is_pax = type == 'x' || type == 'g';
      ASSIGN_OR_RETURN(std::string data,
                       ReadExtension(static_cast<uint64_t>(size),
                                     is_pax ? kTarMaxPaxHeaderSize : kTarMaxNameLength,
                                     is_pax ? "PAX" : "GNU long name"));
      if (type == 'x') {
        RETURN_IF_ERROR(ParsePaxRecords(data, &pax));
      } else if (type == 'g') {
        RETURN_IF_ERROR(ParsePaxRecords(data, &global_pax_));
      } else {
        size_t nul = data.find('\0');
        if (nul != std::string::npos) data.resize(nul);
        (type == 'L' ? long_name : long_link) = std::move(data);
      }
      continue;
    }
    break;
  }

  TarEntry e;
  char type = b[kTypeflag];
  std::string_view magic(b + kMagic.off, kMagic.len);
  std::string_view version(b + kVersion.off, kVersion.len);
  bool ustar = magic == std::string_view("ustar\0", 6);
  bool gnu = magic == "ustar " && version == std::string_view(" \0", 2);
  e.name = std::string(FieldView(b, kName));
  if (ustar) {
    std::string_view prefix = FieldView(b, kPrefix);
    if (!prefix.empty()) e.name = StrCat(prefix, "/", e.name);
  }
  e.linkname = std::string(FieldView(b, kLinkname));
  if (ustar || gnu) {
    e.uname = std::string(FieldView(b, kUname));
    e.gname = std::string(FieldView(b, kGname));
  }
  ASSIGN_OR_RETURN(int64_t mode, ParseNumeric(b, kMode, "mode", 0, 0xffffffffll));
  e.mode = static_cast<uint32_t>(mode) & 07777;
  ASSIGN_OR_RETURN(int64_t uid, ParseNumeric(b, kUid, "uid", 0, 0xffffffffll));
  ASSIGN_OR_RETURN(int64_t gid, ParseNumeric(b, kGid, "gid", 0, 0xffffffffll));
  e.uid = static_cast<uint32_t>(uid);
  e.gid = static_cast<uint32_t>(gid);
  ASSIGN_OR_RETURN(int64_t size, ParseNumeric(b, kSize, "size", 0,
                                              std::numeric_limits<int64_t>::max()));
  e.size = static_cast<uint64_t>(size);
  ASSIGN_OR_RETURN(e.mtime_sec, ParseNumeric(b, kMtime, "mtime",
                                             std::numeric_limits<int64_t>::min(),
                                             std::numeric_limits<int64_t>::max()));
  if (ustar || gnu) {
    ASSIGN_OR_RETURN(int64_t major, ParseNumeric(b, kDevmajor, "devmajor", 0, 0xffffffffll));
    ASSIGN_OR_RETURN(int64_t minor, ParseNumeric(b, kDevminor, "devminor", 0, 0xffffffffll));
    e.devmajor = static_cast<uint32_t>(major);
    e.devminor = static_cast<uint32_t>(minor);
  }
  if (long_name) e.name = *long_name;
  if (long_link) e.linkname = *long_link;
  if (!global_pax_.empty()) RETURN_IF_ERROR(ApplyPax(global_pax_, &e));
  RETURN_IF_ERROR(ApplyPax(pax, &e));

  switch (type) {
    case '\0':
      type = (!e.name.empty() && e.name.back() == '/') ? '5' : '0';
      break;
    case '7':
      type = '0';
      break;
    case '0': case '1': case '2': case '3': case '4': case '5': case '6':
      break;
    case 'S':
      return absl::UnimplementedError("tar: GNU sparse files are not supported");
    default:
      return absl::UnimplementedError(
          StrCat("tar: unsupported entry type '", std::string(1, type), "' for ", e.name));
  }
  e.typeflag = type;
  if (e.name.empty()) return Corrupt("entry with an empty name");
  if (e.name.find('\0') != std::string::npos || e.linkname.find('\0') != std::string::npos) {
    return Corrupt("NUL byte in a name");
  }
  // Header-only types carry no data whatever their size field says.
  if (type != '0') e.size = 0;
  remaining_ = e.size;
  padding_ = TarPaddingFor(e.size);
  return std::optional<TarEntry>(std::move(e));
}

absl::StatusOr<size_t> TarReader::ReadData(absl::Span<char> buf) {
  size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), remaining_));
  if (want == 0) return size_t{0};
  ASSIGN_OR_RETURN(size_t n, in_->Read(buf.subspan(0, want)));
  if (n == 0) return Corrupt("archive truncated inside file data");
  remaining_ -= n;
  offset_ += n;
  return n;
}

}  // namespace lazysnap

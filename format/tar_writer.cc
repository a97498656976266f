// Writing tar headers (EncodeTarHeader, TarTrailer) and cleaning member names.
#include <cstring>
#include <map>
#include <string>

#include "base/strings.h"
#include "format/tar.h"
#include "format/tar_fields.h"

namespace lazysnap {
namespace {
using namespace tar_fields;  // NOLINT: internal constants
}  // namespace

namespace {

// Writes `v` as zero-padded octal filling the field minus its NUL terminator; false if it
// does not fit.
bool PutOctal(char* b, Field f, uint64_t v) {
  size_t digits = f.len - 1;
  if (digits < 22 && (v >> (3 * digits)) != 0) return false;
  for (size_t i = digits; i-- > 0;) {
    b[f.off + i] = static_cast<char>('0' + (v & 7));
    v >>= 3;
  }
  b[f.off + digits] = '\0';
  return true;
}

bool PutString(char* b, Field f, std::string_view s) {
  if (s.size() > f.len) {
    std::memcpy(b + f.off, s.data(), f.len);
    return false;
  }
  std::memcpy(b + f.off, s.data(), s.size());
  return true;
}

bool IsAscii(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

void AppendPaxRecord(std::string* out, std::string_view key, std::string_view value) {
  size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) len = std::to_string(len).size() + body;
  StrAppend(out, len, " ", key, "=", value, "\n");
}

std::string FormatPaxTime(int64_t sec, uint32_t nsec) {
  if (nsec == 0) return std::to_string(sec);
  std::string sign;
  if (sec < 0) {  // -2 s + 0.75 s = -1.25
    sign = "-";
    sec = -(sec + 1);
    nsec = 1000000000u - nsec;
  }
  std::string frac = std::to_string(nsec);
  frac.insert(0, 9 - frac.size(), '0');
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  return StrCat(sign, sec, ".", frac);
}

// Fills a ustar header block (checksum included).
void FinishHeader(char* b) {
  std::memset(b + kChksum.off, ' ', kChksum.len);
  uint32_t sum = 0;
  for (size_t i = 0; i < kBlock; ++i) sum += static_cast<unsigned char>(b[i]);
  PutOctal(b, Field{kChksum.off, 7}, sum);  // six digits, NUL, then the space kept
  b[kChksum.off + 7] = ' ';
}

}  // namespace

std::string EncodeTarHeader(const TarEntry& e) {
  char b[kBlock];
  std::memset(b, 0, kBlock);
  bool need_pax = false;
  std::string pax;  // records in key order

  // Name: fits as is, or split into prefix + name at a slash.
  bool name_ok = false;
  if (e.name.size() <= kName.len && IsAscii(e.name)) {
    PutString(b, kName, e.name);
    name_ok = true;
  } else if (IsAscii(e.name) && e.name.size() <= kName.len + 1 + kPrefix.len) {
    for (size_t slash = e.name.find('/'); slash != std::string::npos;
         slash = e.name.find('/', slash + 1)) {
      if (slash <= kPrefix.len && e.name.size() - slash - 1 <= kName.len &&
          slash + 1 < e.name.size()) {
        PutString(b, kPrefix, std::string_view(e.name).substr(0, slash));
        PutString(b, kName, std::string_view(e.name).substr(slash + 1));
        name_ok = true;
        break;
      }
    }
  }
  if (!name_ok) {
    need_pax = true;
    std::memset(b + kName.off, 0, kName.len);
    std::memset(b + kPrefix.off, 0, kPrefix.len);
    PutString(b, kName, e.name);  // truncated, as other writers do
  }
  std::map<std::string, std::string> records;
  if (!name_ok) records["path"] = e.name;
  if (!(e.linkname.size() <= kLinkname.len && IsAscii(e.linkname))) {
    records["linkpath"] = e.linkname;
  }
  PutString(b, kLinkname, e.linkname);
  if (!PutOctal(b, kMode, e.mode & 07777)) PutOctal(b, kMode, 0);
  if (!PutOctal(b, kUid, e.uid)) records["uid"] = std::to_string(e.uid);
  if (!PutOctal(b, kGid, e.gid)) records["gid"] = std::to_string(e.gid);
  if (!PutOctal(b, kSize, e.size)) records["size"] = std::to_string(e.size);
  if (e.mtime_sec < 0 || e.mtime_nsec != 0 ||
      !PutOctal(b, kMtime, static_cast<uint64_t>(e.mtime_sec))) {
    PutOctal(b, kMtime, e.mtime_sec < 0 ? 0 : static_cast<uint64_t>(e.mtime_sec) & 077777777777);
    records["mtime"] = FormatPaxTime(e.mtime_sec, e.mtime_nsec);
  }
  if (e.uname.size() >= kUname.len || !IsAscii(e.uname)) {
    records["uname"] = e.uname;
  } else {
    PutString(b, kUname, e.uname);
  }
  if (e.gname.size() >= kGname.len || !IsAscii(e.gname)) {
    records["gname"] = e.gname;
  } else {
    PutString(b, kGname, e.gname);
  }
  if (!PutOctal(b, kDevmajor, e.devmajor)) {
    PutOctal(b, kDevmajor, 0);
    records["SCHILY.devmajor"] = std::to_string(e.devmajor);
  }
  if (!PutOctal(b, kDevminor, e.devminor)) {
    PutOctal(b, kDevminor, 0);
    records["SCHILY.devminor"] = std::to_string(e.devminor);
  }
  for (const auto& [k, v] : e.xattrs) records[StrCat("SCHILY.xattr.", k)] = v;
  for (const auto& [k, v] : e.pax) records.emplace(k, v);  // managed keys win
  b[kTypeflag] = e.typeflag;
  std::memcpy(b + kMagic.off, "ustar\0", 6);
  std::memcpy(b + kVersion.off, "00", 2);
  FinishHeader(b);
  need_pax = need_pax || !records.empty();
  if (!need_pax) return std::string(b, kBlock);

  for (const auto& [k, v] : records) AppendPaxRecord(&pax, k, v);
  // The extended header: named after the entry like Go's and GNU tar's writers do.
  std::string base = e.name;
  while (!base.empty() && base.back() == '/') base.pop_back();
  size_t slash = base.rfind('/');
  std::string dir = slash == std::string::npos ? "." : base.substr(0, slash);
  std::string file = slash == std::string::npos ? base : base.substr(slash + 1);
  std::string xname = dir == "." ? StrCat("PaxHeaders.0/", file) : StrCat(dir, "/PaxHeaders.0/", file);
  if (xname.size() > kName.len || !IsAscii(xname)) xname = "PaxHeaders.0/entry";
  char x[kBlock];
  std::memset(x, 0, kBlock);
  PutString(x, kName, xname);
  PutOctal(x, kMode, 0644);
  PutOctal(x, kUid, 0);
  PutOctal(x, kGid, 0);
  PutOctal(x, kSize, pax.size());
  PutOctal(x, kMtime, 0);
  x[kTypeflag] = 'x';
  std::memcpy(x + kMagic.off, "ustar\0", 6);
  std::memcpy(x + kVersion.off, "00", 2);
  PutOctal(x, kDevmajor, 0);
  PutOctal(x, kDevminor, 0);
  FinishHeader(x);
  std::string out(x, kBlock);
  out += pax;
  out.append(TarPaddingFor(pax.size()), '\0');
  out.append(b, kBlock);
  return out;
}

std::string TarTrailer() { return std::string(2 * kBlock, '\0'); }

absl::StatusOr<std::string> CleanEntryName(std::string_view name) {
  if (name.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError("tar: NUL byte in entry name");
  }
  std::string out;
  out.reserve(name.size());
  size_t i = 0;
  while (i <= name.size()) {
    size_t j = name.find('/', i);
    if (j == std::string_view::npos) j = name.size();
    std::string_view part = name.substr(i, j - i);
    if (part == "..") {
      return absl::InvalidArgumentError(StrCat("tar: entry name with '..': ", name));
    }
    if (!part.empty() && part != ".") {
      if (!out.empty()) out.push_back('/');
      out.append(part);
    }
    i = j + 1;
  }
  return out;
}

}  // namespace lazysnap

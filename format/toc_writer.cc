#include "format/toc_writer.h"

#include <array>

#include "absl/strings/escaping.h"
#include "base/strings.h"

namespace lazysnap {
namespace {

std::string_view TypeName(char typeflag) {
  switch (typeflag) {
    case '0': return "reg";
    case '1': return "hardlink";
    case '2': return "symlink";
    case '3': return "char";
    case '4': return "block";
    case '5': return "dir";
    case '6': return "fifo";
  }
  return "reg";
}

// Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

std::string Pad(int64_t v, int width) {
  std::string s = std::to_string(v < 0 ? -v : v);
  if (static_cast<int>(s.size()) < width) s.insert(0, width - s.size(), '0');
  return v < 0 ? "-" + s : s;
}

// Go's encoding of a map[string][]byte / map[string]string of base64 values.
void AppendXattrs(std::string* out, const std::map<std::string, std::string>& xattrs,
                  std::string_view indent) {
  bool pretty = !indent.empty();
  *out += pretty ? "{\n" : "{";
  bool first = true;
  for (const auto& [k, v] : xattrs) {
    if (!first) *out += pretty ? ",\n" : ",";
    first = false;
    if (pretty) StrAppend(out, indent, "\t");
    AppendJsonString(out, k);
    *out += pretty ? ": " : ":";
    AppendJsonString(out, SV(absl::Base64Escape(AV(v))));
  }
  if (pretty) StrAppend(out, "\n", indent);
  *out += "}";
}

// Writes "key": value pairs of one object, pretty (eStargz) or compact (zstd:chunked).
class ObjectWriter {
 public:
  ObjectWriter(std::string* out, bool pretty) : out_(out), pretty_(pretty) {
    *out_ += pretty_ ? "\t\t{" : "{";
  }
  void Key(std::string_view k) {
    if (!first_) *out_ += ",";
    first_ = false;
    if (pretty_) *out_ += "\n\t\t\t";
    AppendJsonString(out_, k);
    *out_ += pretty_ ? ": " : ":";
  }
  void Str(std::string_view k, std::string_view v) {
    if (v.empty()) return;
    Key(k);
    AppendJsonString(out_, v);
  }
  void Int(std::string_view k, int64_t v) {
    if (v == 0) return;
    Key(k);
    StrAppend(out_, v);
  }
  void Xattrs(const std::map<std::string, std::string>& x) {
    if (x.empty()) return;
    Key("xattrs");
    AppendXattrs(out_, x, pretty_ ? "\t\t\t" : "");
  }
  void End() { *out_ += pretty_ ? "\n\t\t}" : "}"; }

 private:
  std::string* out_;
  bool pretty_;
  bool first_ = true;
};

std::string NameIfChanged(std::map<uint32_t, std::string>* last, uint32_t id,
                          const std::string& name) {
  if (name.empty()) return "";
  auto [it, inserted] = last->emplace(id, name);
  if (!inserted) {
    if (it->second == name) return "";
    it->second = name;
  }
  return name;
}

}  // namespace

bool AppendJsonString(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  bool valid = true;
  out->push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
        out->push_back(static_cast<char>(c));
      } else if (c == '"' || c == '\\') {
        out->push_back('\\');
        out->push_back(static_cast<char>(c));
      } else if (c == '\n') {
        *out += "\\n";
      } else if (c == '\r') {
        *out += "\\r";
      } else if (c == '\t') {
        *out += "\\t";
      } else {
        *out += "\\u00";
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
      }
      ++i;
      continue;
    }
    // Decode one UTF-8 sequence; anything invalid becomes U+FFFD (one byte consumed).
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    uint32_t cp = len == 4 ? c & 0x07 : len == 3 ? c & 0x0f : c & 0x1f;
    bool ok = len != 0 && c < 0xf5 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (ok) {
      static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) ok = false;
    }
    if (!ok) {
      valid = false;
      *out += "\\ufffd";
      ++i;
      continue;
    }
    if (cp == 0x2028 || cp == 0x2029) {
      *out += cp == 0x2028 ? "\\u2028" : "\\u2029";
    } else {
      out->append(s.substr(i, len));
    }
    i += len;
  }
  out->push_back('"');
  return valid;
}

std::string FormatRfc3339(int64_t sec, uint32_t nsec, bool nanos) {
  int64_t days = sec >= 0 ? sec / 86400 : -((-sec + 86399) / 86400);
  int64_t rem = sec - days * 86400;
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  std::string out = StrCat(Pad(y, 4), "-", Pad(m, 2), "-", Pad(d, 2), "T", Pad(rem / 3600, 2),
                           ":", Pad(rem / 60 % 60, 2), ":", Pad(rem % 60, 2));
  if (nanos && nsec != 0) {
    std::string frac = Pad(nsec, 9);
    while (frac.back() == '0') frac.pop_back();
    StrAppend(&out, ".", frac);
  }
  return out + "Z";
}

// ---------------------------------------------------------------------------------------

EstargzTocWriter::EstargzTocWriter(uint64_t chunk_size) : chunk_size_(chunk_size) {
  out_ = "{\n\t\"version\": 1,\n\t\"entries\": [";
}

void EstargzTocWriter::Add(const TarEntry& e, const Sha256* digest,
                           absl::Span<const WrittenChunk> chunks) {
  auto begin = [&]() {
    out_ += first_ ? "\n" : ",\n";
    first_ = false;
  };
  begin();
  ObjectWriter w(&out_, true);
  w.Str("name", e.name);
  w.Str("type", TypeName(e.typeflag));
  if (e.typeflag == '0') w.Int("size", static_cast<int64_t>(e.size));
  if (e.mtime_sec != 0) {
    int64_t sec = e.mtime_sec + (e.mtime_nsec >= 500000000u ? 1 : 0);
    w.Str("modtime", FormatRfc3339(sec, 0, false));
  }
  if (e.typeflag == '1' || e.typeflag == '2') w.Str("linkName", e.linkname);
  w.Int("mode", e.mode);
  w.Int("uid", e.uid);
  w.Int("gid", e.gid);
  w.Str("userName", NameIfChanged(&last_uname_, e.uid, e.uname));
  w.Str("groupName", NameIfChanged(&last_gname_, e.gid, e.gname));
  if (!chunks.empty()) w.Int("offset", static_cast<int64_t>(chunks[0].offset));
  if (e.typeflag == '3' || e.typeflag == '4') {
    w.Int("devMajor", e.devmajor);
    w.Int("devMinor", e.devminor);
  }
  w.Xattrs(e.xattrs);
  if (digest != nullptr) w.Str("digest", digest->ToString());
  for (size_t i = 0; i < chunks.size(); ++i) {
    const WrittenChunk& c = chunks[i];
    if (i > 0) {
      w.End();
      begin();
      w = ObjectWriter(&out_, true);
      w.Str("name", e.name);
      w.Str("type", "chunk");
      w.Int("offset", static_cast<int64_t>(c.offset));
    }
    w.Int("chunkOffset", static_cast<int64_t>(c.file_offset));
    if (c.size == chunk_size_) w.Int("chunkSize", static_cast<int64_t>(c.size));
    w.Str("chunkDigest", c.digest.ToString());
  }
  w.End();
}

std::string EstargzTocWriter::Finish() {
  out_ += first_ ? "]\n}" : "\n\t]\n}";
  return std::move(out_);
}

// ---------------------------------------------------------------------------------------

ZstdChunkedTocWriter::ZstdChunkedTocWriter() { out_ = "{\"version\":1,\"entries\":["; }

void ZstdChunkedTocWriter::Add(const TarEntry& e, const Sha256* digest,
                               absl::Span<const WrittenChunk> chunks) {
  if (!first_) out_ += ",";
  first_ = false;
  ObjectWriter w(&out_, false);
  w.Str("type", TypeName(e.typeflag));
  w.Str("name", e.name);
  w.Str("linkName", e.linkname);
  w.Int("mode", e.mode);
  w.Int("size", static_cast<int64_t>(e.size));
  w.Int("uid", e.uid);
  w.Int("gid", e.gid);
  w.Str("modtime", FormatRfc3339(e.mtime_sec, e.mtime_nsec, true));
  for (const char* key : {"atime", "ctime"}) {
    auto it = e.pax.find(key);
    int64_t sec;
    uint32_t nsec;
    if (it != e.pax.end() && ParsePaxTime(it->second, &sec, &nsec)) {
      w.Str(key[0] == 'a' ? "accesstime" : "changetime", FormatRfc3339(sec, nsec, true));
    }
  }
  w.Int("devMajor", e.devmajor);
  w.Int("devMinor", e.devminor);
  w.Xattrs(e.xattrs);
  if (chunks.empty()) {
    w.End();
    return;
  }
  if (digest != nullptr) w.Str("digest", digest->ToString());
  w.Int("offset", static_cast<int64_t>(chunks[0].offset));
  w.Int("endOffset", static_cast<int64_t>(chunks.back().end_offset));
  if (chunks.size() > 1) {
    for (size_t i = 0; i < chunks.size(); ++i) {
      const WrittenChunk& c = chunks[i];
      if (i > 0) {
        w.End();
        out_ += ",";
        w = ObjectWriter(&out_, false);
        w.Str("type", "chunk");
        w.Str("name", e.name);
        w.Int("offset", static_cast<int64_t>(c.offset));
      }
      w.Int("chunkSize", static_cast<int64_t>(c.size));
      w.Int("chunkOffset", static_cast<int64_t>(c.file_offset));
      w.Str("chunkDigest", c.digest.ToString());
    }
  }
  w.End();
}

std::string ZstdChunkedTocWriter::Finish(const Sha256& tar_split_digest) {
  StrAppend(&out_, "],\"tarSplitDigest\":\"", tar_split_digest.ToString(), "\"}");
  return std::move(out_);
}

// ---------------------------------------------------------------------------------------

namespace {

struct Crc64Tables {
  std::array<std::array<uint64_t, 256>, 8> t;
  Crc64Tables() {
    constexpr uint64_t kPoly = 0xD800000000000000ull;
    for (int i = 0; i < 256; ++i) {
      uint64_t crc = i;
      for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ kPoly : crc >> 1;
      t[0][i] = crc;
    }
    for (int i = 0; i < 256; ++i) {
      for (int k = 1; k < 8; ++k) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
    }
  }
};

}  // namespace

uint64_t Crc64Iso(uint64_t crc, std::string_view data) {
  static const Crc64Tables tables;  // immutable after first use
  const auto& t = tables.t;
  crc = ~crc;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  while (n >= 8) {
    uint64_t v;
    __builtin_memcpy(&v, p, 8);  // little-endian host (x86-64, aarch64)
    crc ^= v;
    crc = t[7][crc & 0xff] ^ t[6][(crc >> 8) & 0xff] ^ t[5][(crc >> 16) & 0xff] ^
          t[4][(crc >> 24) & 0xff] ^ t[3][(crc >> 32) & 0xff] ^ t[2][(crc >> 40) & 0xff] ^
          t[1][(crc >> 48) & 0xff] ^ t[0][crc >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

void TarSplitWriter::Segment(std::string_view raw) {
  StrAppend(&out_, "{\"type\":2,\"payload\":\"", SV(absl::Base64Escape(AV(raw))),
            "\",\"position\":", position_++, "}\n");
}

void TarSplitWriter::File(std::string_view name, uint64_t size, uint64_t crc64) {
  out_ += "{\"type\":1,";
  // Names that are not valid UTF-8 go to name_raw (base64), as tar-split does.
  std::string json;
  if (AppendJsonString(&json, name)) {
    StrAppend(&out_, "\"name\":", json, ",");
  } else {
    StrAppend(&out_, "\"name_raw\":\"", SV(absl::Base64Escape(AV(name))), "\",");
  }
  if (size > 0) {
    char be[8];
    for (int i = 0; i < 8; ++i) be[i] = static_cast<char>(crc64 >> (56 - 8 * i));
    StrAppend(&out_, "\"size\":", size, ",\"payload\":\"",
              SV(absl::Base64Escape(absl::string_view(be, 8))), "\",");
  } else {
    out_ += "\"payload\":null,";
  }
  StrAppend(&out_, "\"position\":", position_++, "}\n");
}

}  // namespace lazysnap

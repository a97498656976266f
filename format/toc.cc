// ParseToc: the TOC JSON front end (simdjson on-demand) feeding IndexBuilder.
#include "format/toc.h"

#include <simdjson.h>

#include "absl/strings/escaping.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace lazysnap {
namespace {

namespace dom = simdjson::dom;

absl::Status JsonError(simdjson::error_code err, std::string_view where) {
  return absl::InvalidArgumentError(
      StrCat("TOC JSON: ", where, ": ", simdjson::error_message(err)));
}

int Digits(std::string_view s, size_t pos, size_t n, bool* ok) {
  int v = 0;
  if (pos + n > s.size()) {
    *ok = false;
    return 0;
  }
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') *ok = false;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// Reads one TOC entry object into `e` (views into the parser's buffers).
absl::Status ParseEntry(dom::object obj, TocEntry* e) {
  *e = TocEntry{.xattrs = std::move(e->xattrs)};
  e->xattrs.clear();
  for (dom::key_value_pair field : obj) {
    std::string_view key = field.key;
    dom::element v = field.value;
    simdjson::error_code err = simdjson::SUCCESS;
    const char* what = "entry";
    auto str = [&](const char* name, std::string_view* out) {
      what = name;
      err = v.get_string().get(*out);
    };
    auto num = [&](const char* name, int64_t* out) {
      what = name;
      err = v.get_int64().get(*out);
    };
    if (key == "name") str("name", &e->name);
    else if (key == "type") str("type", &e->type);
    else if (key == "size") num("size", &e->size);
    else if (key == "mode") num("mode", &e->mode);
    else if (key == "offset") num("offset", &e->offset);
    else if (key == "digest") str("digest", &e->digest);
    else if (key == "chunkDigest") str("chunkDigest", &e->chunk_digest);
    else if (key == "chunkOffset") num("chunkOffset", &e->chunk_offset);
    else if (key == "chunkSize") num("chunkSize", &e->chunk_size);
    else if (key == "uid") num("uid", &e->uid);
    else if (key == "gid") num("gid", &e->gid);
    else if (key == "linkName") str("linkName", &e->link_name);
    else if (key == "endOffset") num("endOffset", &e->end_offset);
    else if (key == "innerOffset") num("innerOffset", &e->inner_offset);
    else if (key == "chunkType") str("chunkType", &e->chunk_type);
    else if (key == "devMajor") num("devMajor", &e->dev_major);
    else if (key == "devMinor") num("devMinor", &e->dev_minor);
    else if (key == "modtime") {
      std::string_view t;
      str("modtime", &t);
      if (!err && !t.empty() && !ParseRfc3339(t, &e->mtime_sec, &e->mtime_nsec)) {
        return absl::InvalidArgumentError(
            StrCat("TOC entry \"", e->name.substr(0, 256), "\": bad modtime \"",
                   t.substr(0, 64), "\""));
      }
    } else if (key == "xattrs") {
      what = "xattrs";
      dom::object xo;
      err = v.get_object().get(xo);
      if (!err) {
        for (dom::key_value_pair xf : xo) {
          std::string_view name = xf.key, b64;
          if ((err = xf.value.get_string().get(b64))) break;
          std::string raw;
          if (!absl::Base64Unescape(AV(b64), &raw)) {
            return absl::InvalidArgumentError(StrCat("TOC entry \"", e->name.substr(0, 256),
                                                     "\": xattr ", name.substr(0, 64),
                                                     " is not base64"));
          }
          e->xattrs.emplace_back(name, std::move(raw));
        }
      }
    }
    if (err) return JsonError(err, StrCat("entry field ", what));
  }
  return absl::OkStatus();
}

}  // namespace

bool ParseRfc3339(std::string_view s, int64_t* sec, uint32_t* nsec) {
  // 2006-01-02T15:04:05[.999999999](Z|+07:00)
  bool ok = s.size() >= 20;
  int year = Digits(s, 0, 4, &ok), month = Digits(s, 5, 2, &ok), day = Digits(s, 8, 2, &ok);
  int hour = Digits(s, 11, 2, &ok), min = Digits(s, 14, 2, &ok), secs = Digits(s, 17, 2, &ok);
  if (!ok || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
      s[16] != ':') {
    return false;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || secs > 60) {
    return false;
  }
  size_t pos = 19;
  uint32_t frac = 0;
  if (pos < s.size() && s[pos] == '.') {
    size_t digits = 0;
    for (++pos; pos < s.size() && s[pos] >= '0' && s[pos] <= '9'; ++pos, ++digits) {
      if (digits < 9) frac = frac * 10 + static_cast<uint32_t>(s[pos] - '0');
    }
    if (digits == 0) return false;
    for (; digits < 9; ++digits) frac *= 10;
  }
  int64_t offset = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos + 6 == s.size() && (s[pos] == '+' || s[pos] == '-') && s[pos + 3] == ':') {
    int oh = Digits(s, pos + 1, 2, &ok), om = Digits(s, pos + 4, 2, &ok);
    if (!ok || oh > 23 || om > 59) return false;
    offset = (s[pos] == '-' ? -1 : 1) * (oh * 3600 + om * 60);
    pos += 6;
  } else {
    return false;
  }
  if (pos != s.size()) return false;
  *sec = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
         hour * 3600 + min * 60 + secs - offset;
  *nsec = frac;
  return true;
}

absl::StatusOr<LayerIndex> ParseToc(std::string_view json, LayerFormat format,
                                    uint64_t toc_offset, uint64_t blob_size,
                                    const LayerLimits& limits) {
  if (json.size() > limits.max_toc_bytes) {
    return absl::InvalidArgumentError(StrCat("TOC is ", json.size(),
                                             " bytes, above the limit of ", limits.max_toc_bytes));
  }
  dom::parser parser;
  dom::element doc;
  if (auto err = parser.parse(json.data(), json.size(), /*realloc_if_needed=*/true).get(doc)) {
    return JsonError(err, "document");
  }
  dom::object root;
  if (auto err = doc.get_object().get(root)) return JsonError(err, "document");
  IndexBuilder builder(format, toc_offset, blob_size, limits);
  TocEntry entry;
  bool saw_entries = false;
  for (dom::key_value_pair field : root) {
    if (field.key == "entries") {
      saw_entries = true;
      dom::array entries;
      if (auto err = field.value.get_array().get(entries)) return JsonError(err, "entries");
      builder.Reserve(entries.size());
      for (dom::element entry_value : entries) {
        dom::object obj;
        if (auto err = entry_value.get_object().get(obj)) return JsonError(err, "entries");
        RETURN_IF_ERROR(ParseEntry(obj, &entry));
        RETURN_IF_ERROR(builder.Add(entry));
      }
    } else if (field.key == "version") {
      int64_t version;
      if (auto err = field.value.get_int64().get(version)) return JsonError(err, "version");
      if (version != 1) {
        return absl::InvalidArgumentError(StrCat("TOC version ", version, " is not supported"));
      }
    }
  }
  if (!saw_entries) return absl::InvalidArgumentError("TOC JSON: no \"entries\"");
  return builder.Finish();
}

}  // namespace lazysnap

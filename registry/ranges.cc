#include "registry/ranges.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "base/strings.h"

namespace lazysnap::registry {
namespace {

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return absl::SimpleAtoi(AV(s), out);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

absl::StatusOr<ContentRange> ParseContentRange(std::string_view value) {
  auto bad = [&] {
    return absl::InvalidArgumentError(StrCat("bad Content-Range \"", value.substr(0, 80), "\""));
  };
  std::string_view v = Trim(value);
  if (!absl::StartsWithIgnoreCase(AV(v), "bytes ")) return bad();
  v = Trim(v.substr(6));
  size_t dash = v.find('-');
  size_t slash = v.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || dash > slash) {
    return bad();
  }
  ContentRange r;
  if (!ParseU64(v.substr(0, dash), &r.first) ||
      !ParseU64(v.substr(dash + 1, slash - dash - 1), &r.last) || r.last < r.first) {
    return bad();
  }
  std::string_view total = v.substr(slash + 1);
  if (total != "*") {
    uint64_t t = 0;
    if (!ParseU64(total, &t) || r.last >= t) return bad();
    r.total = t;
  }
  return r;
}

std::optional<std::string> ByterangesBoundary(std::string_view content_type) {
  size_t semi = content_type.find(';');
  std::string_view type = Trim(content_type.substr(0, semi));
  if (!absl::EqualsIgnoreCase(AV(type), "multipart/byteranges") || semi == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view params = content_type.substr(semi + 1);
  while (!params.empty()) {
    size_t next = params.find(';');
    std::string_view p = Trim(params.substr(0, next));
    params = next == std::string_view::npos ? std::string_view() : params.substr(next + 1);
    if (absl::StartsWithIgnoreCase(AV(p), "boundary=")) {
      std::string_view b = p.substr(9);
      if (b.size() >= 2 && b.front() == '"' && b.back() == '"') b = b.substr(1, b.size() - 2);
      if (b.empty() || b.size() > 200) return std::nullopt;
      return std::string(b);
    }
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<BodyPart>> ParseByteranges(std::string_view body,
                                                      std::string_view boundary) {
  const std::string delim = StrCat("--", boundary);
  auto loss = [](std::string_view why) {
    return absl::DataLossError(StrCat("multipart/byteranges answer: ", why));
  };
  std::vector<BodyPart> parts;
  size_t pos = body.find(delim);
  if (pos == std::string_view::npos) return loss("no boundary");
  while (true) {
    pos += delim.size();
    if (body.substr(pos, 2) == "--") break;  // the closing delimiter
    size_t eol = body.find("\r\n", pos);
    if (eol == std::string_view::npos) return loss("truncated part header");
    pos = eol + 2;
    std::optional<ContentRange> range;
    while (true) {  // part headers up to an empty line
      eol = body.find("\r\n", pos);
      if (eol == std::string_view::npos) return loss("truncated part header");
      std::string_view line = body.substr(pos, eol - pos);
      pos = eol + 2;
      if (line.empty()) break;
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) return loss("bad part header");
      if (absl::EqualsIgnoreCase(AV(Trim(line.substr(0, colon))), "content-range")) {
        auto r = ParseContentRange(line.substr(colon + 1));
        if (!r.ok()) return loss(SV(r.status().message()));
        range = *r;
      }
    }
    if (!range) return loss("part without Content-Range");
    if (range->length() > body.size() - pos) return loss("part runs past the body");
    parts.push_back({*range, body.substr(pos, range->length())});
    pos += range->length();
    if (body.substr(pos, 2) != "\r\n" || body.substr(pos + 2, delim.size()) != delim) {
      return loss("part not followed by a boundary");
    }
    pos += 2;
  }
  if (parts.empty()) return loss("no parts");
  return parts;
}

}  // namespace lazysnap::registry

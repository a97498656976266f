#include "registry/reference.h"

#include <cctype>

#include "base/digest.h"
#include "base/strings.h"

namespace lazysnap::registry {
namespace {

constexpr size_t kMaxNameLength = 255;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// path-component := [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
bool ValidPathComponent(std::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < c.size() && !IsLowerAlnum(c[j])) ++j;
    std::string_view sep = c.substr(i, j - i);
    bool ok = sep == "." || sep == "_" || sep == "__" ||
              sep.find_first_not_of('-') == std::string_view::npos;
    if (!ok) return false;
    i = j;
  }
  return true;
}

// domain := host (":" port)?, host := dns labels separated by "." or "[" ipv6 "]".
bool ValidDomain(std::string_view d) {
  if (d.empty()) return false;
  std::string_view host = d;
  std::string_view port;
  if (d.front() == '[') {
    size_t close = d.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (char c : d.substr(1, close - 1)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':') return false;
    }
    std::string_view rest = d.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
    host = {};
  } else {
    size_t colon = d.find(':');
    if (colon != std::string_view::npos) {
      host = d.substr(0, colon);
      port = d.substr(colon + 1);
      if (port.empty()) return false;
    }
  }
  for (char c : port) {
    if (c < '0' || c > '9') return false;
  }
  if (port.size() > 5) return false;
  size_t start = 0;
  while (!host.empty()) {
    size_t dot = host.find('.', start);
    std::string_view label =
        host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

// tag := [\w][\w.-]{0,127}
bool ValidTag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  if (!word(t.front())) return false;
  for (char c : t) {
    if (!word(c) && c != '.' && c != '-') return false;
  }
  return true;
}

absl::Status Invalid(std::string_view s, std::string_view why) {
  return absl::InvalidArgumentError(StrCat("invalid image reference \"", s, "\": ", why));
}

}  // namespace

absl::StatusOr<Reference> Reference::Parse(std::string_view s) {
  Reference ref;
  std::string_view rest = s;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    std::string_view digest = rest.substr(at + 1);
    if (!Sha256::Parse(digest).ok()) return Invalid(s, "bad digest");
    ref.digest = std::string(digest);
    rest = rest.substr(0, at);
  }
  // A tag is a ':' after the last '/' (a ':' before it is a port).
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    std::string_view tag = rest.substr(colon + 1);
    if (!ValidTag(tag)) return Invalid(s, "bad tag");
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return Invalid(s, "empty name");
  std::string_view path = rest;
  size_t first = rest.find('/');
  if (first != std::string_view::npos) {
    std::string_view head = rest.substr(0, first);
    bool is_domain = head.find_first_of(".:") != std::string_view::npos || head == "localhost" ||
                     head.front() == '[';
    for (char c : head) {
      if (c >= 'A' && c <= 'Z') is_domain = true;
    }
    if (is_domain) {
      if (!ValidDomain(head)) return Invalid(s, "bad registry domain");
      ref.domain = std::string(head);
      path = rest.substr(first + 1);
    }
  }
  if (ref.domain.empty() || ref.domain == "index.docker.io") ref.domain = "docker.io";
  size_t start = 0;
  while (true) {
    size_t next = path.find('/', start);
    std::string_view comp =
        path.substr(start, next == std::string_view::npos ? std::string_view::npos : next - start);
    if (!ValidPathComponent(comp)) return Invalid(s, "bad repository path component");
    if (next == std::string_view::npos) break;
    start = next + 1;
  }
  ref.repository = std::string(path);
  if (ref.domain == "docker.io" && path.find('/') == std::string_view::npos) {
    ref.repository = StrCat("library/", path);
  }
  if (ref.domain.size() + 1 + ref.repository.size() > kMaxNameLength) {
    return Invalid(s, "name longer than 255 characters");
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

std::string Reference::Name() const { return StrCat(domain, "/", repository); }

std::string Reference::String() const {
  std::string out = Name();
  if (!tag.empty()) StrAppend(&out, ":", tag);
  if (!digest.empty()) StrAppend(&out, "@", digest);
  return out;
}

Reference Reference::WithObject(std::string_view object) const {
  Reference r = *this;
  r.tag.clear();
  r.digest.clear();
  if (object.substr(0, 7) == "sha256:") {
    r.digest = std::string(object);
  } else {
    r.tag = std::string(object);
  }
  return r;
}

std::string DefaultRegistryHost(std::string_view domain) {
  if (domain == "docker.io") return "registry-1.docker.io";
  return std::string(domain);
}

bool IsLocalhost(std::string_view domain) {
  std::string_view host = domain;
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    host = host.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1);
  } else if (size_t colon = host.find(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  return host == "localhost" || host == "127.0.0.1" || host == "::1";
}

}  // namespace lazysnap::registry

#include "registry/transport.h"

#include "absl/strings/match.h"
#include "base/strings.h"

namespace lazysnap::registry {

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (absl::EqualsIgnoreCase(AV(n), AV(name))) return v;
  }
  return "";
}

std::vector<std::string> HttpResponse::Headers(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [n, v] : headers) {
    if (absl::EqualsIgnoreCase(AV(n), AV(name))) out.push_back(v);
  }
  return out;
}

}  // namespace lazysnap::registry

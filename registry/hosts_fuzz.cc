// libFuzzer target: containerd hosts.toml parsing. Never throws; a parsed file always ends
// with the origin endpoint.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "registry/hosts.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto eps = lazysnap::registry::ParseHostsToml("registry.example.com", in, "/etc/certs.d/x");
  if (eps.ok()) {
    if (eps->empty() || !eps->back().is_origin) std::abort();
    for (const auto& ep : *eps) {
      if (ep.host.empty() || (ep.scheme != "http" && ep.scheme != "https")) std::abort();
    }
  }
  return 0;
}

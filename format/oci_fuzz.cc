// libFuzzer target for the OCI JSON parsers (manifests, indexes, configs). Checks that
// parsing never crashes and that serializing a parsed object yields a document that parses
// again to the same serialization.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "format/oci.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  lazysnap::OciLimits limits;
  limits.max_json_bytes = 1 << 16;
  limits.max_config_bytes = 1 << 16;
  if (auto m = lazysnap::ParseManifest(in, limits); m.ok()) {
    std::string out = lazysnap::SerializeManifest(*m);
    auto again = lazysnap::ParseManifest(out, limits);
    if (!again.ok() || lazysnap::SerializeManifest(*again) != out) std::abort();
  }
  if (auto index = lazysnap::ParseIndex(in, limits); index.ok()) {
    std::string out = lazysnap::SerializeIndex(*index);
    auto again = lazysnap::ParseIndex(out, limits);
    if (!again.ok() || lazysnap::SerializeIndex(*again) != out) std::abort();
    for (const auto& p : {"linux/amd64", "linux/arm/v7", "linux/arm64"}) {
      (void)lazysnap::SelectPlatform(*index, *lazysnap::Platform::Parse(p));
    }
  }
  if (auto config = lazysnap::ParseImageConfig(in, limits); config.ok()) {
    std::string out = lazysnap::SerializeImageConfig(*config);
    auto again = lazysnap::ParseImageConfig(out, limits);
    if (!again.ok() || lazysnap::SerializeImageConfig(*again) != out) std::abort();
  }
  (void)lazysnap::PeekMediaType(in, limits);
  (void)lazysnap::Platform::Parse(in.substr(0, 64));
  return 0;
}

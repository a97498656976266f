// libFuzzer target: Content-Range values and multipart/byteranges bodies from registries.
// Parsed ranges are consistent and every part lies inside the body.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "registry/ranges.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  using namespace lazysnap::registry;
  if (auto r = ParseContentRange(in); r.ok()) {
    if (r->last < r->first || (r->total && r->last >= *r->total)) std::abort();
  }
  (void)ByterangesBoundary(in);
  // First line: the boundary; the rest: the body.
  size_t nl = in.find('\n');
  if (nl == std::string_view::npos) return 0;
  std::string_view body = in.substr(nl + 1);
  if (auto parts = ParseByteranges(body, in.substr(0, nl)); parts.ok()) {
    for (const auto& p : *parts) {
      if (p.data.data() < body.data() ||
          p.data.data() + p.data.size() > body.data() + body.size() ||
          p.data.size() != p.range.length()) {
        std::abort();
      }
    }
  }
  return 0;
}

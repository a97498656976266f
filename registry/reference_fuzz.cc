// libFuzzer target: image reference parsing. A parsed reference must print to a string that
// parses back to the same reference.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "registry/reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto ref = lazysnap::registry::Reference::Parse(in);
  if (!ref.ok()) return 0;
  auto again = lazysnap::registry::Reference::Parse(ref->String());
  if (!again.ok() || !(*again == *ref)) std::abort();
  (void)lazysnap::registry::IsLocalhost(ref->domain);
  return 0;
}

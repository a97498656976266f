// libFuzzer target: trace parsing (untrusted: traces come from registries). A parsed trace
// must encode to text that parses back to the same trace.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "prefetch/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto trace = lazysnap::ParseTrace(in);
  if (!trace.ok()) return 0;
  auto again = lazysnap::ParseTrace(lazysnap::EncodeTrace(*trace));
  if (!again.ok() || !(*again == *trace)) std::abort();
  return 0;
}

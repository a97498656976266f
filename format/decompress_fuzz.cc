// libFuzzer target: decompressing arbitrary bytes (gzip, zstd or plain) must yield bytes or a
// clean error, never crash or run away (output capped).
#include <cstddef>
#include <cstdint>
#include <string>

#include "format/decompress.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lazysnap::StringInputStream in(std::string(reinterpret_cast<const char*>(data), size));
  lazysnap::DecompressLimits limits;
  limits.max_output_bytes = 16 << 20;
  auto s = lazysnap::NewDecompressingStream(&in, nullptr, limits);
  if (!s.ok()) return 0;
  char buf[65536];
  for (;;) {
    auto n = (*s)->Read(absl::MakeSpan(buf));
    if (!n.ok() || *n == 0) break;
  }
  return 0;
}

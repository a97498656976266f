// libFuzzer target: TarReader over arbitrary bytes must return entries or a clean error,
// never crash, hang or allocate without bound.
#include <cstddef>
#include <cstdint>
#include <string>

#include "format/tar.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lazysnap::StringInputStream in(std::string(reinterpret_cast<const char*>(data), size));
  lazysnap::TarReader reader(&in);
  char buf[4096];
  for (int i = 0; i < 10000; ++i) {
    auto e = reader.Next();
    if (!e.ok() || !e->has_value()) break;
    // Re-encoding what was read must be possible for every accepted entry.
    std::string header = lazysnap::EncodeTarHeader(**e);
    if (header.size() % 512 != 0) __builtin_trap();
    (void)lazysnap::CleanEntryName((*e)->name);
    for (;;) {
      auto n = reader.ReadData(absl::MakeSpan(buf));
      if (!n.ok() || *n == 0) break;
    }
  }
  return 0;
}

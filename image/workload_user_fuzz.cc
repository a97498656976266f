// libFuzzer target: an image's /etc/passwd and /etc/group (untrusted) and its config's User.
// The input is split at the first two NUL bytes: spec, passwd, group.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "image/workload_user.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t a = in.find('\0');
  std::string_view spec = in.substr(0, a);
  std::string_view rest = a == std::string_view::npos ? std::string_view() : in.substr(a + 1);
  size_t b = rest.find('\0');
  std::string_view passwd = rest.substr(0, b);
  std::string_view group = b == std::string_view::npos ? std::string_view() : rest.substr(b + 1);
  auto u = lazysnap::ResolveWorkloadUser(spec, passwd, group);
  if (u.ok() && spec.empty() && (u->uid != 0 || u->gid != 0)) std::abort();
  if (u.ok() && u->groups.size() > 1024) std::abort();
  return 0;
}

// libFuzzer target: WWW-Authenticate challenges and Docker config credentials (both come
// from outside: registries and users' files), and lazysnap config [registry.auths].
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "registry/auth.h"
#include "registry/credentials.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto challenges = lazysnap::registry::ParseChallenges(in);
  if (challenges.ok()) {
    for (const auto& c : *challenges) {
      if (c.scheme.empty()) std::abort();
      (void)c.Param("realm");
    }
  }
  lazysnap::registry::CredentialStore store;
  if (store.AddDockerConfig(in).ok()) (void)store.Lookup("docker.io");
  if (store.AddLazysnapConfig(in).ok()) (void)store.Lookup("ghcr.io");
  return 0;
}

// libFuzzer target: WWW-Authenticate challenges and Docker config credentials (both come
// from outside: registries and users' files), lazysnap config [registry.auths], and a
// credential helper's answer.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "registry/auth.h"
#include "registry/credentials.h"
#include "registry/credentials_helper.h"

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
  // A config may name credsStore / credHelpers: no helper can be found (PATH is empty), so
  // Lookup runs none and logs the failure.
  static const bool no_path = setenv("PATH", "/nonexistent-lazysnap-fuzz", 1) == 0;
  (void)no_path;
  if (store.AddDockerConfig(in).ok()) (void)store.Lookup("docker.io");
  if (store.AddLazysnapConfig(in).ok()) (void)store.Lookup("ghcr.io");
  auto answer = lazysnap::registry::ParseCredentialHelperOutput(in);
  if (answer.ok() && !answer->identity_token.empty() && !answer->password.empty()) std::abort();
  return 0;
}

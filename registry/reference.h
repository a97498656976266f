// Image references ("ubuntu", "ghcr.io/org/app:1.2", "localhost:5000/x@sha256:...") parsed
// the way docker and containerd parse them: a name without a registry domain lives on
// docker.io, and a one-component docker.io name lives under "library/".
#ifndef LAZYSNAP_REGISTRY_REFERENCE_H_
#define LAZYSNAP_REGISTRY_REFERENCE_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace lazysnap::registry {

// A parsed reference. Value type; cheap to copy; thread-compatible.
struct Reference {
  std::string domain;      // "docker.io", "ghcr.io", "localhost:5000", "[::1]:5000"
  std::string repository;  // "library/ubuntu", "org/app"
  std::string tag;         // "" when the reference names no tag
  std::string digest;      // "" or "sha256:<64 hex>" (validated)

  // Parses `s`. A reference with neither tag nor digest gets tag "latest". Anything not in
  // the distribution reference grammar (upper case in the path, empty components, a bad
  // digest, a name over 255 characters) is InvalidArgument. Never throws.
  static absl::StatusOr<Reference> Parse(std::string_view s);

  // "domain/repository" (the familiar name with defaults spelled out).
  std::string Name() const;
  // The full normalized form: "docker.io/library/ubuntu:latest", "x/y@sha256:...",
  // "x/y:tag@sha256:...".
  std::string String() const;
  // What a manifest request names: the digest when present, else the tag.
  std::string Object() const { return digest.empty() ? tag : digest; }
  // The same repository with `object` (a tag or "sha256:..." digest) as its only selector.
  Reference WithObject(std::string_view object) const;

  bool operator==(const Reference&) const = default;
};

// The host:port to contact for `domain` when no hosts.toml says otherwise:
// "docker.io" -> "registry-1.docker.io"; everything else unchanged.
std::string DefaultRegistryHost(std::string_view domain);

// True for "localhost", "127.0.0.1", "::1" with or without a port: containerd talks plain
// HTTP to these by default.
bool IsLocalhost(std::string_view domain);

}  // namespace lazysnap::registry

#endif  // LAZYSNAP_REGISTRY_REFERENCE_H_

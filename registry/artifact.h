// Referrer artifacts: a small blob (e.g. a lazysnap access trace) published in an image's
// repository as an OCI artifact that refers to the image's manifest, and found again from the
// image's manifest digest. Spec: registry/artifact.md.
//
//   artifact manifest (OCI image manifest, pushed by digest):
//     artifactType = the artifact type      config = the empty descriptor ({} as
//     layers = [the blob]                   application/vnd.oci.empty.v1+json)
//     subject = the image manifest          annotations: org.opencontainers.image.created
//   found with RegistryClient::Referrers (OCI 1.1 referrers API, else the "sha256-<hex>" tag
//   holding an OCI index of referrers, which PushManifest keeps up to date).
//
// Everything read from the registry is untrusted: the manifest is parsed with bounds, its
// subject and artifact type must be the ones asked for, the blob is digest-checked and
// bounded in size.
#ifndef LAZYSNAP_REGISTRY_ARTIFACT_H_
#define LAZYSNAP_REGISTRY_ARTIFACT_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/digest.h"
#include "format/oci.h"
#include "registry/client.h"
#include "registry/reference.h"

namespace lazysnap::registry {

inline constexpr char kOciEmptyMediaType[] = "application/vnd.oci.empty.v1+json";
inline constexpr char kOciEmptyJson[] = "{}";
inline constexpr char kCreatedAnnotation[] = "org.opencontainers.image.created";

// What an artifact manifest says. Value type.
struct ArtifactManifest {
  std::string artifact_type;
  Descriptor subject;  // the image manifest it refers to
  Descriptor blob;     // its one layer
  std::map<std::string, std::string> annotations;
};

// The manifest's bytes (compact JSON, fields in a fixed order). `blob` and `subject` need
// media type, digest and size.
std::string SerializeArtifactManifest(const ArtifactManifest& m);

// Parses an artifact manifest (untrusted): an OCI image manifest with an artifactType (or,
// as older tools write, the artifact type as the config media type), a subject and exactly
// one layer. InvalidArgument naming what is wrong.
absl::StatusOr<ArtifactManifest> ParseArtifactManifest(std::string_view data,
                                                       const OciLimits& limits = {});

// Picks the referrer to use among `referrers` (already filtered by artifact type): the one
// with the latest org.opencontainers.image.created annotation (RFC 3339, any offset and
// fraction, compared as times; missing or unparsable counts as earliest), the later in the
// list on ties. nullptr when empty.
const Descriptor* NewestReferrer(const std::vector<Descriptor>& referrers);

struct PushedArtifact {
  Descriptor manifest;  // the artifact manifest (pushed by digest)
  Descriptor blob;
};

// Pushes `blob` as an artifact of `artifact_type` referring to `subject` (an image manifest
// of `repo`'s repository; its tag/digest is ignored): the blob, the empty config, then the
// manifest by digest; the referrers tag index is updated when the registry has no referrers
// API. `created` (RFC 3339, e.g. "2026-11-24T23:00:00Z") is stored as an annotation when not
// empty. The referrers are then read back: while the new manifest is missing (a concurrent
// pusher rewrote the tag index without it), it is pushed again, which merges it into the
// index as it now is; Aborted after 3 pushes. Thread-safe as RegistryClient is.
absl::StatusOr<PushedArtifact> PushArtifact(RegistryClient& client, const Reference& repo,
                                            const Descriptor& subject,
                                            std::string_view artifact_type,
                                            std::string_view blob_media_type,
                                            std::string_view blob, std::string_view created);

struct PulledArtifact {
  Descriptor manifest;  // which referrer was used
  ArtifactManifest parsed;
  std::string blob;     // digest-checked
};

// The newest artifact of `artifact_type` referring to `subject` in `repo`'s repository, with
// its blob (at most `max_blob_bytes`; FailedPrecondition above). NotFound when there is none.
// A referrer whose manifest does not name `subject` or `artifact_type` is skipped with a
// warning (the next newest is tried). Thread-safe as RegistryClient is.
absl::StatusOr<PulledArtifact> PullArtifact(RegistryClient& client, const Reference& repo,
                                            const Sha256& subject, std::string_view artifact_type,
                                            size_t max_blob_bytes);

// `t` as RFC 3339 UTC with whole seconds ("2026-11-24T23:00:00Z"), the form lazysnap writes.
std::string FormatRfc3339(absl::Time t);
// FormatRfc3339(absl::Now()).
std::string NowRfc3339();

}  // namespace lazysnap::registry

#endif  // LAZYSNAP_REGISTRY_ARTIFACT_H_

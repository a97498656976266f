#include "registry/artifact.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "absl/time/clock.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace lazysnap::registry {
namespace {

using Json = nlohmann::ordered_json;

absl::Status Invalid(std::string_view msg) {
  return absl::InvalidArgumentError(StrCat("artifact manifest: ", msg));
}

// A descriptor as JSON with only the fields an artifact manifest needs.
Json Plain(const Descriptor& d) {
  Json j = Json::object();
  j["mediaType"] = d.media_type;
  j["digest"] = d.digest.ToString();
  j["size"] = d.size;
  return j;
}

}  // namespace

std::string SerializeArtifactManifest(const ArtifactManifest& m) {
  Json j = Json::object();
  j["schemaVersion"] = 2;
  j["mediaType"] = kOciManifestMediaType;
  j["artifactType"] = m.artifact_type;
  Descriptor config = DescriptorOf(kOciEmptyMediaType, kOciEmptyJson);
  Json cj = Plain(config);
  cj["data"] = "e30=";  // base64 of "{}", as the OCI 1.1 image spec shows it
  j["config"] = std::move(cj);
  j["layers"] = Json::array({Plain(m.blob)});
  j["subject"] = Plain(m.subject);
  if (!m.annotations.empty()) {
    Json a = Json::object();
    for (const auto& [k, v] : m.annotations) a[k] = v;
    j["annotations"] = std::move(a);
  }
  return j.dump();
}

absl::StatusOr<ArtifactManifest> ParseArtifactManifest(std::string_view data,
                                                       const OciLimits& limits) {
  ASSIGN_OR_RETURN(Manifest m, ParseManifest(data, limits));
  if (!m.media_type.empty() && m.media_type != kOciManifestMediaType) {
    return Invalid(StrCat("mediaType '", m.media_type, "' is not an OCI image manifest"));
  }
  ArtifactManifest a;
  auto at = m.json.find("artifactType");
  if (at != m.json.end()) {
    if (!at->is_string()) return Invalid("'artifactType' is not a string");
    a.artifact_type = at->get<std::string>();
  } else {
    a.artifact_type = m.config.media_type;  // the pre-1.1 convention
  }
  if (a.artifact_type.empty()) return Invalid("no artifactType");
  auto subject = m.json.find("subject");
  if (subject == m.json.end()) return Invalid("no 'subject'");
  auto sd = ParseDescriptor(*subject);
  if (!sd.ok()) return Invalid(StrCat("subject: ", sd.status().message()));
  a.subject = *std::move(sd);
  if (m.layers.size() != 1) {
    return Invalid(StrCat("has ", m.layers.size(), " layers, expected one"));
  }
  a.blob = std::move(m.layers[0]);
  a.annotations = std::move(m.annotations);
  return a;
}

const Descriptor* NewestReferrer(const std::vector<Descriptor>& referrers) {
  const Descriptor* best = nullptr;
  absl::Time best_created = absl::InfinitePast();
  for (const Descriptor& d : referrers) {
    auto it = d.annotations.find(kCreatedAnnotation);
    absl::Time created = absl::InfinitePast();
    std::string err;
    if (it != d.annotations.end() &&
        !absl::ParseTime(absl::RFC3339_full, it->second, &created, &err)) {
      created = absl::InfinitePast();
    }
    if (best == nullptr || created >= best_created) {
      best = &d;
      best_created = created;
    }
  }
  return best;
}

absl::StatusOr<PushedArtifact> PushArtifact(RegistryClient& client, const Reference& repo,
                                            const Descriptor& subject,
                                            std::string_view artifact_type,
                                            std::string_view blob_media_type,
                                            std::string_view blob, std::string_view created) {
  if (artifact_type.empty()) return absl::InvalidArgumentError("empty artifact type");
  PushedArtifact out;
  ASSIGN_OR_RETURN(out.blob, client.PushBlob(repo, blob));
  out.blob.media_type = std::string(blob_media_type);
  RETURN_IF_ERROR(client.PushBlob(repo, kOciEmptyJson).status());
  ArtifactManifest m;
  m.artifact_type = std::string(artifact_type);
  m.subject = subject;
  m.blob = out.blob;
  if (!created.empty()) m.annotations[kCreatedAnnotation] = std::string(created);
  std::string bytes = SerializeArtifactManifest(m);
  Reference by_digest = repo.WithObject(Sha256::Of(bytes).ToString());
  // A registry without the referrers API keeps referrers in a tag index that every pusher
  // reads, extends and rewrites: two nodes pushing for one image at once can each write an
  // index without the other's entry. Read it back after writing; while ours is missing, push
  // again (PushManifest merges into the index as it is now). Bounded: kPushAttempts.
  constexpr int kPushAttempts = 3;
  for (int attempt = 1;; ++attempt) {
    ASSIGN_OR_RETURN(out.manifest, client.PushManifest(by_digest, kOciManifestMediaType, bytes));
    ASSIGN_OR_RETURN(std::vector<Descriptor> referrers,
                     client.Referrers(repo, subject.digest, artifact_type));
    bool listed = std::any_of(referrers.begin(), referrers.end(),
                              [&](const Descriptor& d) { return d.digest == out.manifest.digest; });
    if (listed) return out;
    if (attempt == kPushAttempts) {
      return absl::AbortedError(StrCat("artifact ", out.manifest.digest.ToString(),
                                       " still missing from the referrers of ",
                                       subject.digest.ToString(), " after ", kPushAttempts,
                                       " pushes (concurrent writers of its tag index)"));
    }
    LZ_LOG(kInfo, "artifact ", out.manifest.digest.ToString(), " missing from the referrers of ",
           subject.digest.ToString(), " (a concurrent push rewrote the index, or the ",
           "registry lists referrers late): pushing again");
    // Apart in time: a registry indexing referrers asynchronously catches up meanwhile, and
    // two crossing writers are less likely to cross again.
    absl::SleepFor(absl::Milliseconds(200 * attempt));
  }
}

absl::StatusOr<PulledArtifact> PullArtifact(RegistryClient& client, const Reference& repo,
                                            const Sha256& subject, std::string_view artifact_type,
                                            size_t max_blob_bytes) {
  ASSIGN_OR_RETURN(std::vector<Descriptor> referrers,
                   client.Referrers(repo, subject, artifact_type));
  while (!referrers.empty()) {
    const Descriptor* newest = NewestReferrer(referrers);
    Descriptor d = *newest;
    referrers.erase(referrers.begin() + (newest - referrers.data()));
    ASSIGN_OR_RETURN(FetchedManifest fetched,
                     client.FetchManifest(repo.WithObject(d.digest.ToString())));
    auto parsed = ParseArtifactManifest(fetched.bytes);
    if (!parsed.ok()) {
      LZ_LOG(kWarning, "referrer ", d.digest.ToString(), " of ", subject.ToString(),
             " skipped: ", parsed.status().ToString());
      continue;
    }
    if (parsed->subject.digest != subject || parsed->artifact_type != artifact_type) {
      LZ_LOG(kWarning, "referrer ", d.digest.ToString(), " of ", subject.ToString(),
             " skipped: it names subject ", parsed->subject.digest.ToString(), " and type ",
             parsed->artifact_type);
      continue;
    }
    if (parsed->blob.size < 0 || static_cast<uint64_t>(parsed->blob.size) > max_blob_bytes) {
      return absl::FailedPreconditionError(
          StrCat("artifact ", d.digest.ToString(), ": blob of ", parsed->blob.size,
                 " bytes is over the limit of ", max_blob_bytes));
    }
    PulledArtifact out;
    ASSIGN_OR_RETURN(out.blob, client.FetchBlob(repo, parsed->blob.digest, max_blob_bytes));
    out.manifest = fetched.descriptor;
    out.parsed = *std::move(parsed);
    return out;
  }
  return absl::NotFoundError(
      StrCat("no ", artifact_type, " artifact refers to ", repo.Name(), "@", subject.ToString()));
}

std::string FormatRfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::string NowRfc3339() { return FormatRfc3339(absl::Now()); }

}  // namespace lazysnap::registry

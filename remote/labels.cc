#include "remote/labels.h"

#include "base/status_macros.h"
#include "base/strings.h"
#include "format/layer.h"

namespace lazysnap {

absl::StatusOr<RemoteLayerSpec> ParseRemoteLayerLabels(const std::string& digest,
                                                       const Labels& labels) {
  RemoteLayerSpec spec;
  auto d = Sha256::Parse(digest);
  if (!d.ok()) return absl::InvalidArgumentError(StrCat("layer digest \"", digest, "\": ", d.status().message()));
  spec.digest = *d;
  for (const char* key : {kCriImageRefLabel, kStargzReferenceLabel}) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second.empty()) continue;
    auto ref = registry::Reference::Parse(it->second);
    if (!ref.ok()) {
      return absl::InvalidArgumentError(
          StrCat("label ", key, " \"", it->second, "\": ", ref.status().message()));
    }
    spec.ref = *std::move(ref);
    break;
  }
  auto toc = labels.find(kEstargzTocDigestAnnotation);
  if (toc != labels.end() && !toc->second.empty()) {
    auto t = Sha256::Parse(toc->second);
    if (!t.ok()) {
      return absl::InvalidArgumentError(StrCat("label ", kEstargzTocDigestAnnotation, " \"",
                                               toc->second, "\": ", t.status().message()));
    }
    spec.toc_digest = *t;
  }
  return spec;
}

}  // namespace lazysnap

#include "remote/labels.h"

#include <initializer_list>
#include <string_view>
#include <utility>

#include "absl/strings/numbers.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "format/layer.h"

namespace lazysnap {
namespace {

// The first non-empty value of `keys`, with its key; nullptr when none.
const std::pair<const std::string, std::string>* FirstOf(
    const Labels& labels, std::initializer_list<const char*> keys) {
  for (const char* key : keys) {
    auto it = labels.find(key);
    if (it != labels.end() && !it->second.empty()) return &*it;
  }
  return nullptr;
}

// "sha256:a,sha256:b,...": stops at the first malformed entry (a truncated list may end
// mid-digest), logging it.
std::vector<Sha256> ParseLayerList(const std::string& key, std::string_view list) {
  std::vector<Sha256> out;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    auto d = Sha256::Parse(item);
    if (!d.ok()) {
      LZ_LOG(kWarning, "label ", key, ": entry ", out.size(), " malformed, list ends there: ",
             d.status().message());
      break;
    }
    out.push_back(*d);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace

absl::StatusOr<RemoteLayerSpec> ParseRemoteLayerLabels(const std::string& digest,
                                                       const Labels& labels) {
  RemoteLayerSpec spec;
  auto d = Sha256::Parse(digest);
  if (!d.ok()) return absl::InvalidArgumentError(StrCat("layer digest \"", digest, "\": ", d.status().message()));
  spec.digest = *d;
  if (const auto* ref_label = FirstOf(labels, {kCriImageRefLabel, kStargzReferenceLabel})) {
    auto ref = registry::Reference::Parse(ref_label->second);
    if (!ref.ok()) {
      return absl::InvalidArgumentError(StrCat("label ", ref_label->first, " \"",
                                               ref_label->second, "\": ", ref.status().message()));
    }
    spec.ref = *std::move(ref);
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
  if (const auto* t = FirstOf(labels, {kLazysnapTocTailSizeAnnotation})) {
    uint64_t n = 0;
    if (absl::SimpleAtoi(t->second, &n) && n > 0) {
      spec.toc_tail_size = n;
    } else {
      LZ_LOG(kWarning, "label ", t->first, " \"", t->second, "\" ignored: not a byte count");
    }
  }
  if (const auto* m = FirstOf(labels, {kCriManifestDigestLabel})) {
    auto md = Sha256::Parse(m->second);
    if (md.ok()) {
      spec.manifest_digest = *md;
    } else {
      LZ_LOG(kWarning, "label ", m->first, " ignored: ", md.status().message());
    }
  }
  if (!spec.manifest_digest && spec.ref && !spec.ref->digest.empty()) {
    auto md = Sha256::Parse(spec.ref->digest);  // validated by Reference::Parse
    if (md.ok()) spec.manifest_digest = *md;
  }
  if (const auto* l = FirstOf(labels, {kCriImageLayersLabel, kStargzLayersLabel})) {
    spec.image_layers = ParseLayerList(l->first, l->second);
  }
  return spec;
}

}  // namespace lazysnap

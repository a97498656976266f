// libFuzzer target: registry answers about referrer artifacts (untrusted). The input is split
// at the first NUL: before it, a referrers index (the referrers API's answer or the tag
// schema's index); after it, an artifact manifest. An accepted manifest must serialize to a
// manifest that parses back to the same subject, blob and type.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "format/oci.h"
#include "registry/artifact.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazysnap;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nul = in.find('\0');
  std::string_view index_bytes = in.substr(0, nul);
  std::string_view manifest_bytes = nul == std::string_view::npos ? in : in.substr(nul + 1);
  auto index = ParseIndex(index_bytes);
  if (index.ok()) (void)registry::NewestReferrer(index->manifests);
  auto m = registry::ParseArtifactManifest(manifest_bytes);
  if (!m.ok()) return 0;
  auto again = registry::ParseArtifactManifest(registry::SerializeArtifactManifest(*m));
  if (!again.ok() || again->subject.digest != m->subject.digest ||
      again->blob.digest != m->blob.digest || again->artifact_type != m->artifact_type) {
    std::abort();
  }
  return 0;
}

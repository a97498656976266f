// libFuzzer target: the Prepare labels of a remote layer (containerd passes them from image
// annotations and CRI, so they are untrusted). The input is split at NUL bytes into the layer
// digest and the values of the labels ParseRemoteLayerLabels reads (the TOC tail size hint
// among them). A parse must not crash,
// and what it returns must be consistent: image_layers parsed from a list keep its order.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "base/log.h"
#include "format/layer.h"
#include "remote/labels.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazysnap;
  SetLogLevel(LogLevel::kError);  // malformed informational labels log warnings
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  while (parts.size() < 7) {
    size_t nul = in.find('\0');
    parts.emplace_back(in.substr(0, nul));
    if (nul == std::string_view::npos) break;
    in.remove_prefix(nul + 1);
  }
  parts.resize(7);
  const char* keys[] = {kCriImageRefLabel,       kStargzReferenceLabel,
                        kEstargzTocDigestAnnotation, kCriManifestDigestLabel,
                        kCriImageLayersLabel,    kLazysnapTocTailSizeAnnotation};
  Labels labels;
  for (int i = 0; i < 6; ++i) {
    if (!parts[i + 1].empty()) labels[keys[i]] = parts[i + 1];
  }
  auto spec = ParseRemoteLayerLabels(parts[0], labels);
  if (!spec.ok()) return 0;
  if (spec->digest.ToString() != parts[0]) std::abort();
  if (spec->toc_tail_size && *spec->toc_tail_size == 0) std::abort();  // a hint is a byte count
  // Every parsed layer is a prefix entry of the list, in order.
  std::string rebuilt;
  for (const Sha256& d : spec->image_layers) {
    if (!rebuilt.empty()) rebuilt += ',';
    rebuilt += d.ToString();
  }
  const std::string& list = labels.count(kCriImageLayersLabel) ? labels[kCriImageLayersLabel] : "";
  if (list.compare(0, rebuilt.size(), rebuilt) != 0) std::abort();
  return 0;
}

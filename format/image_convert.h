// Converting an image between OCI image layouts: every layer of the chosen platform
// manifests becomes seekable (eStargz or zstd:chunked), and the configs (diff_ids),
// manifests and index are rewritten to match. Output manifests, configs and indexes use OCI
// media types, also when the source used Docker schema 2 ones.
//
// Crash safety: every new blob is complete and verified before the destination's index.json
// changes, and index.json is replaced atomically, so a failed or interrupted conversion never
// leaves a tag pointing at missing or partial content (unreferenced blobs may remain).
#ifndef LAZYSNAP_FORMAT_IMAGE_CONVERT_H_
#define LAZYSNAP_FORMAT_IMAGE_CONVERT_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/digest.h"
#include "base/stream.h"
#include "format/convert.h"
#include "format/image_store.h"
#include "format/oci.h"
#include "format/oci_layout.h"

namespace lazysnap {

// Converts one layer; the contract of ConvertLayer (format/convert.h), which is what the
// `lazysnap` tool passes. Called from worker threads, several at once.
using LayerConverter = std::function<absl::StatusOr<ConvertResult>(
    InputStream& in, OutputStream& out, const ConvertOptions& options)>;

// The state of one layer conversion, as reported to ImageConvertOptions::progress.
struct LayerProgress {
  size_t id = 0;             // 0..count-1, one per distinct source layer being converted
  size_t count = 0;
  Sha256 source_digest;
  uint64_t source_size = 0;  // compressed bytes of the source layer
  uint64_t source_read = 0;  // compressed bytes read so far
  uint64_t uncompressed = 0; // uncompressed bytes converted so far
  bool done = false;         // finished (successfully or not)
};

struct ImageConvertOptions {
  // Format, chunk size, level, prioritized files, threads per layer (0: cores / jobs). Its
  // `progress` member is ignored; use `progress` below.
  ConvertOptions layer;
  // Platforms to convert when the source is an index; empty means linux/amd64. Every
  // requested platform must be present. Ignored with `all_platforms`.
  std::vector<Platform> platforms;
  bool all_platforms = false;
  // Layers converted at once; 0 means the number of cores.
  int jobs = 0;
  // Required.
  LayerConverter converter;
  // Optional. Calls are serialized (never concurrent) but come from worker threads.
  std::function<void(const LayerProgress&)> progress;
};

struct LayerConversion {
  Sha256 source_digest;
  int64_t source_size = 0;
  Sha256 digest;  // the layer in the converted manifest
  int64_t size = 0;
  std::string media_type;
  Sha256 diff_id;
  std::optional<Sha256> toc_digest;  // set for converted layers
  bool converted = false;            // false: kept as it was (already seekable, or foreign)
};

struct ManifestConversion {
  Platform platform;  // from the index entry, or the config when the entry has none
  Sha256 source_digest;
  Descriptor manifest;  // the converted manifest
  std::vector<LayerConversion> layers;
};

struct ImageConvertResult {
  Descriptor descriptor;  // what the destination tag points at now (manifest or index)
  std::vector<ManifestConversion> manifests;
  // Prioritized files found in none of the converted layers (likely misspelled).
  std::vector<std::string> missed_prioritized_files;
};

// Converts the image tagged `src_tag` in `src` and tags the result `dst_tag` in `dst` (which
// may be the same layout, or even the same tag). An empty `src_tag` means the layout's only
// image. Errors: NotFound for a missing tag, platform or blob; InvalidArgument for malformed
// manifests, configs or tags; DataLoss for corrupt blobs; whatever the converter returns.
// Thread-safe with respect to other conversions; blocks until done.
absl::StatusOr<ImageConvertResult> ConvertImage(const OciLayout& src, std::string_view src_tag,
                                                const OciLayout& dst, std::string_view dst_tag,
                                                const ImageConvertOptions& options);
// The same between any image stores (format/image_store.h), e.g. registry repositories: the
// destination gets every blob, then the manifests, then the tag (ImageStore::Tag) last.
absl::StatusOr<ImageConvertResult> ConvertImage(const ImageStore& src, std::string_view src_tag,
                                                const ImageStore& dst, std::string_view dst_tag,
                                                const ImageConvertOptions& options);

// The result as compact JSON for scripts: {"digest","mediaType","size","manifests":[{
// "platform","sourceDigest","digest","layers":[{"sourceDigest","digest","size","mediaType",
// "diffID","tocDigest","converted"}]}],"missedPrioritizedFiles":[...]}.
std::string ImageConvertResultToJson(const ImageConvertResult& result);

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_IMAGE_CONVERT_H_

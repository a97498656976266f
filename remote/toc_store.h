// The TOC of a mounted layer, kept in the layer's cache directory so that the layer can be
// mounted again (after a restart) without the registry:
//
//   <layer dir>/toc.json   the uncompressed TOC, exactly as fetched and verified
//   <layer dir>/toc.meta   {"format": "estargz"|"zstd:chunked", "toc_digest": "sha256:...",
//                           "toc_offset": N, "blob_size": N}
//
// Both are written atomically (temporary file + rename), toc.json first.
#ifndef LAZYSNAP_REMOTE_TOC_STORE_H_
#define LAZYSNAP_REMOTE_TOC_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "format/layer.h"

namespace lazysnap {

// Stores `layer`'s TOC in existing directory `dir`. Thread-compatible per directory.
absl::Status SaveToc(const std::string& dir, const SeekableLayer& layer);
// The same with the TOC JSON apart from `layer` (whose toc_json is then ignored).
absl::Status SaveToc(const std::string& dir, const SeekableLayer& layer,
                     std::string_view toc_json);

// Rebuilds the layer from the TOC stored in `dir`. NotFound when none is stored; DataLoss
// when the stored TOC does not hash to the digest recorded with it; the errors of
// OpenLayerFromToc otherwise. Also reports the format through `format` when not null.
absl::StatusOr<std::unique_ptr<SeekableLayer>> LoadToc(const std::string& dir,
                                                       const LayerLimits& limits,
                                                       LayerFormat* format = nullptr);

}  // namespace lazysnap

#endif  // LAZYSNAP_REMOTE_TOC_STORE_H_

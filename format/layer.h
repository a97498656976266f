// Opening a seekable layer (eStargz or zstd:chunked) from a BlobSource: find and check the
// footer, fetch the TOC, verify it, build the LayerIndex; then decode and verify chunks.
#ifndef LAZYSNAP_FORMAT_LAYER_H_
#define LAZYSNAP_FORMAT_LAYER_H_

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/blob_source.h"
#include "base/digest.h"
#include "format/index.h"

namespace lazysnap {

// Annotation keys of the ecosystem.
inline constexpr char kEstargzTocDigestAnnotation[] = "containerd.io/snapshot/stargz/toc.digest";
inline constexpr char kEstargzUncompressedSizeAnnotation[] =
    "io.containers.estargz.uncompressed-size";
inline constexpr char kZstdChunkedManifestChecksumAnnotation[] =
    "io.github.containers.zstd-chunked.manifest-checksum";
inline constexpr char kZstdChunkedManifestPositionAnnotation[] =
    "io.github.containers.zstd-chunked.manifest-position";
inline constexpr char kZstdChunkedTarsplitPositionAnnotation[] =
    "io.github.containers.zstd-chunked.tarsplit-position";
// lazysnap's own, written by `lazysnap image convert`: the bytes from the TOC's first byte to
// the blob's end (eStargz: TOC member and footer; zstd:chunked: manifest, tar-split and footer
// frames), decimal. Under containerd.io/snapshot/ so that containerd passes it to the
// snapshotter's Prepare as a label: one suffix range request of this size then reads footer
// and TOC together. Only a hint: both are verified as ever, and a wrong value costs a request.
inline constexpr char kLazysnapTocTailSizeAnnotation[] =
    "containerd.io/snapshot/lazysnap/toc-tail-size";

// Bounds applied to untrusted layers. Exceeding one is a clear InvalidArgument error.
struct LayerLimits {
  uint64_t max_toc_bytes = 512ull << 20;       // uncompressed TOC JSON
  uint64_t max_entries = 20'000'000;           // TOC entries (files + chunks)
  uint64_t max_chunk_size = 256ull << 20;      // uncompressed bytes of one chunk
  uint64_t max_file_size = 1ull << 42;         // 4 TiB
  uint32_t max_path_depth = 4096;
};

struct OpenOptions {
  // The layer descriptor's annotations. The TOC digest (eStargz) or manifest checksum
  // (zstd:chunked) found here is verified; the zstd:chunked manifest position is used to
  // find the TOC without reading the footer.
  std::map<std::string, std::string> annotations;
  // If set, the TOC must hash to this (in addition to any annotation).
  std::optional<Sha256> expected_toc_digest;
  LayerLimits limits;
};

// A TOC located in a blob (by format/estargz.h or format/zstd_chunked.h), not yet parsed.
struct RawToc {
  LayerFormat format = LayerFormat::kEstargz;
  std::string json;             // the uncompressed TOC JSON
  uint64_t toc_offset = 0;      // blob offset where the TOC's compressed bytes start
};

// An opened seekable layer: its index and what was learned opening it. Immutable, thread-safe.
struct SeekableLayer {
  LayerIndex index;
  Sha256 toc_digest;           // sha256 of the uncompressed TOC JSON
  std::string toc_json;        // the uncompressed TOC, kept so it can be cached locally
  uint64_t blob_size = 0;
};

// Detects the format from the footer (or the annotations) and opens the layer. A blob that
// is neither eStargz nor zstd:chunked is FailedPrecondition "not a seekable layer" (callers
// fall back to a full pull); anything corrupt or malicious is DataLoss/InvalidArgument.
absl::StatusOr<std::unique_ptr<SeekableLayer>> OpenLayer(BlobSource& blob,
                                                         const OpenOptions& options);

// Rebuilds a layer from a TOC cached earlier (no blob access).
absl::StatusOr<std::unique_ptr<SeekableLayer>> OpenLayerFromToc(std::string toc_json,
                                                                 LayerFormat format,
                                                                 uint64_t toc_offset,
                                                                 uint64_t blob_size,
                                                                 const LayerLimits& limits);

// Decompresses one chunk from exactly chunk.compressed_size bytes of blob (`compressed`) into
// `out` (chunk.size bytes) and verifies its digest (its fingerprint under `key`, the index's
// digest_key()). Output larger than declared, a digest mismatch or a broken stream is
// DataLoss; `out` must then be treated as garbage. Thread-safe.
absl::Status DecodeChunk(LayerFormat format, const DigestKey& key, const Chunk& chunk,
                         std::string_view compressed, absl::Span<char> out);

// Reads chunk `chunk` of `index` from `blob`, then DecodeChunk.
absl::Status ReadChunk(BlobSource& blob, const LayerIndex& index, const Chunk& chunk,
                       absl::Span<char> out);

// Reads a whole regular file (tests, tools). Hard links read their target.
absl::StatusOr<std::string> ReadFile(BlobSource& blob, const SeekableLayer& layer, EntryId id);

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_LAYER_H_

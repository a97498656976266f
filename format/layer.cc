// OpenLayer and chunk decoding, common to eStargz and zstd:chunked.
#include "format/layer.h"

#include <zstd.h>
#include <zstd_errors.h>

#include <cstring>

#include "base/status_macros.h"
#include "base/strings.h"
#include "format/estargz.h"
#include "format/toc.h"
#include "format/zstd_chunked.h"

namespace lazysnap {
namespace {

constexpr uint64_t kMaxReadFileBytes = 1ull << 30;

bool HasZstdChunkedAnnotations(const std::map<std::string, std::string>& annotations) {
  return annotations.count(kZstdChunkedManifestPositionAnnotation) > 0 ||
         annotations.count(StrCat(kZstdChunkedLegacyAnnotationPrefix, "manifest-position")) > 0;
}

// Finds the TOC: eStargz footer first, then zstd:chunked (the other way round when the
// annotations already say where a zstd:chunked manifest is: that costs no blob read).
absl::StatusOr<RawToc> FindToc(BlobSource& blob, const OpenOptions& options) {
  const bool zstd_first = HasZstdChunkedAnnotations(options.annotations);
  absl::StatusOr<RawToc> raw = zstd_first ? ReadZstdChunkedToc(blob, options)
                                          : ReadEstargzToc(blob, options);
  if (!absl::IsNotFound(raw.status())) return raw;
  raw = zstd_first ? ReadEstargzToc(blob, options) : ReadZstdChunkedToc(blob, options);
  if (!absl::IsNotFound(raw.status())) return raw;
  return absl::FailedPreconditionError(
      StrCat("not a seekable layer: no eStargz or zstd:chunked footer (", raw.status().message(),
             ")"));
}

// The stargz toc.digest annotation is the sha256 of the uncompressed TOC JSON for both
// formats (stargz-snapshotter's zstd:chunked writer sets it the same way).
absl::Status VerifyTocDigest(const Sha256& digest, const OpenOptions& options) {
  auto it = options.annotations.find(kEstargzTocDigestAnnotation);
  if (it != options.annotations.end()) {
    auto want = Sha256::Parse(it->second);
    if (!want.ok()) {
      return absl::InvalidArgumentError(StrCat("annotation ", kEstargzTocDigestAnnotation,
                                               ": ", want.status().message()));
    }
    if (*want != digest) {
      return absl::DataLossError(StrCat("TOC digest mismatch: annotation says ",
                                        want->ToString(), ", TOC is ", digest.ToString()));
    }
  }
  if (options.expected_toc_digest && *options.expected_toc_digest != digest) {
    return absl::DataLossError(StrCat("TOC digest mismatch: expected ",
                                      options.expected_toc_digest->ToString(), ", TOC is ",
                                      digest.ToString()));
  }
  return absl::OkStatus();
}

absl::Status DecodeZstd(std::string_view compressed, absl::Span<char> out) {
  size_t n = ZSTD_decompress(out.data(), out.size(), compressed.data(), compressed.size());
  if (ZSTD_isError(n)) {
    if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall) {
      return absl::DataLossError(
          StrCat("zstd chunk decompresses to more than its declared ", out.size(), " bytes"));
    }
    return absl::DataLossError(StrCat("corrupt zstd chunk: ", ZSTD_getErrorName(n)));
  }
  if (n != out.size()) {
    return absl::DataLossError(
        StrCat("zstd chunk decompresses to ", n, " bytes, declared ", out.size()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SeekableLayer>> OpenLayer(BlobSource& blob,
                                                         const OpenOptions& options) {
  ASSIGN_OR_RETURN(RawToc raw, FindToc(blob, options));
  Sha256 digest = Sha256::Of(raw.json);
  RETURN_IF_ERROR(VerifyTocDigest(digest, options));
  ASSIGN_OR_RETURN(LayerIndex index,
                   ParseToc(raw.json, raw.format, raw.toc_offset, blob.Size(), options.limits));
  auto layer = std::make_unique<SeekableLayer>();
  layer->index = std::move(index);
  layer->toc_digest = digest;
  layer->toc_json = std::move(raw.json);
  layer->blob_size = blob.Size();
  return layer;
}

absl::StatusOr<std::unique_ptr<SeekableLayer>> OpenLayerFromToc(std::string toc_json,
                                                                 LayerFormat format,
                                                                 uint64_t toc_offset,
                                                                 uint64_t blob_size,
                                                                 const LayerLimits& limits) {
  ASSIGN_OR_RETURN(LayerIndex index, ParseToc(toc_json, format, toc_offset, blob_size, limits));
  auto layer = std::make_unique<SeekableLayer>();
  layer->index = std::move(index);
  layer->toc_digest = Sha256::Of(toc_json);
  layer->toc_json = std::move(toc_json);
  layer->blob_size = blob_size;
  return layer;
}

absl::Status DecodeChunk(LayerFormat format, const DigestKey& key, const Chunk& chunk,
                         std::string_view compressed, absl::Span<char> out) {
  if (out.size() != chunk.size) {
    return absl::InvalidArgumentError(
        StrCat("output buffer of ", out.size(), " bytes for a chunk of ", chunk.size));
  }
  if (chunk.zeros) {
    memset(out.data(), 0, out.size());
  } else {
    if (compressed.size() != chunk.compressed_size) {
      return absl::InvalidArgumentError(StrCat("chunk needs ", chunk.compressed_size,
                                               " compressed bytes, got ", compressed.size()));
    }
    if (format == LayerFormat::kEstargz) {
      RETURN_IF_ERROR(GunzipRange(compressed, chunk.inner_offset, out));
    } else {
      RETURN_IF_ERROR(DecodeZstd(compressed, out));
    }
  }
  if (chunk.has_digest &&
      ChunkDigest::Of(key, Sha256::Of(std::string_view(out.data(), out.size()))) != chunk.digest) {
    return absl::DataLossError(StrCat("chunk digest mismatch at blob offset ",
                                      chunk.compressed_offset, " (want fingerprint ",
                                      chunk.digest.Hex(), ")"));
  }
  return absl::OkStatus();
}

absl::Status ReadChunk(BlobSource& blob, const LayerIndex& index, const Chunk& chunk,
                       absl::Span<char> out) {
  if (chunk.zeros) return DecodeChunk(index.format(), index.digest_key(), chunk, {}, out);
  ASSIGN_OR_RETURN(std::string compressed,
                   ReadRange(blob, chunk.compressed_offset, chunk.compressed_size));
  return DecodeChunk(index.format(), index.digest_key(), chunk, compressed, out);
}

absl::StatusOr<std::string> ReadFile(BlobSource& blob, const SeekableLayer& layer, EntryId id) {
  const LayerIndex& index = layer.index;
  if (id >= index.size()) return absl::InvalidArgumentError(StrCat("no entry ", id));
  EntryId inode = index.entry(id).inode;
  const Entry& e = index.entry(inode);
  if (!S_ISREG(e.mode)) {
    return absl::InvalidArgumentError(StrCat(index.Path(id), " is not a regular file"));
  }
  if (e.size > kMaxReadFileBytes) {
    return absl::ResourceExhaustedError(
        StrCat(index.Path(id), " is ", e.size, " bytes; ReadFile reads at most ", kMaxReadFileBytes));
  }
  std::string data(e.size, '\0');
  for (const Chunk& c : index.ChunksOf(inode)) {
    RETURN_IF_ERROR(ReadChunk(blob, index, c,
                              absl::MakeSpan(data).subspan(c.file_offset, c.size)));
  }
  return data;
}

}  // namespace lazysnap

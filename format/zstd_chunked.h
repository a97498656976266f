// zstd:chunked reader side: finds, verifies and decompresses the TOC ("manifest") and the
// tar-split of a zstd:chunked layer. The layout is specified in format/zstd-chunked.md
// (both the legacy 40-byte and the current 64-byte footer are read). Parsing the TOC JSON into
// a LayerIndex is format/toc.h's job; decoding chunks is format/layer.h's.
//
// Every function here is stateless and thread-safe; blobs are untrusted, every length and
// offset from them is bounded and checked before use.
#ifndef LAZYSNAP_FORMAT_ZSTD_CHUNKED_H_
#define LAZYSNAP_FORMAT_ZSTD_CHUNKED_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/blob_source.h"
#include "base/digest.h"
#include "format/layer.h"

namespace lazysnap {

inline constexpr uint32_t kZstdSkippableFrameMagic = 0x184D2A50;  // stored little-endian
inline constexpr size_t kZstdSkippableHeaderSize = 8;             // magic + u32 LE size
inline constexpr size_t kZstdChunkedFooterSize = 64;              // "GNUlInUx"
inline constexpr size_t kZstdChunkedLegacyFooterSize = 40;        // "GnUlInUx"
inline constexpr char kZstdChunkedFooterMagic[] = "GNUlInUx";
inline constexpr char kZstdChunkedLegacyFooterMagic[] = "GnUlInUx";
inline constexpr uint64_t kZstdChunkedManifestTypeCrfs = 1;
// Bytes at the end of a blob that hold the footer and its skippable frame header.
inline constexpr size_t kZstdChunkedTailSize = kZstdSkippableHeaderSize + kZstdChunkedFooterSize;
// Bytes read from the end of a blob to find the footer: enough to hold most manifests too, so
// that a layer without annotations costs one read, not two.
inline constexpr size_t kZstdChunkedSpeculativeTailSize = 64 << 10;

// Annotation keys not in layer.h: the deprecated tar-split checksum and the legacy prefix.
inline constexpr char kZstdChunkedTarsplitChecksumAnnotation[] =
    "io.github.containers.zstd-chunked.tarsplit-checksum";
inline constexpr char kZstdChunkedLegacyAnnotationPrefix[] = "io.containers.zstd-chunked.";

// Where a zstd:chunked layer keeps its manifest and tar-split (payload offsets, i.e. just past
// each skippable frame header) and how to check them. Lengths of 0 mean "absent" for the
// tar-split.
struct ZstdChunkedLocation {
  uint64_t manifest_offset = 0;
  uint64_t manifest_length = 0;               // compressed
  uint64_t manifest_uncompressed_length = 0;
  uint64_t manifest_type = kZstdChunkedManifestTypeCrfs;
  uint64_t tar_split_offset = 0;              // 0: the layer has no tar-split
  uint64_t tar_split_length = 0;
  uint64_t tar_split_uncompressed_length = 0;
  std::optional<Sha256> manifest_checksum;    // sha256 of the compressed manifest
  std::optional<Sha256> tar_split_checksum;   // deprecated annotation: sha256 of compressed
  bool legacy_footer = false;                 // found through a 40-byte "GnUlInUx" footer
};

// Parses the footer from `tail`, the last min(blob size, kZstdChunkedTailSize) bytes of a
// blob. NotFound when neither footer magic ends `tail` (not zstd:chunked); DataLoss when the
// magic is there but the skippable frame header in front of it is missing or wrong.
// Checksums are left empty (the footer has none).
absl::StatusOr<ZstdChunkedLocation> ParseZstdChunkedFooter(std::string_view tail);

// Encodes a 64-byte footer payload (without its skippable frame header) for `loc`. For
// writers and tests.
std::string EncodeZstdChunkedFooter(const ZstdChunkedLocation& loc);

// Reads the location from layer annotations (io.github.containers.zstd-chunked.* first, then
// the legacy io.containers.zstd-chunked.*). NotFound when there is no manifest-position;
// InvalidArgument when a present annotation is malformed ("offset:length:length:type" with
// decimal integers; "sha256:<hex>" checksums).
absl::StatusOr<ZstdChunkedLocation> ZstdChunkedLocationFromAnnotations(
    const std::map<std::string, std::string>& annotations);

// Finds the location: from the annotations when they carry manifest-position (no blob read),
// else from the footer (one read of the blob's last kZstdChunkedSpeculativeTailSize bytes,
// which ReadZstdChunkedToc reuses when the manifest lies within); the manifest-checksum
// annotation is attached either way. Checks the positions against the blob size and `limits`:
// out-of-blob or overflowing ranges are DataLoss, a manifest larger than max_toc_bytes or an
// unsupported manifest type is InvalidArgument. NotFound when the blob is not zstd:chunked.
absl::StatusOr<ZstdChunkedLocation> LocateZstdChunked(BlobSource& blob,
                                                      const OpenOptions& options);

// Locates, reads, verifies (manifest-checksum, when known: DataLoss on mismatch) and
// decompresses the manifest. Returns the JSON with format kZstdChunked and toc_offset = the
// manifest payload offset. Errors as LocateZstdChunked, plus DataLoss for a broken or
// truncated zstd stream or one that decompresses to any size but the declared one.
absl::StatusOr<RawToc> ReadZstdChunkedToc(BlobSource& blob, const OpenOptions& options);

// Reads and decompresses the tar-split of a located layer (`loc` from LocateZstdChunked).
// `expected` is the TOC's "tarSplitDigest" (sha256 of the compressed tar-split), if any; the
// deprecated annotation checksum in `loc` is verified too. NotFound when the layer has no
// tar-split; InvalidArgument when its declared size exceeds `max_bytes`; DataLoss otherwise.
absl::StatusOr<std::string> ReadZstdChunkedTarSplit(BlobSource& blob,
                                                    const ZstdChunkedLocation& loc,
                                                    std::optional<Sha256> expected,
                                                    uint64_t max_bytes);

// One record of a tar-split stream (vbatts/tar-split "storage" JSON lines).
struct TarSplitEntry {
  enum Type : int { kFile = 1, kSegment = 2 };
  Type type = kSegment;
  std::string name;      // kFile: the file's name (from name or base64 name_raw)
  uint64_t size = 0;     // kFile: bytes of file content that follow in the tar
  std::string payload;   // kSegment: raw tar bytes; kFile: CRC-64 of the content (8 bytes)
  uint64_t position = 0;
};

// Calls `fn` for each record of `tar_split` in order, stopping at (and returning) the first
// error `fn` returns. Malformed lines are InvalidArgument naming the line. The entries passed
// to `fn` live only during the call.
absl::Status ForEachTarSplitEntry(std::string_view tar_split,
                                  const std::function<absl::Status(const TarSplitEntry&)>& fn);

// Decompresses `compressed` (one or more zstd frames; skippable frames are skipped) into
// exactly `expected_size` bytes. More output than that, less, a corrupt or truncated stream
// are DataLoss; `what` names the object in messages. Memory grows with the real output, not
// with `expected_size`.
absl::StatusOr<std::string> DecompressZstdExact(std::string_view compressed,
                                                uint64_t expected_size, std::string_view what);

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_ZSTD_CHUNKED_H_

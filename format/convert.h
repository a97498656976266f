// Converting a layer (tar, tar.gz or tar.zst) into a seekable one (eStargz or zstd:chunked).
#ifndef LAZYSNAP_FORMAT_CONVERT_H_
#define LAZYSNAP_FORMAT_CONVERT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/digest.h"
#include "base/stream.h"
#include "format/index.h"

namespace lazysnap {

struct ConvertOptions {
  LayerFormat format = LayerFormat::kEstargz;
  // Uncompressed bytes per chunk of a regular file (>= 4096). See format/writer.md for the
  // measurement behind the default.
  uint32_t chunk_size = 256u << 10;
  // Compression level: gzip 1..12 (libdeflate) for eStargz, zstd 1..19 for zstd:chunked;
  // 0 picks the format's default.
  int level = 0;
  // Paths (as in the tar, normalized) to put first, in this order, followed by
  // `.prefetch.landmark`. Empty: a `.no.prefetch.landmark` is written instead.
  std::vector<std::string> prioritized_files;
  // Compression threads; 0 = all cores (at most 64).
  int threads = 0;
  // Directory for the spool files (unlinked, gone when the conversion ends): the
  // uncompressed input and, while compressing during the read, the output. "" = $TMPDIR or
  // /tmp. It needs room for the uncompressed layer plus the converted one.
  std::string temp_dir;
  // Called now and then (from the calling thread) with the uncompressed bytes converted so
  // far, i.e. written to the output; the input is read and spooled first (count the source
  // bytes read for that phase). Ends at ConvertResult::uncompressed_size. May be empty.
  std::function<void(uint64_t)> progress;
};

struct ConvertResult {
  Sha256 blob_digest;           // digest of the compressed output (the OCI layer digest)
  uint64_t blob_size = 0;
  Sha256 diff_id;               // digest of the uncompressed output tar (config diff_ids)
  uint64_t uncompressed_size = 0;
  Sha256 toc_digest;            // sha256 of the uncompressed TOC JSON (both formats)
  std::string media_type;       // application/vnd.oci.image.layer.v1.tar+gzip or +zstd
  // Annotations to put on the layer's descriptor (TOC digest, uncompressed size, and for
  // zstd:chunked the manifest and tar-split positions and checksum).
  std::map<std::string, std::string> annotations;
  // Prioritized files not found in this layer (not an error: they may be in another layer).
  std::vector<std::string> missed_prioritized_files;
};

// Reads the layer from `in` (compression detected from its magic bytes), writes the seekable
// layer to `out` (neither owned; `out` is not closed). The output is deterministic for the
// same input and options (whatever the thread count). Errors: a malformed input layer is
// InvalidArgument/DataLoss (Unimplemented for GNU sparse files), bad options
// InvalidArgument, write failures as the stream reports. Memory stays bounded (a few chunks
// per thread plus the TOC); the uncompressed input is spooled to `temp_dir`.
// Layout details: format/writer.md.
absl::StatusOr<ConvertResult> ConvertLayer(InputStream& in, OutputStream& out,
                                           const ConvertOptions& options);

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_CONVERT_H_

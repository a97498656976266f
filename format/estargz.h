// eStargz (and legacy stargz) layers: the footer that locates the TOC, and reading the TOC
// out of a blob. The format as lazysnap implements it is specified in format/estargz.md.
//
// Layout of an eStargz blob (a valid tar.gz, one gzip member per chunk/header group):
//   [gzip members: tar headers and file data] [gzip member: tar with stargz.index.json]
//   [footer: an empty gzip member whose Extra field holds "%016xSTARGZ" % toc_offset]
#ifndef LAZYSNAP_FORMAT_ESTARGZ_H_
#define LAZYSNAP_FORMAT_ESTARGZ_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/blob_source.h"
#include "format/layer.h"

namespace lazysnap {

inline constexpr size_t kEstargzFooterSize = 51;        // eStargz: Extra = "SG" subfield
inline constexpr size_t kLegacyStargzFooterSize = 47;   // stargz (CRFS): Extra = raw payload
inline constexpr char kEstargzTocTarName[] = "stargz.index.json";
inline constexpr char kPrefetchLandmark[] = ".prefetch.landmark";
inline constexpr char kNoPrefetchLandmark[] = ".no.prefetch.landmark";

// The 51-byte eStargz footer for a TOC starting at `toc_offset`, byte-identical to the one
// containerd/stargz-snapshotter's estargz package writes. Pure function, thread-safe.
std::string EncodeEstargzFooter(uint64_t toc_offset);

struct EstargzFooter {
  uint64_t toc_offset = 0;
  size_t footer_size = 0;  // kEstargzFooterSize or kLegacyStargzFooterSize
};

// Parses the footer at the end of `tail` (the last bytes of a blob, at least 47 of them):
// first as an eStargz footer (last 51 bytes), then as a legacy stargz footer (last 47).
// NotFound when neither matches (not an eStargz blob). Does not check toc_offset against
// the blob size (ReadEstargzToc does). Untrusted input; thread-safe.
absl::StatusOr<EstargzFooter> ParseEstargzFooter(std::string_view tail);

// Reads the footer and the TOC of an eStargz blob: the gzip member at [toc_offset,
// size - footer) holding a tar whose first member is stargz.index.json. NotFound when the
// blob has no eStargz footer (the caller tries zstd:chunked next); DataLoss/InvalidArgument
// for a corrupt or oversized TOC (bounded by options.limits.max_toc_bytes). Does not verify
// the TOC digest (OpenLayer does). One or two reads of `blob`: the tail read usually holds
// a small TOC too. Thread-safe if `blob` is.
absl::StatusOr<RawToc> ReadEstargzToc(BlobSource& blob, const OpenOptions& options);

// Decompresses the gzip member starting at `compressed[0]`, discards its first `skip` bytes
// and fills all of `out` with the bytes that follow. The member may continue past them (tar
// padding, following headers): that is not an error. A broken stream or too little data is
// DataLoss. Thread-safe.
absl::Status GunzipRange(std::string_view compressed, uint64_t skip, absl::Span<char> out);

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_ESTARGZ_H_

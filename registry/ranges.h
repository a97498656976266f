// Parsers for HTTP range answers (untrusted input): Content-Range values and
// multipart/byteranges bodies. Pure functions; fuzzed by ranges_fuzz.cc.
#ifndef LAZYSNAP_REGISTRY_RANGES_H_
#define LAZYSNAP_REGISTRY_RANGES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace lazysnap::registry {

// "bytes FIRST-LAST/TOTAL" (TOTAL may be "*": nullopt).
struct ContentRange {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
  std::optional<uint64_t> total;
  uint64_t length() const { return last - first + 1; }
};

// Parses a Content-Range header value. InvalidArgument for anything else (last < first,
// last >= total, overflow, "bytes */N").
absl::StatusOr<ContentRange> ParseContentRange(std::string_view value);

// The boundary parameter of a "multipart/byteranges; boundary=X" Content-Type, or nullopt
// when the type is not multipart/byteranges.
std::optional<std::string> ByterangesBoundary(std::string_view content_type);

struct BodyPart {
  ContentRange range;
  std::string_view data;  // points into the body passed to ParseByteranges
};

// Splits a multipart/byteranges body into its parts. Each part's length comes from its
// Content-Range; a part running past the body, a missing Content-Range, or a missing
// delimiter is DataLoss (a truncated or corrupt answer).
absl::StatusOr<std::vector<BodyPart>> ParseByteranges(std::string_view body,
                                                      std::string_view boundary);

}  // namespace lazysnap::registry

#endif  // LAZYSNAP_REGISTRY_RANGES_H_

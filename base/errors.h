// Conversions between errno and absl::Status. errno appears only at system-call boundaries
// (here) and at the FUSE boundary (fusefs/), never as a return value of lazysnap's own helpers.
#ifndef LAZYSNAP_BASE_ERRORS_H_
#define LAZYSNAP_BASE_ERRORS_H_

#include <string_view>

#include "absl/status/status.h"

namespace lazysnap {

// A Status whose code fits `err` (ENOENT→NotFound, EACCES→PermissionDenied, ENOSPC→
// ResourceExhausted, ...) and whose message is "<what>: <strerror>".
absl::Status ErrnoToStatus(int err, std::string_view what);

// `s` with "<what>: " before its message, its code kept; an OK `s` is returned as it is.
absl::Status Annotate(const absl::Status& s, std::string_view what);

// The errno a FUSE reply should carry for `status` (NotFound→ENOENT, DataLoss→EIO, ...).
int StatusToErrno(const absl::Status& status);

}  // namespace lazysnap

#endif  // LAZYSNAP_BASE_ERRORS_H_

#include "base/errors.h"

#include <cerrno>
#include <cstring>

#include "base/strings.h"

namespace lazysnap {

absl::Status Annotate(const absl::Status& s, std::string_view what) {
  if (s.ok()) return s;
  return absl::Status(s.code(), StrCat(what, ": ", s.message()));
}

absl::Status ErrnoToStatus(int err, std::string_view what) {
  std::string msg = StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT: return absl::NotFoundError(msg);
    case EEXIST: return absl::AlreadyExistsError(msg);
    case EACCES:
    case EPERM: return absl::PermissionDeniedError(msg);
    case ENOSPC:
    case EDQUOT:
    case ENOMEM: return absl::ResourceExhaustedError(msg);
    case EINVAL:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR: return absl::InvalidArgumentError(msg);
    case ETIMEDOUT: return absl::DeadlineExceededError(msg);
    case EAGAIN:
    case EINTR:
    case ECONNRESET:
    case ECONNREFUSED: return absl::UnavailableError(msg);
    case EIO: return absl::DataLossError(msg);
    default: return absl::UnknownError(msg);
  }
}

int StatusToErrno(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk: return 0;
    case absl::StatusCode::kNotFound: return ENOENT;
    case absl::StatusCode::kAlreadyExists: return EEXIST;
    case absl::StatusCode::kPermissionDenied: return EACCES;
    case absl::StatusCode::kResourceExhausted: return ENOSPC;
    case absl::StatusCode::kInvalidArgument: return EINVAL;
    case absl::StatusCode::kOutOfRange: return EINVAL;
    case absl::StatusCode::kUnimplemented: return ENOSYS;
    case absl::StatusCode::kDeadlineExceeded: return ETIMEDOUT;
    default: return EIO;
  }
}

}  // namespace lazysnap

// Small POSIX file helpers for cache/: whole-buffer pread/pwrite with EINTR and short-count
// handling, fdatasync and directory fsync. Errors are absl::Status naming the path. UniqueFd,
// the owning file descriptor, lives in base/unique_fd.h and is included here for cache/'s users.
#ifndef LAZYSNAP_CACHE_FILE_IO_H_
#define LAZYSNAP_CACHE_FILE_IO_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "base/unique_fd.h"

namespace lazysnap {

// Reads exactly buf.size() bytes at `offset`; hitting end of file is DataLoss.
absl::Status PreadFull(int fd, uint64_t offset, absl::Span<char> buf, std::string_view path);
// Writes all of `data` at `offset`.
absl::Status PwriteFull(int fd, uint64_t offset, std::string_view data, std::string_view path);
// fdatasync(2).
absl::Status DataSync(int fd, std::string_view path);
// fsync(2) of the directory at `dir`, so that entries created or renamed in it are durable.
absl::Status SyncDir(const std::string& dir);

}  // namespace lazysnap

#endif  // LAZYSNAP_CACHE_FILE_IO_H_

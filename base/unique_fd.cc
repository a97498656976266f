#include "base/unique_fd.h"

#include <unistd.h>

namespace lazysnap {

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

void UniqueFd::reset(int fd) {
  if (fd < 0) fd = -1;
  if (fd_ >= 0 && fd_ != fd) ::close(fd_);  // close(2)'s error is not actionable here
  fd_ = fd;
}

}  // namespace lazysnap

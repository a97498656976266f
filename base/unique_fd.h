// An owning file descriptor.
#ifndef LAZYSNAP_BASE_UNIQUE_FD_H_
#define LAZYSNAP_BASE_UNIQUE_FD_H_

namespace lazysnap {

// Owns one file descriptor (or none: -1) and closes it on destruction. Move-only; a moved-from
// UniqueFd owns none. Not thread-safe: one owner at a time, as for the fd itself.
class UniqueFd {
 public:
  UniqueFd() = default;
  // Takes ownership of `fd` (any negative value means none).
  explicit UniqueFd(int fd) : fd_(fd < 0 ? -1 : fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;

  // The fd, still owned; -1 when none.
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership without closing; returns the fd (-1 when none).
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes the fd owned (if any, and if it is not `fd`), then owns `fd`.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_BASE_UNIQUE_FD_H_

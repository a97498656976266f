// The parts of the kernel's FUSE ABI that FUSE passthrough needs and that Debian 12's
// <linux/fuse.h> (6.1 headers) and libfuse 3.14 lack. Values and layouts are the kernel's UAPI
// (include/uapi/linux/fuse.h, protocol 7.40, Linux 6.9+): FUSE_PASSTHROUGH is bit 37 of the
// 64-bit init flags, i.e. bit 5 of fuse_init_out.flags2; max_stack_depth sits where older
// headers have fuse_init_out.unused[0]; fuse_open_out's third word (padding before 7.40) is
// the backing id. Internal to fusefs/.
#ifndef LAZYSNAP_FUSEFS_PASSTHROUGH_ABI_H_
#define LAZYSNAP_FUSEFS_PASSTHROUGH_ABI_H_

#include <sys/ioctl.h>

#include <cstddef>
#include <cstdint>

namespace lazysnap::fuse_abi {

constexpr uint32_t kOpInit = 26;                  // FUSE_INIT
constexpr uint32_t kInitExt = 1u << 30;           // FUSE_INIT_EXT: flags2 is meaningful
constexpr uint32_t kPassthroughFlags2 = 1u << 5;  // FUSE_PASSTHROUGH (1ULL << 37) in flags2
constexpr uint32_t kWritebackCache = 1u << 16;    // FUSE_WRITEBACK_CACHE (excludes passthrough)
constexpr uint32_t kOpenPassthrough = 1u << 7;    // FOPEN_PASSTHROUGH
// The only open flags the kernel takes beside FOPEN_PASSTHROUGH (FOPEN_PASSTHROUGH_MASK in
// fs/fuse/iomode.c): FOPEN_DIRECT_IO, FOPEN_NOFLUSH, FOPEN_PARALLEL_DIRECT_WRITES. With any
// other (FOPEN_KEEP_CACHE!) the open fails with EIO.
constexpr uint32_t kOpenPassthroughMask = kOpenPassthrough | 1u << 0 | 1u << 5 | 1u << 6;

struct InHeader {  // struct fuse_in_header
  uint32_t len, opcode;
  uint64_t unique, nodeid;
  uint32_t uid, gid, pid;
  uint16_t total_extlen, padding;
};
struct OutHeader {  // struct fuse_out_header
  uint32_t len;
  int32_t error;
  uint64_t unique;
};
struct InitIn {  // struct fuse_init_in (7.36+; flags2 only with kInitExt in flags)
  uint32_t major, minor, max_readahead, flags, flags2;
  uint32_t unused[11];
};
struct InitOut {  // struct fuse_init_out (7.40)
  uint32_t major, minor, max_readahead, flags;
  uint16_t max_background, congestion_threshold;
  uint32_t max_write, time_gran;
  uint16_t max_pages, map_alignment;
  uint32_t flags2, max_stack_depth;
  uint32_t unused[6];
};
struct OpenOut {  // struct fuse_open_out (7.40)
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;
};
struct BackingMap {  // struct fuse_backing_map
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};

static_assert(sizeof(InHeader) == 40 && sizeof(OutHeader) == 16);
static_assert(sizeof(InitIn) == 64 && sizeof(InitOut) == 64 && sizeof(OpenOut) == 16);
static_assert(offsetof(InitOut, flags2) == 32 && offsetof(InitOut, max_stack_depth) == 36);
static_assert(sizeof(BackingMap) == 16);

// FUSE_DEV_IOC_MAGIC is 229. BACKING_OPEN returns a backing id (> 0) for the fd; the kernel
// holds its own reference to the file, so the caller may close the fd at once.
constexpr unsigned long kDevIocBackingOpen = _IOW(229, 1, BackingMap);
constexpr unsigned long kDevIocBackingClose = _IOW(229, 2, uint32_t);

}  // namespace lazysnap::fuse_abi

#endif  // LAZYSNAP_FUSEFS_PASSTHROUGH_ABI_H_

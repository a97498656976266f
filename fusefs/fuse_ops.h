// The libfuse low-level operation table of LayerFs (internal to fusefs/). Every handler gets
// its LayerFs from fuse_req_userdata and replies exactly once; none holds a lock across a
// fuse_reply_* call. Statuses become errno here and only here.
#ifndef LAZYSNAP_FUSEFS_FUSE_OPS_H_
#define LAZYSNAP_FUSEFS_FUSE_OPS_H_

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

namespace lazysnap {

// The operations, with userdata = the LayerFs*.
const fuse_lowlevel_ops& LayerFsOps();
// The session I/O of a LayerFs with passthrough (its PassthroughWire; userdata = the LayerFs*).
const fuse_custom_io& LayerFsIo();

}  // namespace lazysnap

#endif  // LAZYSNAP_FUSEFS_FUSE_OPS_H_

// Running a workload chrooted into an unpacked image (image/rootfs.h) while recording which of
// the image's files it opens, in first-open order: what `lazysnap image optimize` puts first
// in each converted layer.
//
// Recording is fanotify (FAN_MARK_MOUNT on a bind mount of the root made for the run;
// FAN_OPEN | FAN_OPEN_EXEC; the path of each event's descriptor read back from
// /proc/self/fd). It sees every open by every process of the workload, whatever reads the
// files (read, mmap, exec) and whatever cache is in use; /proc, /dev and /sys inside the root
// are separate mounts and are not recorded. The workload runs as WorkloadOptions::user (the
// image's User; root when empty) in a new PID namespace (PID 1 there: when it exits or is
// killed, everything it started dies with it) with a fresh /proc, and /dev and /sys bound from
// the host.
#ifndef LAZYSNAP_IMAGE_WORKLOAD_H_
#define LAZYSNAP_IMAGE_WORKLOAD_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lazysnap {

// Moves the calling process into a private mount namespace (unshare(CLONE_NEWNS), "/" made
// recursively private), so the mounts RunRecordedWorkload makes are invisible outside and go
// away with the process. Must be called while the process has a single thread (EINVAL
// otherwise); needs CAP_SYS_ADMIN.
absl::Status EnterPrivateMountNamespace();

struct WorkloadOptions {
  std::vector<std::string> argv;  // argv[0] looked up in the PATH of `env` unless it has a '/'
  std::vector<std::string> env;   // KEY=VALUE, the whole environment
  std::string workdir;            // inside the root; "" = "/"
  // The image config's User: "uid[:gid]", or names resolved in the root's /etc/passwd and
  // /etc/group (workload_user.h); "" = root. With a user, supplementary groups are the user's
  // and HOME is set from /etc/passwd unless `env` has one.
  std::string user;
  absl::Duration timeout = absl::InfiniteDuration();  // then the workload is killed
  std::string wait_for;  // when its output contains this, recording stops and it is killed
  int output_fd = 2;     // where its stdout and stderr are copied; -1: dropped
};

struct WorkloadResult {
  // Paths relative to the root ("usr/bin/python3.11"; symlinks resolved, as opened), each
  // once, in the order of their first open. Directories are not included.
  std::vector<std::string> files;
  int exit_code = -1;         // the workload's exit status; -1 when killed by a signal
  int signal = 0;             // the signal that ended it, if any
  bool timed_out = false;     // killed at `timeout`
  bool saw_wait_for = false;  // stopped because `wait_for` appeared
  uint64_t events = 0;        // fanotify events read
  bool overflow = false;      // the kernel dropped events (queue full): `files` may miss some
};

// Runs the workload chrooted into `rootfs` (a directory; the caller must have called
// EnterPrivateMountNamespace) and records what it opens. A workload that fails or is killed
// is not an error (see the result); failing to set up or record is. Blocks until the workload
// has ended; not thread-safe (one at a time per process: the new PID namespace is the caller's
// next child).
absl::StatusOr<WorkloadResult> RunRecordedWorkload(const std::string& rootfs,
                                                   const WorkloadOptions& options);

}  // namespace lazysnap

#endif  // LAZYSNAP_IMAGE_WORKLOAD_H_

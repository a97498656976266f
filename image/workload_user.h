// The user an image's workload runs as: the image config's `User` ("uid", "uid:gid", "name",
// "name:group", mixed), resolved as docker and runc do against the image's own /etc/passwd and
// /etc/group (untrusted input: bounded, never followed out of the root).
#ifndef LAZYSNAP_IMAGE_WORKLOAD_USER_H_
#define LAZYSNAP_IMAGE_WORKLOAD_USER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace lazysnap {

struct WorkloadUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // supplementary: the /etc/group entries listing the user's name
  std::string home;              // from /etc/passwd; "" when the user is not listed there
};

// Resolves `spec` against the texts of /etc/passwd and /etc/group. A numeric user need not be
// listed (gid 0 then, as docker); a user name must be (NotFound otherwise), and gives the
// primary gid and home; a group part (numeric, or a name that must be in `group`) replaces
// the primary gid. An empty spec is root. Malformed lines are skipped; a malformed spec
// (empty part, number above 2^32-2, more than one ':') is InvalidArgument. Pure; thread-safe.
absl::StatusOr<WorkloadUser> ResolveWorkloadUser(std::string_view spec, std::string_view passwd,
                                                 std::string_view group);

// ResolveWorkloadUser with ROOTFS/etc/passwd and ROOTFS/etc/group (a missing file is empty;
// symlinks resolved inside `rootfs`; at most 4 MiB each).
absl::StatusOr<WorkloadUser> ResolveWorkloadUserInRoot(const std::string& rootfs,
                                                       std::string_view spec);

}  // namespace lazysnap

#endif  // LAZYSNAP_IMAGE_WORKLOAD_USER_H_

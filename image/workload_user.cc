#include "image/workload_user.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "absl/strings/numbers.h"
#include "base/errors.h"
#include "base/strings.h"

namespace lazysnap {
namespace {

constexpr size_t kMaxFileBytes = 4 << 20;

std::optional<uint32_t> ParseId(std::string_view s) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  uint64_t v = 0;
  if (!absl::SimpleAtoi(absl::string_view(s.data(), s.size()), &v) || v > 0xfffffffeu) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(v);
}

// The ':'-separated fields of each line of `text` with at least `min_fields`, to `fn`, which
// returns false to stop.
template <typename Fn>
void ForEachRecord(std::string_view text, size_t min_fields, Fn fn) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string_view> f;
    while (true) {
      size_t c = line.find(':');
      f.push_back(line.substr(0, c));
      if (c == std::string_view::npos) break;
      line = line.substr(c + 1);
    }
    if (f.size() < min_fields) continue;
    if (!fn(f)) return;
  }
}

absl::StatusOr<std::string> ReadInRoot(const std::string& rootfs, const char* path) {
  int dir = ::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return ErrnoToStatus(errno, rootfs);
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, dir, path, &how, sizeof(how)));
  int err = errno;
  ::close(dir);
  if (fd < 0) {
    if (err == ENOENT) return std::string();
    return ErrnoToStatus(err, StrCat(rootfs, "/", path));
  }
  std::string out;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = errno;
      ::close(fd);
      return ErrnoToStatus(err, StrCat(rootfs, "/", path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxFileBytes) {
      ::close(fd);
      return absl::FailedPreconditionError(
          StrCat(rootfs, "/", path, ": larger than ", kMaxFileBytes, " bytes"));
    }
  }
  ::close(fd);
  return out;
}

}  // namespace

absl::StatusOr<WorkloadUser> ResolveWorkloadUser(std::string_view spec, std::string_view passwd,
                                                 std::string_view group) {
  WorkloadUser u;
  if (spec.empty()) return u;
  std::string_view user_part = spec, group_part;
  bool has_group = false;
  if (size_t c = spec.find(':'); c != std::string_view::npos) {
    user_part = spec.substr(0, c);
    group_part = spec.substr(c + 1);
    has_group = true;
    if (group_part.empty() || group_part.find(':') != std::string_view::npos) {
      return absl::InvalidArgumentError(StrCat("user \"", spec, "\": not USER[:GROUP]"));
    }
  }
  if (user_part.empty()) {
    return absl::InvalidArgumentError(StrCat("user \"", spec, "\": no user"));
  }
  std::optional<uint32_t> uid = ParseId(user_part);
  bool found = false;
  std::string name;
  ForEachRecord(passwd, 7, [&](const std::vector<std::string_view>& f) {
    std::optional<uint32_t> id = ParseId(f[2]), gid = ParseId(f[3]);
    if (!id || !gid) return true;
    if (uid ? *id != *uid : f[0] != user_part) return true;
    u.uid = *id;
    u.gid = *gid;
    u.home = std::string(f[5]);
    name = std::string(f[0]);
    found = true;
    return false;
  });
  if (!found) {
    if (!uid) {
      return absl::NotFoundError(
          StrCat("user \"", user_part, "\" is not in the image's /etc/passwd"));
    }
    u.uid = *uid;
    u.gid = 0;
  }
  if (has_group) {
    std::optional<uint32_t> gid = ParseId(group_part);
    bool group_found = gid.has_value();
    if (gid) u.gid = *gid;
    if (!gid) {
      ForEachRecord(group, 3, [&](const std::vector<std::string_view>& f) {
        std::optional<uint32_t> id = ParseId(f[2]);
        if (!id || f[0] != group_part) return true;
        u.gid = *id;
        group_found = true;
        return false;
      });
    }
    if (!group_found) {
      return absl::NotFoundError(
          StrCat("group \"", group_part, "\" is not in the image's /etc/group"));
    }
  }
  if (!name.empty()) {
    ForEachRecord(group, 4, [&](const std::vector<std::string_view>& f) {
      std::optional<uint32_t> id = ParseId(f[2]);
      if (!id) return true;
      std::string_view members = f[3];
      while (!members.empty()) {
        size_t comma = members.find(',');
        if (members.substr(0, comma) == name) {
          if (u.groups.size() < 1024) u.groups.push_back(*id);
          break;
        }
        members = comma == std::string_view::npos ? std::string_view() : members.substr(comma + 1);
      }
      return true;
    });
  }
  return u;
}

absl::StatusOr<WorkloadUser> ResolveWorkloadUserInRoot(const std::string& rootfs,
                                                       std::string_view spec) {
  if (spec.empty()) return WorkloadUser();
  absl::StatusOr<std::string> passwd = ReadInRoot(rootfs, "etc/passwd");
  if (!passwd.ok()) return passwd.status();
  absl::StatusOr<std::string> group = ReadInRoot(rootfs, "etc/group");
  if (!group.ok()) return group.status();
  return ResolveWorkloadUser(spec, *passwd, *group);
}

}  // namespace lazysnap

#include "fusefs/mountinfo.h"

#include <sys/sysmacros.h>

#include <cstdlib>

#include "base/status_macros.h"
#include "base/stream.h"
#include "base/strings.h"

namespace lazysnap {
namespace {

// Undoes mountinfo's octal escapes (\040 for space, \011, \012, \134).
std::string Unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' &&
        s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> f;
  size_t i = 0;
  while (i < line.size()) {
    size_t j = line.find(' ', i);
    if (j == std::string_view::npos) j = line.size();
    if (j > i) f.push_back(line.substr(i, j - i));
    i = j + 1;
  }
  return f;
}

}  // namespace

std::vector<MountInfo> ParseMountInfo(std::string_view text) {
  std::vector<MountInfo> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::vector<std::string_view> f = Fields(text.substr(start, end - start));
    start = end + 1;
    // id parent major:minor root mountpoint options [optional...] - fstype source superopts
    size_t sep = 6;
    while (sep < f.size() && f[sep] != "-") sep++;
    if (f.size() < 7 || sep + 1 >= f.size()) continue;
    std::string devs(f[2]);
    size_t colon = devs.find(':');
    if (colon == std::string::npos) continue;
    MountInfo m;
    m.dev = makedev(std::strtoul(devs.c_str(), nullptr, 10),
                    std::strtoul(devs.c_str() + colon + 1, nullptr, 10));
    m.mountpoint = Unescape(f[4]);
    m.fstype = std::string(f[sep + 1]);
    out.push_back(std::move(m));
  }
  return out;
}

absl::StatusOr<std::vector<MountInfo>> ReadMountInfo() {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString("/proc/self/mountinfo"));
  return ParseMountInfo(text);
}

absl::StatusOr<MountInfo> TopMountAt(const std::string& path) {
  ASSIGN_OR_RETURN(std::vector<MountInfo> mounts, ReadMountInfo());
  for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) {
    if (it->mountpoint == path) return *it;
  }
  return absl::NotFoundError(StrCat("nothing is mounted at ", path));
}

}  // namespace lazysnap

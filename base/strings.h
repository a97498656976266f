// String helpers. Debian 12's abseil is built with its own absl::string_view (not an alias of
// std::string_view), so absl::StrCat does not take std::string_view. lazysnap::StrCat does:
// use it everywhere instead of absl::StrCat, and AV() where an absl API wants a string_view.
#ifndef LAZYSNAP_BASE_STRINGS_H_
#define LAZYSNAP_BASE_STRINGS_H_

#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace lazysnap {

inline absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view SV(absl::string_view s) { return std::string_view(s.data(), s.size()); }

namespace strings_internal {
inline absl::string_view Alpha(std::string_view s) { return AV(s); }
template <typename T>
const T& Alpha(const T& v) {
  return v;
}
}  // namespace strings_internal

// absl::StrCat that also accepts std::string_view.
template <typename... Args>
std::string StrCat(const Args&... args) {
  return absl::StrCat(strings_internal::Alpha(args)...);
}
template <typename... Args>
void StrAppend(std::string* out, const Args&... args) {
  absl::StrAppend(out, strings_internal::Alpha(args)...);
}

}  // namespace lazysnap

#endif  // LAZYSNAP_BASE_STRINGS_H_

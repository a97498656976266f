// containerd's filter syntax (github.com/containerd/containerd/filters), used by List/Walk:
//
//   filter    := conjunct ("|" conjunct)*        top-level OR (a lazysnap extension)
//   conjunct  := selector ("," selector)*        AND
//   selector  := fieldpath [operator value]      no operator: the field is present
//   fieldpath := field ("." field)*
//   field     := quoted | [A-Za-z0-9_]+
//   operator  := "==" | "!=" | "~="              "~=" is an unanchored regular-expression search
//   value     := quoted | [^\s,|]+
//   quoted    := "..." with Go escapes; after "~=" also /.../ or |...|
//
// Example: `kind==active,labels."containerd.io/gc.root"`, `parent==sha256:abc|name~=^x`.
// An unquoted value ends at '|' (containerd's does not): quote values that contain one.
// Several filter strings (ListSnapshotsRequest.filters) match when any of them matches.
#ifndef LAZYSNAP_SNAPSHOTTER_FILTER_H_
#define LAZYSNAP_SNAPSHOTTER_FILTER_H_

#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace lazysnap {

// Looks a field path up on the object being matched: its value, or nullopt when absent.
using FieldLookup =
    std::function<std::optional<std::string>(const std::vector<std::string>& fieldpath)>;

// A parsed filter. Immutable after parsing; Match is thread-safe. Copyable.
class Filter {
 public:
  // Parses one filter string. An empty string matches everything. A syntax error or a bad
  // regular expression is InvalidArgument naming the position.
  static absl::StatusOr<Filter> Parse(std::string_view text);
  // Parses several filter strings joined by OR; none at all matches everything.
  static absl::StatusOr<Filter> ParseAny(const std::vector<std::string>& texts);

  bool Match(const FieldLookup& lookup) const;

  enum class Op { kPresent, kEqual, kNotEqual, kMatches };
  struct Selector {
    std::vector<std::string> fieldpath;
    Op op = Op::kPresent;
    std::string value;
    std::shared_ptr<const std::regex> re;  // for kMatches
  };
  // OR of ANDs of selectors. Empty: matches everything.
  const std::vector<std::vector<Selector>>& alternatives() const { return alternatives_; }

 private:
  bool always_ = true;
  std::vector<std::vector<Selector>> alternatives_;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_SNAPSHOTTER_FILTER_H_

#include "snapshotter/filter.h"

#include <cstdint>

#include "absl/status/status.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace lazysnap {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool IsFieldChar(char c) {
  return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
void AppendUtf8(std::string* out, uint32_t r) {
  if (r < 0x80) {
    out->push_back(static_cast<char>(r));
  } else if (r < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (r >> 6)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  } else if (r < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (r >> 12)));
    out->push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (r >> 18)));
    out->push_back(static_cast<char>(0x80 | ((r >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  }
}

// Recursive-descent parser over the raw characters of one filter string.
class Parser {
 public:
  explicit Parser(std::string_view in) : in_(in) {}

  absl::StatusOr<std::vector<std::vector<Filter::Selector>>> Parse() {
    std::vector<std::vector<Filter::Selector>> alternatives;
    while (true) {
      ASSIGN_OR_RETURN(auto conjunct, Conjunct());
      alternatives.push_back(std::move(conjunct));
      SkipSpace();
      if (AtEnd()) break;
      if (Peek() != '|') return Error("unexpected input");
      ++pos_;
    }
    return alternatives;
  }

 private:
  bool AtEnd() const { return pos_ >= in_.size(); }
  char Peek() const { return in_[pos_]; }
  void SkipSpace() {
    while (!AtEnd() && IsSpace(Peek())) ++pos_;
  }
  absl::Status Error(std::string_view msg) const {
    return absl::InvalidArgumentError(
        StrCat("filters: parse error: [", in_, "] at offset ", pos_, ": ", msg));
  }

  absl::StatusOr<std::vector<Filter::Selector>> Conjunct() {
    std::vector<Filter::Selector> selectors;
    while (true) {
      ASSIGN_OR_RETURN(auto sel, Selector());
      selectors.push_back(std::move(sel));
      SkipSpace();
      if (AtEnd() || Peek() != ',') break;
      ++pos_;
    }
    return selectors;
  }

  absl::StatusOr<Filter::Selector> Selector() {
    Filter::Selector sel;
    ASSIGN_OR_RETURN(sel.fieldpath, FieldPath());
    SkipSpace();
    if (AtEnd() || Peek() == ',' || Peek() == '|') return sel;  // presence
    size_t start = pos_;
    while (!AtEnd() && (Peek() == '=' || Peek() == '!' || Peek() == '~')) ++pos_;
    std::string_view op = in_.substr(start, pos_ - start);
    if (op == "==") {
      sel.op = Filter::Op::kEqual;
    } else if (op == "!=") {
      sel.op = Filter::Op::kNotEqual;
    } else if (op == "~=") {
      sel.op = Filter::Op::kMatches;
    } else {
      pos_ = start;
      return Error(op.empty() ? "expected an operator (\"==\"|\"!=\"|\"~=\")"
                              : StrCat("unsupported operator \"", op, "\""));
    }
    ASSIGN_OR_RETURN(sel.value, Value(sel.op == Filter::Op::kMatches));
    if (sel.op == Filter::Op::kMatches) {
      try {
        sel.re = std::make_shared<const std::regex>(sel.value, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        return Error(StrCat("bad regular expression \"", sel.value, "\": ", e.what()));
      }
    }
    return sel;
  }

  absl::StatusOr<std::vector<std::string>> FieldPath() {
    std::vector<std::string> path;
    while (true) {
      ASSIGN_OR_RETURN(auto f, Field());
      path.push_back(std::move(f));
      if (AtEnd() || Peek() != '.') break;
      ++pos_;
    }
    return path;
  }

  absl::StatusOr<std::string> Field() {
    SkipSpace();
    if (AtEnd()) return Error("expected field or quoted");
    if (Peek() == '"') return Quoted(false);
    size_t start = pos_;
    while (!AtEnd() && IsFieldChar(Peek())) ++pos_;
    if (pos_ == start) return Error("expected field or quoted");
    return std::string(in_.substr(start, pos_ - start));
  }

  absl::StatusOr<std::string> Value(bool allow_alt_quotes) {
    SkipSpace();
    if (AtEnd()) return Error("unexpected end of input, expected value or quoted");
    char c = Peek();
    if (c == '"') return Quoted(false);
    if (c == '/' || c == '|') {
      if (!allow_alt_quotes) return Error("invalid quote encountered");
      return Quoted(true);
    }
    size_t start = pos_;
    while (!AtEnd() && !IsSpace(Peek()) && Peek() != ',' && Peek() != '|') ++pos_;
    if (pos_ == start) return Error("expected value or quoted");
    return std::string(in_.substr(start, pos_ - start));
  }

  // A quoted string starting at the current quote character, with Go escapes. In regular
  // expressions (`regex`) unknown escapes such as \d are kept as written.
  absl::StatusOr<std::string> Quoted(bool regex) {
    const char quote = Peek();
    ++pos_;
    std::string out;
    while (true) {
      if (AtEnd() || Peek() == '\n') return Error("quoted literal not terminated");
      char c = in_[pos_++];
      if (c == quote) return out;
      if (c == '\0') return Error("unexpected null");
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (AtEnd()) return Error("quoted literal not terminated");
      char e = in_[pos_++];
      switch (e) {
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'v': out.push_back('\v'); break;
        case '\\': out.push_back('\\'); break;
        case 'x': case 'u': case 'U': {
          int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t v = 0;
          for (int i = 0; i < n; ++i) {
            if (AtEnd() || HexVal(Peek()) < 0) return Error("illegal numeric escape sequence");
            v = v << 4 | static_cast<uint32_t>(HexVal(in_[pos_++]));
          }
          if (e == 'x') {
            out.push_back(static_cast<char>(v));
          } else {
            if (v > 0x10FFFF) return Error("illegal escape sequence");
            AppendUtf8(&out, v);
          }
          break;
        }
        default:
          if (e == quote) {
            out.push_back(e);
          } else if (e >= '0' && e <= '7') {
            uint32_t v = static_cast<uint32_t>(e - '0');
            for (int i = 0; i < 2; ++i) {
              if (AtEnd() || Peek() < '0' || Peek() > '7') return Error("illegal numeric escape sequence");
              v = v << 3 | static_cast<uint32_t>(in_[pos_++] - '0');
            }
            if (v > 255) return Error("illegal numeric escape sequence");
            out.push_back(static_cast<char>(v));
          } else if (regex) {
            out.push_back('\\');
            out.push_back(e);
          } else {
            return Error("illegal escape sequence");
          }
      }
    }
  }

  std::string_view in_;
  size_t pos_ = 0;
};

bool MatchSelector(const Filter::Selector& sel, const FieldLookup& lookup) {
  std::optional<std::string> value = lookup(sel.fieldpath);
  switch (sel.op) {
    case Filter::Op::kPresent:
      return value.has_value();
    case Filter::Op::kEqual:
      return value.has_value() && *value == sel.value;
    case Filter::Op::kNotEqual:
      return value.value_or("") != sel.value;
    case Filter::Op::kMatches:
      return std::regex_search(value.value_or(""), *sel.re);
  }
  return false;
}

}  // namespace

absl::StatusOr<Filter> Filter::Parse(std::string_view text) {
  Filter f;
  if (text.empty()) return f;
  Parser p(text);
  ASSIGN_OR_RETURN(f.alternatives_, p.Parse());
  f.always_ = false;
  return f;
}

absl::StatusOr<Filter> Filter::ParseAny(const std::vector<std::string>& texts) {
  Filter all;
  for (const std::string& t : texts) {
    ASSIGN_OR_RETURN(Filter f, Parse(t));
    if (f.always_) return f;  // one empty filter matches everything
    all.always_ = false;
    for (auto& alt : f.alternatives_) all.alternatives_.push_back(std::move(alt));
  }
  return all;
}

bool Filter::Match(const FieldLookup& lookup) const {
  if (always_) return true;
  for (const auto& conjunct : alternatives_) {
    bool all = true;
    for (const Selector& sel : conjunct) {
      if (!MatchSelector(sel, lookup)) {
        all = false;
        break;
      }
    }
    if (all) return true;
  }
  return false;
}

}  // namespace lazysnap

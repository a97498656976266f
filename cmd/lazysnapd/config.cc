#include "cmd/lazysnapd/config.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>

#define TOML_EXCEPTIONS 1  // Debian's compiled toml++ throws; caught right here
#include <toml++/toml.h>

#include "base/log.h"
#include "base/status_macros.h"
#include "base/stream.h"
#include "base/strings.h"
#include "registry/credentials.h"

namespace lazysnap {
namespace {

absl::Status GetString(const toml::table& t, std::string_view key, std::string_view where,
                       std::string* out) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return absl::OkStatus();
  auto v = n->value<std::string>();
  if (!v || !n->is_string()) {
    return absl::InvalidArgumentError(StrCat("config: ", where, key, ": expected a string"));
  }
  *out = *v;
  return absl::OkStatus();
}

absl::Status GetBool(const toml::table& t, std::string_view key, std::string_view where,
                     bool* out) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return absl::OkStatus();
  if (!n->is_boolean()) {
    return absl::InvalidArgumentError(StrCat("config: ", where, key, ": expected a boolean"));
  }
  *out = *n->value<bool>();
  return absl::OkStatus();
}

absl::Status GetUint(const toml::table& t, std::string_view key, std::string_view where,
                     uint64_t max, uint64_t* out) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return absl::OkStatus();
  auto v = n->value<int64_t>();
  if (!n->is_integer() || !v || *v < 0 || static_cast<uint64_t>(*v) > max) {
    return absl::InvalidArgumentError(
        StrCat("config: ", where, key, ": expected an integer in [0, ", max, "]"));
  }
  *out = static_cast<uint64_t>(*v);
  return absl::OkStatus();
}

// A duration: a number of seconds, or a string absl::ParseDuration takes ("500ms", "1m").
absl::Status GetDuration(const toml::table& t, std::string_view key, std::string_view where,
                         absl::Duration* out) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return absl::OkStatus();
  absl::Duration d;
  if (n->is_integer() || n->is_floating_point()) {
    d = absl::Seconds(*n->value<double>());
  } else if (!n->is_string() || !absl::ParseDuration(*n->value<std::string>(), &d)) {
    return absl::InvalidArgumentError(StrCat("config: ", where, key,
                                             ": expected seconds or a duration like \"500ms\""));
  }
  if (d <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(StrCat("config: ", where, key, ": must be positive"));
  }
  *out = d;
  return absl::OkStatus();
}

absl::Status ParsePrefetch(const toml::table& p, DaemonConfig* c) {
  PrefetchConfig& f = c->prefetch;
  constexpr std::string_view w = "prefetch.";
  RETURN_IF_ERROR(GetBool(p, "record", w, &f.record));
  RETURN_IF_ERROR(GetDuration(p, "record_window", w, &f.recording.window));
  RETURN_IF_ERROR(GetDuration(p, "quiet_period", w, &f.recording.quiet));
  RETURN_IF_ERROR(GetBool(p, "replay", w, &f.replay));
  RETURN_IF_ERROR(GetBool(p, "landmark", w, &f.landmark));
  RETURN_IF_ERROR(GetBool(p, "background_fetch", w, &f.background_fetch));
  RETURN_IF_ERROR(GetBool(p, "registry_lookup", w, &f.registry_lookup));
  uint64_t workers = static_cast<uint64_t>(f.scheduler.workers);
  RETURN_IF_ERROR(GetUint(p, "workers", w, 64, &workers));
  if (workers == 0) return absl::InvalidArgumentError("config: prefetch.workers: must be >= 1");
  f.scheduler.workers = static_cast<int>(workers);
  RETURN_IF_ERROR(GetUint(p, "max_gap_bytes", w, 1ull << 30, &f.scheduler.max_gap_bytes));
  RETURN_IF_ERROR(GetUint(p, "max_request_bytes", w, 1ull << 30, &f.scheduler.max_request_bytes));
  if (f.scheduler.max_request_bytes == 0) {
    return absl::InvalidArgumentError("config: prefetch.max_request_bytes: must be >= 1");
  }
  RETURN_IF_ERROR(GetUint(p, "bandwidth_limit", w, 1ull << 40, &f.scheduler.bandwidth_limit));
  for (const auto& [k, v] : p) {
    static constexpr std::string_view kKnown[] = {
        "record", "record_window", "quiet_period", "replay", "landmark", "background_fetch",
        "registry_lookup", "workers", "max_gap_bytes", "max_request_bytes", "bandwidth_limit"};
    if (std::find(std::begin(kKnown), std::end(kKnown), k.str()) == std::end(kKnown)) {
      c->unknown_keys.push_back(StrCat("prefetch.", k.str()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DaemonConfig> ParseDaemonConfig(std::string_view toml_text) {
  DaemonConfig c;
  toml::table t;
  try {
    t = toml::parse(toml_text);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(StrCat("config: line ", e.source().begin.line, ": ",
                                             e.description()));
  }
  RETURN_IF_ERROR(GetString(t, "root", "", &c.root));
  RETURN_IF_ERROR(GetString(t, "address", "", &c.address));
  RETURN_IF_ERROR(GetString(t, "log_level", "", &c.log_level));
  if (const toml::node* n = t.get("lazy_pull")) {
    if (!n->is_boolean()) return absl::InvalidArgumentError("config: lazy_pull: expected a boolean");
    c.lazy_pull = *n->value<bool>();
  }
  LogLevel level;
  if (!ParseLogLevel(c.log_level, &level)) {
    return absl::InvalidArgumentError(StrCat("config: log_level: unknown level \"", c.log_level,
                                             "\" (debug, info, warn, error)"));
  }
  for (const auto& [k, v] : t) {
    std::string_view key = k.str();
    if (key == "root" || key == "address" || key == "log_level" || key == "lazy_pull") continue;
    if (key == "registry" || key == "cache" || key == "prefetch" || key == "fuse") {
      if (!v.is_table()) {
        return absl::InvalidArgumentError(StrCat("config: [", key, "] must be a table"));
      }
      continue;
    }
    c.unknown_keys.push_back(std::string(key));
  }
  if (const toml::table* reg = t["registry"].as_table()) {
    RETURN_IF_ERROR(GetString(*reg, "config_path", "registry.", &c.registry_config_path));
    if (reg->contains("docker_config")) {
      std::string path;
      RETURN_IF_ERROR(GetString(*reg, "docker_config", "registry.", &path));
      c.docker_config = path;
    }
    if (const toml::node* auths = reg->get("auths")) {
      if (!auths->is_table()) {
        return absl::InvalidArgumentError("config: [registry.auths] must be a table");
      }
      registry::CredentialStore check;  // the same parse lazysnapd's registry client uses
      RETURN_IF_ERROR(check.AddLazysnapConfig(toml_text));
      c.registry_auths_toml = std::string(toml_text);
    }
    for (const auto& [k, v] : *reg) {
      std::string_view key = k.str();
      if (key != "config_path" && key != "docker_config" && key != "auths") {
        c.unknown_keys.push_back(StrCat("registry.", key));
      }
    }
  }
  if (const toml::table* cache = t["cache"].as_table()) {
    if (const toml::node* n = cache->get("max_bytes")) {
      auto v = n->value<int64_t>();
      if (!n->is_integer() || !v || *v < 0) {
        return absl::InvalidArgumentError("config: cache.max_bytes: expected an integer >= 0");
      }
      c.cache_max_bytes = static_cast<uint64_t>(*v);
    }
    for (const auto& [k, v] : *cache) {
      if (k.str() != "max_bytes") c.unknown_keys.push_back(StrCat("cache.", k.str()));
    }
  }
  if (const toml::table* prefetch = t["prefetch"].as_table()) {
    RETURN_IF_ERROR(ParsePrefetch(*prefetch, &c));
  }
  if (const toml::table* fuse = t["fuse"].as_table()) {
    RETURN_IF_ERROR(GetUint(*fuse, "passthrough_min_bytes", "fuse.", 1ull << 50,
                            &c.fuse_passthrough_min_bytes));
    for (const auto& [k, v] : *fuse) {
      if (k.str() != "passthrough_min_bytes") c.unknown_keys.push_back(StrCat("fuse.", k.str()));
    }
  }
  return c;
}

absl::StatusOr<DaemonConfig> LoadDaemonConfig(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  auto c = ParseDaemonConfig(text);
  if (!c.ok()) return absl::Status(c.status().code(), StrCat(path, ": ", c.status().message()));
  return c;
}

}  // namespace lazysnap

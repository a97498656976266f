#include "registry/hosts.h"

#include <sys/stat.h>

#include <algorithm>
#include <exception>
#include <optional>

#define TOML_EXCEPTIONS 1
#include <toml++/toml.h>

#include "base/status_macros.h"
#include "base/stream.h"
#include "base/strings.h"
#include "registry/reference.h"

namespace lazysnap::registry {
namespace {

absl::Status Bad(std::string_view what) {
  return absl::InvalidArgumentError(StrCat("hosts.toml: ", what));
}

std::string Resolve(std::string_view dir, std::string_view path) {
  if (path.empty() || path.front() == '/' || dir.empty()) return std::string(path);
  return StrCat(dir, "/", path);
}

// Splits "scheme://host[:port][/path]" (scheme optional, default https).
absl::Status ParseUrl(std::string_view url, bool override_path, RegistryEndpoint* ep) {
  std::string_view rest = url;
  if (size_t p = rest.find("://"); p != std::string_view::npos) {
    ep->scheme = std::string(rest.substr(0, p));
    rest = rest.substr(p + 3);
  } else {
    ep->scheme = "https";
  }
  if (ep->scheme != "http" && ep->scheme != "https") return Bad(StrCat("bad scheme in ", url));
  size_t slash = rest.find('/');
  ep->host = std::string(rest.substr(0, slash));
  if (ep->host.empty() || ep->host.find_first_of(" \t?#@") != std::string::npos) {
    return Bad(StrCat("bad host in ", url));
  }
  std::string path = slash == std::string_view::npos ? "" : std::string(rest.substr(slash));
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path == "/") path.clear();
  if (path.empty()) {
    ep->path = "/v2";
  } else if (override_path || (path.size() >= 3 && path.substr(path.size() - 3) == "/v2")) {
    ep->path = path;
  } else {
    ep->path = path + "/v2";
  }
  return absl::OkStatus();
}

// Applies the per-host fields of `t` (capabilities, ca, client, skip_verify, header).
absl::Status ApplyFields(const toml::table& t, std::string_view dir, RegistryEndpoint* ep) {
  if (const toml::node* caps = t.get("capabilities")) {
    const toml::array* arr = caps->as_array();
    if (arr == nullptr) return Bad("capabilities must be an array");
    ep->capabilities = 0;
    for (const toml::node& c : *arr) {
      std::optional<std::string> s = c.value<std::string>();
      if (!s) return Bad("capabilities must be strings");
      if (*s == "pull")
        ep->capabilities |= kCapPull;
      else if (*s == "resolve")
        ep->capabilities |= kCapResolve;
      else if (*s == "push")
        ep->capabilities |= kCapPush;
      else
        return Bad(StrCat("unknown capability ", *s));
    }
  }
  if (const toml::node* ca = t.get("ca")) {
    if (auto s = ca->value<std::string>()) {
      ep->tls.ca_file = Resolve(dir, *s);
    } else if (const toml::array* arr = ca->as_array(); arr != nullptr && !arr->empty()) {
      // Several CA files: lazysnap trusts the first; bundle them into one PEM to trust more.
      auto first = (*arr)[0].value<std::string>();
      if (!first) return Bad("ca must be a string or strings");
      ep->tls.ca_file = Resolve(dir, *first);
    } else {
      return Bad("ca must be a string or an array of strings");
    }
  }
  if (const toml::node* client = t.get("client")) {
    if (auto s = client->value<std::string>()) {
      ep->tls.client_cert = Resolve(dir, *s);
    } else if (const toml::array* arr = client->as_array(); arr != nullptr && !arr->empty()) {
      const toml::node& first = (*arr)[0];
      if (auto s = first.value<std::string>()) {
        ep->tls.client_cert = Resolve(dir, *s);
      } else if (const toml::array* pair = first.as_array(); pair != nullptr && !pair->empty()) {
        auto cert = (*pair)[0].value<std::string>();
        if (!cert) return Bad("client pair must hold strings");
        ep->tls.client_cert = Resolve(dir, *cert);
        if (pair->size() > 1) {
          auto key = (*pair)[1].value<std::string>();
          if (!key) return Bad("client pair must hold strings");
          ep->tls.client_key = Resolve(dir, *key);
        }
      } else {
        return Bad("client must be a path, paths or [cert, key] pairs");
      }
    } else {
      return Bad("client must be a path, paths or [cert, key] pairs");
    }
  }
  if (const toml::node* sv = t.get("skip_verify")) {
    auto b = sv->value<bool>();
    if (!b) return Bad("skip_verify must be a boolean");
    ep->tls.skip_verify = *b;
  }
  if (const toml::node* h = t.get("header")) {
    const toml::table* ht = h->as_table();
    if (ht == nullptr) return Bad("header must be a table");
    for (const auto& [k, v] : *ht) {
      if (auto s = v.value<std::string>()) {
        ep->headers.emplace_back(std::string(k.str()), *s);
      } else if (const toml::array* arr = v.as_array()) {
        for (const toml::node& e : *arr) {
          auto es = e.value<std::string>();
          if (!es) return Bad("header values must be strings");
          ep->headers.emplace_back(std::string(k.str()), *es);
        }
      } else {
        return Bad("header values must be strings");
      }
    }
  }
  return absl::OkStatus();
}

bool OverridePath(const toml::table& t) { return t["override_path"].value_or(false); }

absl::StatusOr<std::vector<RegistryEndpoint>> ParseTable(std::string_view domain,
                                                         const toml::table& root,
                                                         std::string_view dir) {
  std::vector<RegistryEndpoint> out;
  if (const toml::node* hosts = root.get("host")) {
    const toml::table* ht = hosts->as_table();
    if (ht == nullptr) return Bad("host must be a table");
    std::vector<std::pair<uint32_t, RegistryEndpoint>> ordered;
    for (const auto& [url, node] : *ht) {
      const toml::table* t = node.as_table();
      if (t == nullptr) return Bad(StrCat("host.\"", url.str(), "\" must be a table"));
      RegistryEndpoint ep;
      ep.capabilities = kCapPull | kCapResolve;
      RETURN_IF_ERROR(ParseUrl(url.str(), OverridePath(*t), &ep));
      RETURN_IF_ERROR(ApplyFields(*t, dir, &ep));
      // toml++ tables are sorted by key; the file's order is the mirrors' priority.
      ordered.emplace_back(url.source().begin.line, std::move(ep));
    }
    std::stable_sort(ordered.begin(), ordered.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [line, ep] : ordered) out.push_back(std::move(ep));
  }
  RegistryEndpoint origin = DefaultEndpoints(domain).front();
  if (const toml::node* server = root.get("server")) {
    auto s = server->value<std::string>();
    if (!s) return Bad("server must be a string");
    RETURN_IF_ERROR(ParseUrl(*s, OverridePath(root), &origin));
  }
  RETURN_IF_ERROR(ApplyFields(root, dir, &origin));
  origin.is_origin = true;
  out.push_back(std::move(origin));
  return out;
}

}  // namespace

absl::StatusOr<std::vector<RegistryEndpoint>> ParseHostsToml(std::string_view domain,
                                                             std::string_view text,
                                                             std::string_view dir) {
  try {
    toml::table root = toml::parse(text);
    return ParseTable(domain, root, dir);
  } catch (const toml::parse_error& e) {
    return Bad(StrCat("line ", e.source().begin.line, ": ", e.description()));
  } catch (const std::exception& e) {
    return Bad(e.what());
  }
}

std::vector<RegistryEndpoint> DefaultEndpoints(std::string_view domain, bool plain_http) {
  RegistryEndpoint ep;
  ep.host = DefaultRegistryHost(domain);
  ep.scheme = plain_http || IsLocalhost(domain) ? "http" : "https";
  ep.is_origin = true;
  return {ep};
}

absl::StatusOr<std::vector<RegistryEndpoint>> LoadEndpoints(std::string_view config_dir,
                                                            std::string_view domain,
                                                            const PlainHttp& plain_http) {
  const bool plain = plain_http.Applies(domain);
  if (!config_dir.empty()) {
    for (std::string_view sub : {domain, std::string_view("_default")}) {
      if (plain && sub != domain) break;
      std::string dir = StrCat(config_dir, "/", sub);
      std::string path = dir + "/hosts.toml";
      struct stat st;
      if (::stat(path.c_str(), &st) != 0) continue;
      ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
      auto eps = ParseHostsToml(domain, text, dir);
      if (!eps.ok()) return absl::InvalidArgumentError(StrCat(path, ": ", eps.status().message()));
      return eps;
    }
  }
  return DefaultEndpoints(domain, plain);
}

std::vector<RegistryEndpoint> WithCapability(const std::vector<RegistryEndpoint>& all,
                                             Capability capability) {
  std::vector<RegistryEndpoint> out;
  for (const auto& ep : all) {
    if (ep.capabilities & capability) out.push_back(ep);
  }
  return out;
}

}  // namespace lazysnap::registry

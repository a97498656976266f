#include "registry/credentials.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include <nlohmann/json.hpp>

#define TOML_EXCEPTIONS 1
#include <toml++/toml.h>

#include "absl/strings/escaping.h"
#include "base/status_macros.h"
#include "base/stream.h"
#include "base/strings.h"

namespace lazysnap::registry {

std::string NormalizeCredentialHost(std::string_view key) {
  std::string_view h = key;
  if (size_t p = h.find("://"); p != std::string_view::npos) h = h.substr(p + 3);
  h = h.substr(0, h.find('/'));
  if (h == "index.docker.io" || h == "registry-1.docker.io" || h == "docker.io") {
    return "docker.io";
  }
  return std::string(h);
}

std::string DefaultDockerConfigPath() {
  if (const char* d = std::getenv("DOCKER_CONFIG"); d != nullptr && *d != '\0') {
    return StrCat(d, "/config.json");
  }
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') {
    return StrCat(h, "/.docker/config.json");
  }
  struct passwd pw;
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(::getuid(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
      pw.pw_dir != nullptr && *pw.pw_dir != '\0') {
    return StrCat(pw.pw_dir, "/.docker/config.json");
  }
  return "";
}

absl::Status CredentialStore::AddDockerConfig(std::string_view json) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("docker config: not a JSON object");
  }
  auto auths = doc.find("auths");
  if (auths == doc.end()) return absl::OkStatus();
  if (!auths->is_object()) return absl::InvalidArgumentError("docker config: auths not an object");
  for (auto it = auths->begin(); it != auths->end(); ++it) {
    const std::string host = NormalizeCredentialHost(it.key());
    const nlohmann::json& e = it.value();
    if (!e.is_object()) return absl::InvalidArgumentError(StrCat("docker config: ", host));
    Credentials c;
    auto str = [&](const char* field) -> std::string {
      auto f = e.find(field);
      return f != e.end() && f->is_string() ? f->get<std::string>() : std::string();
    };
    c.username = str("username");
    c.password = str("password");
    c.identity_token = str("identitytoken");
    if (std::string auth = str("auth"); !auth.empty()) {
      std::string decoded;
      if (!absl::Base64Unescape(auth, &decoded)) {
        return absl::InvalidArgumentError(StrCat("docker config: bad base64 auth for ", host));
      }
      size_t colon = decoded.find(':');
      if (colon == std::string::npos) {
        return absl::InvalidArgumentError(
            StrCat("docker config: auth for ", host, " is not user:password"));
      }
      c.username = decoded.substr(0, colon);
      c.password = decoded.substr(colon + 1);
    }
    if (c.username.empty() && c.password.empty() && c.identity_token.empty()) continue;
    by_host_[host] = std::move(c);
  }
  return absl::OkStatus();
}

absl::Status CredentialStore::AddDockerConfigFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  absl::Status s = AddDockerConfig(text);
  if (!s.ok()) return absl::InvalidArgumentError(StrCat(path, ": ", s.message()));
  return absl::OkStatus();
}

absl::Status CredentialStore::AddLazysnapConfig(std::string_view toml_text) {
  toml::table root;
  try {
    root = toml::parse(toml_text);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(
        StrCat("lazysnap config: line ", e.source().begin.line, ": ", e.description()));
  }
  const toml::table* auths = root["registry"]["auths"].as_table();
  if (auths == nullptr) return absl::OkStatus();
  for (const auto& [key, node] : *auths) {
    const std::string host = NormalizeCredentialHost(key.str());
    const toml::table* t = node.as_table();
    if (t == nullptr) {
      return absl::InvalidArgumentError(StrCat("lazysnap config: registry.auths.", host));
    }
    Credentials c;
    for (const auto& [field, out] : {std::pair<const char*, std::string*>{"username", &c.username},
                                     {"password", &c.password},
                                     {"identitytoken", &c.identity_token}}) {
      if (const toml::node* v = t->get(field)) {
        auto str = v->value<std::string>();
        if (!str) {
          return absl::InvalidArgumentError(
              StrCat("lazysnap config: registry.auths.", host, ".", field, " must be a string"));
        }
        *out = *str;
      }
    }
    if (const toml::node* v = t->get("auth")) {
      auto str = v->value<std::string>();
      std::string decoded;
      size_t colon = std::string::npos;
      if (str && absl::Base64Unescape(*str, &decoded)) colon = decoded.find(':');
      if (colon == std::string::npos) {
        return absl::InvalidArgumentError(
            StrCat("lazysnap config: registry.auths.", host, ".auth is not base64 user:password"));
      }
      c.username = decoded.substr(0, colon);
      c.password = decoded.substr(colon + 1);
    }
    by_host_[host] = std::move(c);
  }
  return absl::OkStatus();
}

void CredentialStore::Add(std::string_view host, Credentials credentials) {
  by_host_[NormalizeCredentialHost(host)] = std::move(credentials);
}

std::optional<Credentials> CredentialStore::Lookup(std::string_view host) const {
  auto it = by_host_.find(NormalizeCredentialHost(host));
  if (it == by_host_.end()) return std::nullopt;
  return it->second;
}

}  // namespace lazysnap::registry

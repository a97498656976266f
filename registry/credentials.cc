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
#include "base/log.h"
#include "base/status_macros.h"
#include "base/stream.h"
#include "base/strings.h"
#include "registry/credentials_helper.h"

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

namespace {

// The non-empty `auths` entries of a Docker config, by normalized host.
absl::Status ParseDockerAuths(const nlohmann::json& doc, std::map<std::string, Credentials>* out) {
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
    (*out)[host] = std::move(c);
  }
  return absl::OkStatus();
}

}  // namespace

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

CredentialStore::CredentialStore() : CredentialStore(CredentialHelperOptions()) {}

CredentialStore::CredentialStore(const CredentialHelperOptions& helpers)
    : helper_options_(std::make_unique<CredentialHelperOptions>(helpers)) {}

CredentialStore::~CredentialStore() = default;

absl::Status CredentialStore::AddDockerConfig(std::string_view json) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("docker config: not a JSON object");
  }
  auto helper_name = [](const nlohmann::json& v,
                        std::string_view what) -> absl::StatusOr<std::string> {
    if (!v.is_string() || !ValidCredentialHelperName(v.get<std::string>())) {
      return absl::InvalidArgumentError(StrCat("docker config: bad credential helper for ", what));
    }
    return v.get<std::string>();
  };
  std::string store;  // "credsStore": "" means none, as in docker
  if (auto cs = doc.find("credsStore");
      cs != doc.end() && !(cs->is_string() && cs->get<std::string>().empty())) {
    ASSIGN_OR_RETURN(store, helper_name(*cs, "credsStore"));
  }
  std::map<std::string, std::string> helpers;
  if (auto ch = doc.find("credHelpers"); ch != doc.end()) {
    if (!ch->is_object()) {
      return absl::InvalidArgumentError("docker config: credHelpers not an object");
    }
    for (auto it = ch->begin(); it != ch->end(); ++it) {
      const std::string host = NormalizeCredentialHost(it.key());
      ASSIGN_OR_RETURN(helpers[host], helper_name(it.value(), host));
    }
  }
  std::map<std::string, Credentials> auths;
  RETURN_IF_ERROR(ParseDockerAuths(doc, &auths));
  for (auto& [host, c] : auths) by_host_[host] = Entry{std::move(c), ""};
  for (auto& [host, helper] : helpers) by_host_[host] = Entry{{}, std::move(helper)};
  if (!store.empty()) default_helper_ = std::move(store);
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
    by_host_[host] = Entry{std::move(c), ""};
  }
  return absl::OkStatus();
}

void CredentialStore::Add(std::string_view host, Credentials credentials) {
  by_host_[NormalizeCredentialHost(host)] = Entry{std::move(credentials), ""};
}

std::optional<Credentials> CredentialStore::Lookup(std::string_view host) const {
  const std::string h = NormalizeCredentialHost(host);
  auto it = by_host_.find(h);
  if (it != by_host_.end() && it->second.helper.empty()) return it->second.credentials;
  const std::string& helper = it != by_host_.end() ? it->second.helper : default_helper_;
  if (helper.empty()) return std::nullopt;
  return RunHelperCached(helper, h);
}

std::optional<Credentials> CredentialStore::RunHelperCached(const std::string& helper,
                                                            const std::string& host) const {
  const std::string key = StrCat(helper, "\n", host);
  auto flight = std::make_shared<Flight>();
  {
    absl::MutexLock l(&cache_mu_);
    if (auto c = cache_.find(key); c != cache_.end() && c->second.expiry > absl::Now()) {
      return c->second.credentials;
    }
    if (auto f = in_flight_.find(key); f != in_flight_.end()) {
      // Another lookup of this host is running the helper: wait for its answer (Await
      // releases cache_mu_ while it waits, so other hosts go on).
      std::shared_ptr<Flight> theirs = f->second;
      ++helper_waits_;
      cache_mu_.Await(absl::Condition(&theirs->done));
      return theirs->credentials;
    }
    in_flight_.emplace(key, flight);
  }
  // The server URL as docker passes it: Docker Hub under its legacy key, others by host.
  const std::string url = host == "docker.io" ? "https://index.docker.io/v1/" : host;
  absl::StatusOr<std::optional<Credentials>> r =
      RunCredentialHelper(helper, url, *helper_options_);
  std::optional<Credentials> result;
  if (r.ok()) {
    result = *std::move(r);
  } else {
    LZ_LOG(kWarning, "registry credentials for ", host, " from helper ", helper, ": ",
           r.status().ToString(), " (continuing without)");
  }
  absl::MutexLock l(&cache_mu_);
  cache_[key] = Cached{absl::Now() + helper_options_->cache_ttl, result};
  flight->credentials = result;
  flight->done = true;  // wakes the waiters when cache_mu_ is released
  in_flight_.erase(key);
  return result;
}

int CredentialStore::helper_waits() const {
  absl::MutexLock l(&cache_mu_);
  return helper_waits_;
}

}  // namespace lazysnap::registry

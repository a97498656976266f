#include "registry/auth.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace lazysnap::registry {
namespace {

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}
  bool done() const { return pos_ >= s_.size(); }
  char peek() const { return done() ? '\0' : s_[pos_]; }
  void SkipSpace() {
    while (!done() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
  }
  std::string_view Token() {
    size_t start = pos_;
    while (!done() && IsTokenChar(s_[pos_])) ++pos_;
    return s_.substr(start, pos_ - start);
  }
  std::string_view Value() {  // up to a comma or white space
    size_t start = pos_;
    while (!done() && s_[pos_] != ',' && s_[pos_] != ' ' && s_[pos_] != '\t' && s_[pos_] != '"') {
      ++pos_;
    }
    return s_.substr(start, pos_ - start);
  }
  bool Quoted(std::string* out) {  // at '"'
    ++pos_;
    while (!done()) {
      char c = s_[pos_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (done()) return false;
        c = s_[pos_++];
      }
      out->push_back(c);
    }
    return false;
  }
  size_t pos() const { return pos_; }
  void set_pos(size_t p) { pos_ = p; }
  void Advance() { ++pos_; }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

std::string UrlEncode(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
        c == '~') {
      out.push_back(c);
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out.push_back('%');
      out.push_back(kHex[static_cast<unsigned char>(c) >> 4]);
      out.push_back(kHex[static_cast<unsigned char>(c) & 15]);
    }
  }
  return out;
}

std::string ScopeKey(const std::vector<std::string>& scopes) {
  std::vector<std::string> sorted = scopes;
  std::sort(sorted.begin(), sorted.end());
  std::string key;
  for (const auto& s : sorted) StrAppend(&key, s, " ");
  return key;
}

}  // namespace

std::string Challenge::Param(std::string_view name) const {
  for (const auto& [k, v] : params) {
    if (k == name) return v;
  }
  return "";
}

absl::StatusOr<std::vector<Challenge>> ParseChallenges(std::string_view header) {
  std::vector<Challenge> out;
  Scanner sc(header);
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(StrCat("WWW-Authenticate: ", why, " at ", sc.pos()));
  };
  while (true) {
    while (!sc.done() && (sc.peek() == ',' || sc.peek() == ' ' || sc.peek() == '\t')) sc.Advance();
    if (sc.done()) break;
    std::string_view scheme = sc.Token();
    if (scheme.empty()) return bad("expected an auth scheme");
    Challenge ch;
    ch.scheme = absl::AsciiStrToLower(AV(scheme));
    sc.SkipSpace();
    // Parameters until a token that is not followed by '=' (the next challenge's scheme).
    while (!sc.done() && sc.peek() != ',') {
      size_t mark = sc.pos();
      std::string_view name = sc.Token();
      sc.SkipSpace();
      if (name.empty()) return bad("expected a parameter");
      if (sc.peek() != '=') {
        sc.set_pos(mark);
        break;
      }
      sc.Advance();
      // token68: the '=' run ends the value ("Basic dXNlcjpw==").
      if (sc.peek() == '=' || sc.done() || sc.peek() == ',') {
        while (sc.peek() == '=') sc.Advance();
        ch.params.emplace_back("", StrCat(name, "="));
      } else {
        sc.SkipSpace();
        std::string value;
        if (sc.peek() == '"') {
          if (!sc.Quoted(&value)) return bad("unterminated quoted string");
        } else {
          // RFC 7235 wants a token; registries also send bare URLs ("realm=https://a/t").
          value = std::string(sc.Value());
          if (value.empty()) return bad("expected a parameter value");
        }
        ch.params.emplace_back(absl::AsciiStrToLower(AV(name)), std::move(value));
      }
      sc.SkipSpace();
      if (sc.peek() == ',') {
        sc.Advance();
        sc.SkipSpace();
        // Another param follows if the next token is followed by '='.
        size_t m2 = sc.pos();
        std::string_view next = sc.Token();
        sc.SkipSpace();
        bool param = !next.empty() && sc.peek() == '=';
        sc.set_pos(m2);
        if (!param) break;
      } else if (!sc.done()) {
        return bad("expected ','");
      }
    }
    out.push_back(std::move(ch));
  }
  if (out.empty()) return absl::InvalidArgumentError("WWW-Authenticate: no challenge");
  return out;
}

int Authorizer::token_fetches() const {
  absl::MutexLock l(&mu_);
  return token_fetches_;
}

absl::Status Authorizer::Authorize(std::string_view host, const std::vector<std::string>& scopes,
                                   const TlsOptions& tls, absl::Duration timeout,
                                   HttpRequest* request) {
  std::string key = ScopeKey(scopes);
  std::string realm, service;
  bool basic = false;
  {
    absl::MutexLock l(&mu_);
    auto it = hosts_.find(host);
    if (it == hosts_.end()) return absl::OkStatus();
    HostState& hs = it->second;
    basic = hs.scheme == HostState::Scheme::kBasic;
  }
  if (basic) {
    // Not under mu_: a credential helper may run here (seconds, registry/credentials.h), and
    // every other request of this client would wait behind it.
    std::optional<Credentials> c =
        credentials_ != nullptr ? credentials_->Lookup(host) : std::nullopt;
    if (c) {
      request->AddHeader(
          "Authorization",
          StrCat("Basic ", absl::Base64Escape(StrCat(c->username, ":", c->password))));
    }
    return absl::OkStatus();
  }
  {
    absl::MutexLock l(&mu_);
    auto it = hosts_.find(host);
    if (it == hosts_.end()) return absl::OkStatus();
    HostState& hs = it->second;
    if (hs.scheme != HostState::Scheme::kBearer) return absl::OkStatus();
    auto t = hs.tokens.find(key);
    if (t != hs.tokens.end() && t->second.expiry > absl::Now() + absl::Seconds(30)) {
      request->AddHeader("Authorization", StrCat("Bearer ", t->second.value));
      return absl::OkStatus();
    }
    realm = hs.realm;
    service = hs.service;
  }
  ASSIGN_OR_RETURN(Token token, FetchShared(host, realm, service, scopes, tls, timeout));
  request->AddHeader("Authorization", StrCat("Bearer ", token.value));
  return absl::OkStatus();
}

absl::StatusOr<Authorizer::Token> Authorizer::FetchShared(
    std::string_view host, const std::string& realm, const std::string& service,
    const std::vector<std::string>& scopes, const TlsOptions& tls, absl::Duration timeout) {
  const std::string key = ScopeKey(scopes);
  const std::string flight = StrCat(host, "\n", key);
  {
    absl::MutexLock l(&mu_);
    bool waited = false;
    while (in_flight_.count(flight) != 0) {
      cv_.Wait(&mu_);
      waited = true;
    }
    if (waited) {  // someone else just fetched: use theirs if it is good
      const HostState& hs = hosts_[std::string(host)];
      auto t = hs.tokens.find(key);
      if (t != hs.tokens.end() && t->second.expiry > absl::Now() + absl::Seconds(30)) {
        return t->second;
      }
    }
    in_flight_.insert(flight);
  }
  absl::StatusOr<Token> token = FetchToken(host, realm, service, scopes, tls, timeout);
  absl::MutexLock l(&mu_);
  in_flight_.erase(flight);
  cv_.SignalAll();
  if (token.ok()) hosts_[std::string(host)].tokens[key] = *token;
  return token;
}

absl::Status Authorizer::OnUnauthorized(std::string_view host,
                                        const std::vector<std::string>& scopes,
                                        const HttpResponse& response, const TlsOptions& tls,
                                        absl::Duration timeout,
                                        std::string_view sent_authorization) {
  const Challenge* bearer = nullptr;
  const Challenge* basic = nullptr;
  std::vector<Challenge> all;
  for (const std::string& h : response.Headers("www-authenticate")) {
    auto parsed = ParseChallenges(h);
    if (!parsed.ok()) continue;
    for (auto& c : *parsed) all.push_back(std::move(c));
  }
  for (const Challenge& c : all) {
    if (c.scheme == "bearer" && bearer == nullptr) bearer = &c;
    if (c.scheme == "basic" && basic == nullptr) basic = &c;
  }
  if (bearer != nullptr) {
    std::string realm = bearer->Param("realm");
    if (realm.substr(0, 7) != "http://" && realm.substr(0, 8) != "https://") {
      return absl::UnauthenticatedError(StrCat(host, ": bearer challenge without a usable realm"));
    }
    std::vector<std::string> want = scopes;
    if (std::string s = bearer->Param("scope"); !s.empty()) {
      if (std::find(want.begin(), want.end(), s) == want.end()) want.push_back(s);
    }
    std::string service = bearer->Param("service");
    {
      absl::MutexLock l(&mu_);
      HostState& hs = hosts_[std::string(host)];
      // Another request got a new token since this one was sent: try that one first.
      auto t = hs.tokens.find(ScopeKey(scopes));
      if (hs.scheme == HostState::Scheme::kBearer && hs.realm == realm && t != hs.tokens.end() &&
          t->second.expiry > absl::Now() + absl::Seconds(30) &&
          StrCat("Bearer ", t->second.value) != sent_authorization) {
        return absl::OkStatus();
      }
    }
    ASSIGN_OR_RETURN(Token token, FetchShared(host, realm, service, want, tls, timeout));
    absl::MutexLock l(&mu_);
    HostState& hs = hosts_[std::string(host)];
    hs.scheme = HostState::Scheme::kBearer;
    hs.realm = realm;
    hs.service = service;
    hs.tokens[ScopeKey(scopes)] = std::move(token);
    return absl::OkStatus();
  }
  if (basic != nullptr) {
    if (credentials_ == nullptr || !credentials_->Lookup(host)) {
      return absl::UnauthenticatedError(StrCat(host, " wants basic auth; no credentials for it"));
    }
    if (sent_authorization.substr(0, 6) == "Basic ") {
      return absl::UnauthenticatedError(StrCat(host, " refused the basic credentials"));
    }
    absl::MutexLock l(&mu_);
    hosts_[std::string(host)].scheme = HostState::Scheme::kBasic;
    return absl::OkStatus();
  }
  return absl::UnauthenticatedError(StrCat(host, ": 401 without a bearer or basic challenge"));
}

absl::StatusOr<Authorizer::Token> Authorizer::FetchToken(
    std::string_view host, const std::string& realm, const std::string& service,
    const std::vector<std::string>& scopes, const TlsOptions& tls, absl::Duration timeout) {
  {
    absl::MutexLock l(&mu_);
    ++token_fetches_;
  }
  std::optional<Credentials> creds =
      credentials_ != nullptr ? credentials_->Lookup(host) : std::nullopt;
  HttpRequest req;
  req.url = realm;
  req.timeout = timeout;
  req.max_body = 1 << 20;
  if (realm.rfind("https://", 0) == 0 && realm.find(host) != std::string::npos) req.tls = tls;
  std::string query;
  if (!service.empty()) StrAppend(&query, "service=", UrlEncode(service));
  if (creds && !creds->identity_token.empty()) {
    // OAuth2 refresh-token grant (docker login through an identity provider).
    std::string scope_list;
    for (const auto& s : scopes) StrAppend(&scope_list, scope_list.empty() ? "" : " ", s);
    req.method = "POST";
    req.AddHeader("Content-Type", "application/x-www-form-urlencoded");
    req.body = StrCat("grant_type=refresh_token&client_id=lazysnap&refresh_token=",
                      UrlEncode(creds->identity_token), "&scope=", UrlEncode(scope_list),
                      query.empty() ? "" : "&", query);
  } else {
    for (const auto& s : scopes)
      StrAppend(&query, query.empty() ? "" : "&", "scope=", UrlEncode(s));
    if (!query.empty())
      StrAppend(&req.url, realm.find('?') == std::string::npos ? "?" : "&", query);
    if (creds && (!creds->username.empty() || !creds->password.empty())) {
      req.AddHeader(
          "Authorization",
          StrCat("Basic ", absl::Base64Escape(StrCat(creds->username, ":", creds->password))));
    }
  }
  ASSIGN_OR_RETURN(HttpResponse resp, transport_->Do(req));
  if (resp.status == 401 || resp.status == 403) {
    return absl::UnauthenticatedError(
        StrCat("token server for ", host, " refused the request (HTTP ", resp.status, ")"));
  }
  if (resp.status == 429 || resp.status >= 500) {
    return absl::UnavailableError(StrCat("token server for ", host, ": HTTP ", resp.status));
  }
  if (resp.status != 200) {
    return absl::UnauthenticatedError(StrCat("token server for ", host, ": HTTP ", resp.status));
  }
  nlohmann::json doc = nlohmann::json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::UnauthenticatedError(StrCat("token server for ", host, ": answer not JSON"));
  }
  Token token;
  for (const char* field : {"token", "access_token"}) {
    auto f = doc.find(field);
    if (f != doc.end() && f->is_string() && !f->get<std::string>().empty()) {
      token.value = f->get<std::string>();
      break;
    }
  }
  if (token.value.empty()) {
    return absl::UnauthenticatedError(StrCat("token server for ", host, ": no token in answer"));
  }
  int64_t expires_in = 60;
  if (auto f = doc.find("expires_in"); f != doc.end() && f->is_number_integer()) {
    expires_in = std::max<int64_t>(f->get<int64_t>(), 1);
  }
  token.expiry = absl::Now() + absl::Seconds(expires_in);
  return token;
}

}  // namespace lazysnap::registry

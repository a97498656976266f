// Registry authentication: WWW-Authenticate challenge parsing, bearer tokens (anonymous or
// credentialed, cached per host and scope, refreshed before expiry and on 401) and basic auth.
#ifndef LAZYSNAP_REGISTRY_AUTH_H_
#define LAZYSNAP_REGISTRY_AUTH_H_

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "registry/credentials.h"
#include "registry/transport.h"

namespace lazysnap::registry {

// One challenge of a WWW-Authenticate header: `Bearer realm="...",service="...",scope="..."`.
struct Challenge {
  std::string scheme;                                       // lower-cased: "bearer", "basic"
  std::vector<std::pair<std::string, std::string>> params;  // names lower-cased, values unquoted
  std::string Param(std::string_view name) const;           // "" when absent
};

// Parses a WWW-Authenticate header value (RFC 7235: challenges separated by commas, auth
// params as token=token or token="quoted", token68). Malformed input is InvalidArgument. Pure.
absl::StatusOr<std::vector<Challenge>> ParseChallenges(std::string_view header);

// Authorization state for every registry host a client talks to. Thread-safe; tokens are
// fetched through `transport` (not owned, must outlive this) with `credentials` (not owned,
// may be null, must outlive this). Tokens and passwords never reach a log line or a Status.
class Authorizer {
 public:
  Authorizer(HttpTransport* transport, const CredentialStore* credentials)
      : transport_(transport), credentials_(credentials) {}

  // Adds the Authorization header `host` wants for `scopes` ("repository:NAME:pull[,push]")
  // to `request`, fetching a fresh token first when the cached one is missing or expires
  // within 30 s and the host is known to use bearer tokens. A host never challenged yet
  // gets no header. Errors only from a token fetch.
  absl::Status Authorize(std::string_view host, const std::vector<std::string>& scopes,
                         const TlsOptions& tls, absl::Duration timeout, HttpRequest* request);

  // Learns from a 401 answer of `host` to a request that carried `sent_authorization` (its
  // Authorization header, "" if none): a Bearer challenge makes it fetch a new token for
  // `scopes` (plus the challenge's scope) unless another caller already replaced the rejected
  // one; Basic makes it send the host's credentials. Concurrent fetches of one token are
  // shared. OK means a repeated request may succeed; Unauthenticated that it cannot (no
  // credentials for basic, basic credentials refused, token server refused, no usable
  // challenge).
  absl::Status OnUnauthorized(std::string_view host, const std::vector<std::string>& scopes,
                              const HttpResponse& response, const TlsOptions& tls,
                              absl::Duration timeout, std::string_view sent_authorization = "");

  // Number of token requests made (tests and metrics).
  int token_fetches() const;

 private:
  struct Token {
    std::string value;
    absl::Time expiry;
  };
  struct HostState {
    enum class Scheme { kNone, kBasic, kBearer } scheme = Scheme::kNone;
    std::string realm;
    std::string service;
    std::map<std::string, Token> tokens;  // by joined scopes
  };

  absl::StatusOr<Token> FetchToken(std::string_view host, const std::string& realm,
                                   const std::string& service,
                                   const std::vector<std::string>& scopes, const TlsOptions& tls,
                                   absl::Duration timeout);

  // FetchToken once per (host, scopes) at a time; stores the result. Callers that waited for
  // another's fetch get its token.
  absl::StatusOr<Token> FetchShared(std::string_view host, const std::string& realm,
                                    const std::string& service,
                                    const std::vector<std::string>& scopes, const TlsOptions& tls,
                                    absl::Duration timeout);

  HttpTransport* const transport_;
  const CredentialStore* const credentials_;
  mutable absl::Mutex mu_;
  std::map<std::string, HostState, std::less<>> hosts_ ABSL_GUARDED_BY(mu_);
  int token_fetches_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> in_flight_ ABSL_GUARDED_BY(mu_);  // "host\nscopes" being fetched
  absl::CondVar cv_;                                      // signalled when a fetch ends
};

}  // namespace lazysnap::registry

#endif  // LAZYSNAP_REGISTRY_AUTH_H_

// Session: one authenticated HTTP exchange with a registry endpoint, and the mapping of
// registry answers to absl::Status. The building block of client.h and blob_reader.h.
#ifndef LAZYSNAP_REGISTRY_SESSION_H_
#define LAZYSNAP_REGISTRY_SESSION_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "registry/auth.h"
#include "registry/hosts.h"
#include "registry/transport.h"

namespace lazysnap::registry {

class Session {
 public:
  // `transport` and `authorizer` are not owned and must outlive the session.
  Session(HttpTransport* transport, Authorizer* authorizer)
      : transport_(transport), authorizer_(authorizer) {}

  // Sends `request` to `endpoint` (its TLS settings and extra headers applied) with the
  // Authorization `scopes` need; on a 401, learns the challenge and sends it once more. No
  // other retries. `request.timeout` bounds each of the (at most two) exchanges and any
  // token fetch. Returns the final response whatever its status. Thread-safe.
  absl::StatusOr<HttpResponse> Send(const RegistryEndpoint& endpoint,
                                    const std::vector<std::string>& scopes, HttpRequest request);

  // Sends `request` as is (no auth, no endpoint settings): for redirect targets.
  absl::StatusOr<HttpResponse> SendPlain(const HttpRequest& request) {
    return transport_->Do(request);
  }

  Authorizer* authorizer() const { return authorizer_; }

 private:
  HttpTransport* const transport_;
  Authorizer* const authorizer_;
};

// Maps a non-2xx response to a Status: 401 Unauthenticated, 403 PermissionDenied, 404
// NotFound, 416 OutOfRange, 429 ResourceExhausted, 408 and 5xx Unavailable, other codes
// FailedPrecondition; the message names `what` and the registry's error code if any.
// 2xx is OK.
absl::Status HttpStatusToStatus(const HttpResponse& response, std::string_view what);

// "repository:NAME:pull" / "repository:NAME:pull,push".
std::string RepositoryScope(std::string_view repository, bool push);

// Resolves a Location header value against `base` ("scheme://host").
std::string ResolveLocation(std::string_view base, std::string_view location);

}  // namespace lazysnap::registry

#endif  // LAZYSNAP_REGISTRY_SESSION_H_

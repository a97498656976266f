#include "registry/session.h"

#include <nlohmann/json.hpp>

#include "base/status_macros.h"
#include "base/strings.h"
#include "registry/retry.h"

namespace lazysnap::registry {

absl::StatusOr<HttpResponse> Session::Send(const RegistryEndpoint& endpoint,
                                           const std::vector<std::string>& scopes,
                                           HttpRequest request) {
  request.tls = endpoint.tls;
  for (const auto& h : endpoint.headers) request.headers.push_back(h);
  const size_t plain_headers = request.headers.size();
  RETURN_IF_ERROR(
      authorizer_->Authorize(endpoint.host, scopes, endpoint.tls, request.timeout, &request));
  ASSIGN_OR_RETURN(HttpResponse resp, transport_->Do(request));
  if (resp.status != 401) return resp;
  std::string sent;
  for (size_t i = plain_headers; i < request.headers.size(); ++i) {
    if (request.headers[i].first == "Authorization") sent = request.headers[i].second;
  }
  RETURN_IF_ERROR(authorizer_->OnUnauthorized(endpoint.host, scopes, resp, endpoint.tls,
                                              request.timeout, sent));
  request.headers.resize(plain_headers);
  RETURN_IF_ERROR(
      authorizer_->Authorize(endpoint.host, scopes, endpoint.tls, request.timeout, &request));
  return transport_->Do(request);
}

absl::Status HttpStatusToStatus(const HttpResponse& response, std::string_view what) {
  const int code = response.status;
  if (code >= 200 && code < 300) return absl::OkStatus();
  std::string detail;
  // Registry errors: {"errors":[{"code":"BLOB_UNKNOWN","message":"..."}]}.
  nlohmann::json doc = nlohmann::json::parse(response.body, nullptr, false);
  if (!doc.is_discarded() && doc.is_object() && doc.contains("errors") &&
      doc["errors"].is_array() && !doc["errors"].empty() && doc["errors"][0].is_object()) {
    const auto& e = doc["errors"][0];
    if (e.contains("code") && e["code"].is_string()) {
      detail = StrCat(" (", e["code"].get<std::string>(), ")");
    }
  }
  std::string msg = StrCat(what, ": HTTP ", code, detail);
  if (code == 429 || code == 503) {
    absl::Status s = code == 429 ? absl::ResourceExhaustedError(msg) : absl::UnavailableError(msg);
    int64_t seconds = 0;
    if (absl::SimpleAtoi(response.Header("retry-after"), &seconds) && seconds > 0) {
      SetRetryAfter(&s, absl::Seconds(seconds));
    }
    return s;
  }
  switch (code) {
    case 401:
      return absl::UnauthenticatedError(msg);
    case 403:
      return absl::PermissionDeniedError(msg);
    case 404:
      return absl::NotFoundError(msg);
    case 416:
      return absl::OutOfRangeError(msg);
    case 429:
      return absl::ResourceExhaustedError(msg);
    case 408:
      return absl::UnavailableError(msg);
    default:
      if (code >= 500) {
        absl::Status s = absl::UnavailableError(msg);
        MarkServerError(&s);  // 503 is not one: an overloaded registry recovers
        return s;
      }
      return absl::FailedPreconditionError(msg);
  }
}

std::string RepositoryScope(std::string_view repository, bool push) {
  return StrCat("repository:", repository, push ? ":pull,push" : ":pull");
}

std::string ResolveLocation(std::string_view base, std::string_view location) {
  if (location.find("://") != std::string_view::npos) return std::string(location);
  if (location.substr(0, 2) == "//") {
    return StrCat(base.substr(0, base.find("://") + 1), location);
  }
  if (!location.empty() && location.front() == '/') return StrCat(base, location);
  return StrCat(base, "/", location);
}

}  // namespace lazysnap::registry

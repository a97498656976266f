// HttpTransport: the one narrow interface everything in registry/ speaks HTTP through. The
// production implementation is CurlTransport (curl_transport.h); unit tests substitute
// counting and fault-injecting doubles.
#ifndef LAZYSNAP_REGISTRY_TRANSPORT_H_
#define LAZYSNAP_REGISTRY_TRANSPORT_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lazysnap::registry {

// TLS settings of one endpoint (from hosts.toml). Empty strings mean "system default".
struct TlsOptions {
  std::string ca_file;      // PEM bundle of extra trusted CAs
  std::string client_cert;  // PEM client certificate
  std::string client_key;   // PEM key of client_cert
  bool skip_verify = false;
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  // Header lines as (name, value). Authorization values are secrets: never log them.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // sent with Content-Length when method is PUT/POST/PATCH
  TlsOptions tls;
  absl::Duration timeout = absl::Seconds(30);  // the whole exchange
  size_t max_body = size_t{64} << 20;          // larger response bodies are an error

  void AddHeader(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
};

struct HttpResponse {
  int status = 0;
  int http_version = 0;  // 1 (HTTP/1.x) or 2 (HTTP/2); 0 when unknown
  // Header lines of the final response, names lower-cased, in arrival order.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // The first value of header `name` (any case), or "" when absent.
  std::string Header(std::string_view name) const;
  // Every value of header `name` (any case), in order.
  std::vector<std::string> Headers(std::string_view name) const;
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;

  // Performs one HTTP exchange; redirects are returned, not followed. An HTTP error status
  // is a response, not an error. Errors: Unavailable (connect failure, reset, truncated
  // body), DeadlineExceeded (request.timeout passed), FailedPrecondition (TLS verification,
  // body over max_body), InvalidArgument (bad URL). Thread-safe: any number of concurrent
  // calls; the implementation shares connections between them.
  virtual absl::StatusOr<HttpResponse> Do(const HttpRequest& request) = 0;
};

}  // namespace lazysnap::registry

#endif  // LAZYSNAP_REGISTRY_TRANSPORT_H_

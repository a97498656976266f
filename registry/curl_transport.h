// CurlTransport: HttpTransport over one libcurl multi handle driven by one worker thread.
// All requests share its connection cache (keep-alive reuse), TLS sessions and DNS cache;
// HTTP/2 is negotiated over TLS and concurrent requests to one host are multiplexed on one
// connection where the server speaks it, else spread over up to max_host_connections
// HTTP/1.1 connections.
#ifndef LAZYSNAP_REGISTRY_CURL_TRANSPORT_H_
#define LAZYSNAP_REGISTRY_CURL_TRANSPORT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "registry/transport.h"

namespace lazysnap::registry {

class CurlTransport : public HttpTransport {
 public:
  struct Options {
    long max_host_connections = 8;  // parallel connections per host (HTTP/1.1)
    long max_total_connections = 64;
    bool http2 = true;  // negotiate HTTP/2 over TLS
    std::string user_agent = "lazysnap/0.1";
  };

  // Starts the worker thread. Internal is the only error (libcurl could not initialize).
  static absl::StatusOr<std::unique_ptr<CurlTransport>> Create(const Options& options);
  static absl::StatusOr<std::unique_ptr<CurlTransport>> Create() { return Create(Options()); }

  // Fails requests still in flight with Cancelled and joins the worker. No Do() may run
  // concurrently with destruction.
  ~CurlTransport() override;

  // See HttpTransport::Do. Blocks the calling thread until the exchange ends. Thread-safe.
  absl::StatusOr<HttpResponse> Do(const HttpRequest& request) override;

  struct Impl;

 private:
  explicit CurlTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lazysnap::registry

#endif  // LAZYSNAP_REGISTRY_CURL_TRANSPORT_H_

// A small docker-registry token server for tests (linked only into tests): answers
// GET /token?service=S&scope=repository:NAME:ACTIONS (and POST with an OAuth2 refresh-token
// grant) with a JWT (RS256, the signing certificate in the x5c header) granting the asked
// actions, checking HTTP basic credentials or the refresh token when configured. One request per
// connection. Not for production.
#ifndef LAZYSNAP_REGISTRY_TOKEN_SERVER_H_
#define LAZYSNAP_REGISTRY_TOKEN_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace lazysnap::registry::testing {

class TokenServer {
 public:
  struct Options {
    std::string key_file;   // PEM RSA private key
    std::string cert_file;  // PEM certificate of that key (the registry's rootcertbundle)
    std::string issuer = "lazysnap-test-issuer";
    std::string service = "lazysnap-test-registry";
    std::string username;       // when set, requests must carry these basic credentials;
    std::string password;       // anonymous requests get pull access only
    std::string refresh_token;  // accepted by POST (grant_type=refresh_token) when set
    int expires_in = 300;       // seconds
  };

  // Listens on a free loopback port and serves from a background thread.
  static absl::StatusOr<std::unique_ptr<TokenServer>> Start(const Options& options);
  ~TokenServer();  // stops and joins the thread

  std::string realm() const;  // "http://127.0.0.1:PORT/token"
  int tokens_issued() const { return issued_.load(); }
  int refusals() const { return refused_.load(); }

  struct Impl;

 private:
  explicit TokenServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::atomic<int> issued_{0};
  std::atomic<int> refused_{0};
  std::thread thread_;
};

}  // namespace lazysnap::registry::testing

#endif  // LAZYSNAP_REGISTRY_TOKEN_SERVER_H_

#include "registry/token_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "base/errors.h"
#include "base/strings.h"

namespace lazysnap::registry::testing {
namespace {

std::string B64Url(std::string_view s) {
  std::string out;
  absl::WebSafeBase64Escape(AV(s), &out);  // unpadded
  return out;
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string UrlDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    int hi = 0, lo = 0;
    if (s[i] == '%' && i + 2 < s.size() && (hi = Hex(s[i + 1])) >= 0 && (lo = Hex(s[i + 2])) >= 0) {
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

void SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

struct TokenServer::Impl {
  Options options;
  int listen_fd = -1;
  int port = 0;
  EVP_PKEY* key = nullptr;
  std::string cert_der_b64;
  std::atomic<bool> stop{false};

  ~Impl() {
    if (listen_fd >= 0) ::close(listen_fd);
    EVP_PKEY_free(key);
  }

  std::string Sign(std::string_view input) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t len = 0;
    std::string sig;
    if (EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
        EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                       input.size()) == 1) {
      sig.resize(len);
      EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size());
      sig.resize(len);
    }
    EVP_MD_CTX_free(ctx);
    return sig;
  }

  // The answer to one request line + headers.
  // `head` is the request line and headers, `body` a POST's form body.
  std::string Answer(std::string_view head, std::string_view body, TokenServer* owner) {
    std::string_view line = head.substr(0, head.find("\r\n"));
    std::vector<std::string> parts = absl::StrSplit(AV(line), ' ');
    if (parts.size() < 2 || parts[1].rfind("/token", 0) != 0) {
      return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    }
    bool authenticated = false;
    for (absl::string_view ah : absl::StrSplit(AV(head), "\r\n")) {
      std::string_view h = SV(ah);
      if (h.size() > 21 && absl::EqualsIgnoreCase(AV(h.substr(0, 21)), "authorization: basic ")) {
        std::string decoded;
        absl::Base64Unescape(AV(h.substr(21)), &decoded);
        authenticated =
            !options.username.empty() && decoded == StrCat(options.username, ":", options.password);
        if (!authenticated) {
          ++owner->refused_;
          return "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        }
      }
    }
    // GET: scope=... repeated in the query. POST (OAuth2 refresh-token grant): one
    // space-separated scope field and the refresh_token in the form body.
    std::vector<std::string> scopes;
    std::string_view target = parts[1];
    size_t q = target.find('?');
    std::string_view form = parts[0] == "POST"            ? body
                            : q != std::string_view::npos ? target.substr(q + 1)
                                                          : std::string_view();
    bool refresh_ok = false;
    for (absl::string_view akv : absl::StrSplit(AV(form), '&')) {
      std::string_view kv = SV(akv);
      if (kv.substr(0, 6) == "scope=") {
        for (absl::string_view sc : absl::StrSplit(UrlDecode(kv.substr(6)), ' ')) {
          if (!sc.empty()) scopes.emplace_back(sc);
        }
      } else if (kv.substr(0, 14) == "refresh_token=") {
        refresh_ok =
            !options.refresh_token.empty() && UrlDecode(kv.substr(14)) == options.refresh_token;
      }
    }
    if (parts[0] == "POST") {
      if (!refresh_ok) {
        ++owner->refused_;
        return "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      }
      authenticated = true;
    }
    nlohmann::json access = nlohmann::json::array();
    {
      for (const std::string& scope : scopes) {
        std::vector<std::string> f = absl::StrSplit(scope, ':');
        if (f.size() != 3) continue;
        nlohmann::json actions = nlohmann::json::array();
        for (absl::string_view a : absl::StrSplit(f[2], ',')) {
          if (a == "pull" || ((authenticated || options.username.empty()) && a == "push")) {
            actions.push_back(std::string(a));
          }
        }
        access.push_back({{"type", f[0]}, {"name", f[1]}, {"actions", actions}});
      }
    }
    int64_t now = absl::ToUnixSeconds(absl::Now());
    nlohmann::json header = {{"alg", "RS256"}, {"typ", "JWT"}, {"x5c", {cert_der_b64}}};
    nlohmann::json claims = {{"iss", options.issuer},
                             {"sub", authenticated ? options.username : ""},
                             {"aud", options.service},
                             {"exp", now + options.expires_in},
                             {"nbf", now - 10},
                             {"iat", now},
                             {"jti", StrCat(now, "-", owner->issued_.load())},
                             {"access", access}};
    std::string input = StrCat(B64Url(header.dump()), ".", B64Url(claims.dump()));
    std::string jwt = StrCat(input, ".", B64Url(Sign(input)));
    std::string answer =
        nlohmann::json({{"token", jwt}, {"access_token", jwt}, {"expires_in", options.expires_in}})
            .dump();
    ++owner->issued_;
    return StrCat("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ",
                  answer.size(), "\r\nConnection: close\r\n\r\n", answer);
  }

  void Serve(TokenServer* owner) {
    while (!stop.load()) {
      pollfd p{listen_fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::string head;
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos && head.size() < 65536) {
        pollfd cp{fd, POLLIN, 0};
        if (::poll(&cp, 1, 2000) <= 0) break;
        ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) break;
        head.append(buf, static_cast<size_t>(n));
      }
      size_t end = head.find("\r\n\r\n");
      if (end != std::string::npos) {
        // A POST's body: Content-Length bytes after the head.
        uint64_t length = 0;
        for (absl::string_view ah :
             absl::StrSplit(AV(std::string_view(head).substr(0, end)), "\r\n")) {
          if (absl::StartsWithIgnoreCase(ah, "content-length:")) {
            (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(ah.substr(15)), &length);
          }
        }
        while (head.size() < end + 4 + length && length < 65536) {
          pollfd cp{fd, POLLIN, 0};
          if (::poll(&cp, 1, 2000) <= 0) break;
          ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
          if (n <= 0) break;
          head.append(buf, static_cast<size_t>(n));
        }
        std::string_view all(head);
        SendAll(fd, Answer(all.substr(0, end + 4), all.substr(end + 4), owner));
      }
      ::close(fd);
    }
  }
};

absl::StatusOr<std::unique_ptr<TokenServer>> TokenServer::Start(const Options& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  FILE* kf = std::fopen(options.key_file.c_str(), "r");
  if (kf == nullptr) return ErrnoToStatus(errno, StrCat("open ", options.key_file));
  impl->key = PEM_read_PrivateKey(kf, nullptr, nullptr, nullptr);
  std::fclose(kf);
  FILE* cf = std::fopen(options.cert_file.c_str(), "r");
  if (cf == nullptr) return ErrnoToStatus(errno, StrCat("open ", options.cert_file));
  X509* cert = PEM_read_X509(cf, nullptr, nullptr, nullptr);
  std::fclose(cf);
  if (impl->key == nullptr || cert == nullptr) {
    X509_free(cert);
    return absl::InvalidArgumentError("token server: unreadable key or certificate");
  }
  unsigned char* der = nullptr;
  int der_len = i2d_X509(cert, &der);
  X509_free(cert);
  if (der_len <= 0) return absl::InternalError("i2d_X509 failed");
  absl::Base64Escape(absl::string_view(reinterpret_cast<char*>(der), der_len), &impl->cert_der_b64);
  OPENSSL_free(der);

  impl->listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (impl->listen_fd < 0) return ErrnoToStatus(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(impl->listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(impl->listen_fd, 64) != 0 ||
      ::getsockname(impl->listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return ErrnoToStatus(errno, "token server listen");
  }
  impl->port = ntohs(addr.sin_port);
  auto server = std::unique_ptr<TokenServer>(new TokenServer(std::move(impl)));
  TokenServer* raw = server.get();
  server->thread_ = std::thread([raw] { raw->impl_->Serve(raw); });
  return server;
}

TokenServer::TokenServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TokenServer::~TokenServer() {
  impl_->stop = true;
  if (thread_.joinable()) thread_.join();
}

std::string TokenServer::realm() const {
  return StrCat("http://127.0.0.1:", impl_->port, "/token");
}

}  // namespace lazysnap::registry::testing

#include "registry/curl_transport.h"

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <thread>
#include <unordered_set>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "base/log.h"
#include "base/strings.h"

namespace lazysnap::registry {
namespace {

// One exchange in flight. Owned by the Do() call that made it; the worker touches it only
// between adding it to the multi handle and notifying `done`.
struct Transfer {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  const HttpRequest* request = nullptr;
  HttpResponse response;
  bool too_big = false;
  CURLcode result = CURLE_OK;
  char error[CURL_ERROR_SIZE] = {};
  absl::Notification done;
};

size_t OnHeader(char* data, size_t size, size_t n, void* arg) {
  auto* t = static_cast<Transfer*>(arg);
  std::string_view line(data, size * n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.substr(0, 5) == "HTTP/") {  // a new response (after 100 Continue): start over
    t->response.headers.clear();
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string name(line.substr(0, colon));
  absl::AsciiStrToLower(&name);
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (name == "content-length") {
    uint64_t len = 0;
    if (absl::SimpleAtoi(AV(value), &len) && len <= t->request->max_body) {
      t->response.body.reserve(len);
    }
  }
  t->response.headers.emplace_back(std::move(name), std::string(value));
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* arg) {
  auto* t = static_cast<Transfer*>(arg);
  size_t len = size * n;
  if (t->response.body.size() + len > t->request->max_body) {
    t->too_big = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  t->response.body.append(data, len);
  return len;
}

// Adds the endpoint's extra CA file to the system trust store instead of replacing it, as
// containerd's `ca` does.
CURLcode OnSslContext(CURL*, void* ssl_ctx, void* arg) {
  const auto* ca_file = static_cast<const std::string*>(arg);
  X509_STORE* store = SSL_CTX_get_cert_store(static_cast<SSL_CTX*>(ssl_ctx));
  if (X509_STORE_load_file(store, ca_file->c_str()) != 1) return CURLE_SSL_CACERT_BADFILE;
  return CURLE_OK;
}

// The URL without its query: redirect targets carry signatures there.
std::string_view Redact(std::string_view url) { return url.substr(0, url.find('?')); }

absl::Status ToStatus(const Transfer& t) {
  std::string what = StrCat(t.request->method, " ", Redact(t.request->url), ": ",
                            t.error[0] ? t.error : curl_easy_strerror(t.result));
  switch (t.result) {
    case CURLE_OPERATION_TIMEDOUT:
      return absl::DeadlineExceededError(what);
    case CURLE_WRITE_ERROR:
      if (t.too_big) {
        return absl::FailedPreconditionError(StrCat(t.request->method, " ", Redact(t.request->url),
                                                    ": body larger than ", t.request->max_body,
                                                    " bytes"));
      }
      return absl::UnavailableError(what);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
      return absl::FailedPreconditionError(what);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return absl::InvalidArgumentError(what);
    default:
      return absl::UnavailableError(what);
  }
}

}  // namespace

struct CurlTransport::Impl {
  Options options;
  CURLM* multi = nullptr;
  std::thread worker;
  absl::Mutex mu;
  std::vector<Transfer*> pending ABSL_GUARDED_BY(mu);
  bool stop ABSL_GUARDED_BY(mu) = false;

  ~Impl() {
    if (worker.joinable()) {
      {
        absl::MutexLock l(&mu);
        stop = true;
      }
      curl_multi_wakeup(multi);
      worker.join();
    }
    if (multi != nullptr) curl_multi_cleanup(multi);
    curl_global_cleanup();
  }

  // The worker: the only thread that touches `multi` (apart from curl_multi_wakeup).
  void Run() {
    std::unordered_set<Transfer*> active;
    while (true) {
      std::vector<Transfer*> incoming;
      {
        absl::MutexLock l(&mu);
        if (stop) {
          incoming.swap(pending);
          for (Transfer* t : active) incoming.push_back(t);
          break_out(incoming);
          return;
        }
        incoming.swap(pending);
      }
      for (Transfer* t : incoming) {
        if (CURLMcode rc = curl_multi_add_handle(multi, t->easy); rc != CURLM_OK) {
          t->result = CURLE_FAILED_INIT;
          t->done.Notify();
          continue;
        }
        active.insert(t);
      }
      int running = 0;
      curl_multi_perform(multi, &running);
      int left = 0;
      while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
        if (m->msg != CURLMSG_DONE) continue;
        Transfer* t = nullptr;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &t);
        t->result = m->data.result;
        curl_multi_remove_handle(multi, m->easy_handle);
        active.erase(t);
        t->done.Notify();
      }
      curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
    }
  }

  void break_out(std::vector<Transfer*>& transfers) {
    for (Transfer* t : transfers) {
      curl_multi_remove_handle(multi, t->easy);
      t->result = CURLE_ABORTED_BY_CALLBACK;
      t->done.Notify();
    }
  }

  void Configure(Transfer& t) {
    const HttpRequest& r = *t.request;
    CURL* e = t.easy;
    curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    long timeout_ms = std::max<long>(1, absl::ToInt64Milliseconds(r.timeout));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, std::min<long>(timeout_ms, 10000));
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     options.http2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1);
    // Wait for a connection that may multiplex (HTTP/2 over TLS) rather than opening more;
    // plain-HTTP registries speak HTTP/1.1, where waiting only serializes requests.
    if (r.url.rfind("https://", 0) == 0) curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, options.user_agent.c_str());
    if (r.method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (r.method == "PUT" || r.method == "POST" || r.method == "PATCH") {
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.data());
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
      if (r.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
      t.headers = curl_slist_append(t.headers, "Expect:");
    } else if (r.method != "GET") {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    }
    for (const auto& [name, value] : r.headers) {
      t.headers = curl_slist_append(t.headers, StrCat(name, ": ", value).c_str());
    }
    if (t.headers != nullptr) curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
    if (!r.tls.ca_file.empty()) {
      curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, &OnSslContext);
      curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, &r.tls.ca_file);
    }
    if (!r.tls.client_cert.empty()) {
      curl_easy_setopt(e, CURLOPT_SSLCERT, r.tls.client_cert.c_str());
      if (!r.tls.client_key.empty()) curl_easy_setopt(e, CURLOPT_SSLKEY, r.tls.client_key.c_str());
    }
    if (r.tls.skip_verify) {
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
  }
};

absl::StatusOr<std::unique_ptr<CurlTransport>> CurlTransport::Create(const Options& options) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    return absl::InternalError("curl_global_init failed");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->multi = curl_multi_init();
  if (impl->multi == nullptr) return absl::InternalError("curl_multi_init failed");
  curl_multi_setopt(impl->multi, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_MULTIPLEX));
  curl_multi_setopt(impl->multi, CURLMOPT_MAX_HOST_CONNECTIONS, options.max_host_connections);
  curl_multi_setopt(impl->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, options.max_total_connections);
  curl_multi_setopt(impl->multi, CURLMOPT_MAXCONNECTS, options.max_total_connections);
  Impl* raw = impl.get();
  impl->worker = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<CurlTransport>(new CurlTransport(std::move(impl)));
}

CurlTransport::CurlTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CurlTransport::~CurlTransport() = default;

absl::StatusOr<HttpResponse> CurlTransport::Do(const HttpRequest& request) {
  const absl::Time start = absl::Now();
  Transfer t;
  t.request = &request;
  t.easy = curl_easy_init();
  if (t.easy == nullptr) return absl::InternalError("curl_easy_init failed");
  impl_->Configure(t);
  {
    absl::MutexLock l(&impl_->mu);
    impl_->pending.push_back(&t);
  }
  curl_multi_wakeup(impl_->multi);
  t.done.WaitForNotification();
  long status = 0;
  long version = 0;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(t.easy, CURLINFO_HTTP_VERSION, &version);
  if (LogEnabled(LogLevel::kDebug)) {
    // Where a pull's time goes (docs/containerd.md): one line per exchange, with whether it
    // opened a connection (a round trip more) and its first byte's time.
    long new_connections = 0;
    curl_off_t first_byte_us = 0;
    curl_easy_getinfo(t.easy, CURLINFO_NUM_CONNECTS, &new_connections);
    curl_easy_getinfo(t.easy, CURLINFO_STARTTRANSFER_TIME_T, &first_byte_us);
    LZ_LOG(kDebug, "http: ", request.method, " ", Redact(request.url), " -> ", status, ", ",
           t.response.body.size(), " bytes, ", absl::ToInt64Microseconds(absl::Now() - start) / 1000.0,
           " ms (first byte ", first_byte_us / 1000.0, " ms", new_connections > 0 ? ", new connection" : "",
           ")");
  }
  curl_easy_cleanup(t.easy);
  curl_slist_free_all(t.headers);
  if (t.result == CURLE_ABORTED_BY_CALLBACK) {
    return absl::CancelledError(StrCat(request.method, " ", Redact(request.url), ": shut down"));
  }
  if (t.result != CURLE_OK) return ToStatus(t);
  t.response.status = static_cast<int>(status);
  t.response.http_version = version == CURL_HTTP_VERSION_2_0 ? 2 : version != 0 ? 1 : 0;
  return std::move(t.response);
}

}  // namespace lazysnap::registry

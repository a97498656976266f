#include "registry/client.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "registry/blob_reader.h"
#include "registry/ranges.h"

namespace lazysnap::registry {
namespace {

constexpr char kManifestAccept[] =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json";

std::string StripParams(std::string_view content_type) {
  std::string_view ct = content_type.substr(0, content_type.find(';'));
  while (!ct.empty() && ct.back() == ' ') ct.remove_suffix(1);
  return std::string(ct);
}

std::string AppendQuery(std::string_view url, std::string_view param) {
  return StrCat(url, url.find('?') == std::string_view::npos ? "?" : "&", param);
}

// The media type of manifest bytes: the document's own mediaType, else the Content-Type.
std::string MediaTypeOf(std::string_view bytes, std::string_view content_type) {
  auto mt = PeekMediaType(bytes);
  if (mt.ok() && !mt->empty()) return *mt;
  std::string ct = StripParams(content_type);
  if (IsManifestMediaType(ct) || IsIndexMediaType(ct)) return ct;
  // An OCI document without mediaType: an index has "manifests".
  nlohmann::json doc = nlohmann::json::parse(bytes, nullptr, false);
  if (!doc.is_discarded() && doc.is_object() && doc.contains("manifests")) {
    return kOciIndexMediaType;
  }
  return kOciManifestMediaType;
}

}  // namespace

std::string ApiUrl(const RegistryEndpoint& ep, std::string_view domain, std::string_view repository,
                   std::string_view suffix) {
  std::string url = StrCat(ep.ApiUrl(), "/", repository, "/", suffix);
  if (!ep.is_origin) url = AppendQuery(url, StrCat("ns=", domain));
  return url;
}

RegistryClient::RegistryClient(HttpTransport* transport, const CredentialStore* credentials,
                               ClientOptions options)
    : options_(std::move(options)),
      authorizer_(transport, credentials),
      session_(transport, &authorizer_) {}

RegistryClient::~RegistryClient() = default;

absl::StatusOr<std::vector<RegistryEndpoint>> RegistryClient::Endpoints(std::string_view domain,
                                                                        Capability capability) {
  {
    absl::MutexLock l(&mu_);
    auto it = endpoints_.find(domain);
    if (it != endpoints_.end()) return WithCapability(it->second, capability);
  }
  ASSIGN_OR_RETURN(std::vector<RegistryEndpoint> all,
                   LoadEndpoints(options_.hosts_dir, domain, options_.plain_http));
  absl::MutexLock l(&mu_);
  endpoints_.emplace(std::string(domain), all);
  std::vector<RegistryEndpoint> out = WithCapability(all, capability);
  if (out.empty()) {
    return absl::FailedPreconditionError(
        StrCat("hosts.toml for ", domain, " offers no host for this operation"));
  }
  return out;
}

absl::StatusOr<FetchedManifest> RegistryClient::FetchManifestFrom(const RegistryEndpoint& ep,
                                                                  const Reference& ref,
                                                                  absl::Duration timeout) {
  HttpRequest req;
  req.url = ApiUrl(ep, ref.domain, ref.repository, StrCat("manifests/", ref.Object()));
  req.AddHeader("Accept", kManifestAccept);
  req.timeout = timeout;
  req.max_body = options_.max_manifest_bytes;
  std::string what = StrCat("manifest ", ref.String(), " from ", ep.host);
  ASSIGN_OR_RETURN(HttpResponse resp,
                   session_.Send(ep, {RepositoryScope(ref.repository, false)}, std::move(req)));
  RETURN_IF_ERROR(HttpStatusToStatus(resp, what));
  Sha256 got = Sha256::Of(resp.body);
  std::string want = ref.digest;
  if (want.empty()) want = resp.Header("docker-content-digest");
  if (!want.empty() && want.rfind("sha256:", 0) == 0 && want != got.ToString()) {
    return absl::DataLossError(StrCat(what, ": digest ", got.ToString(), ", expected ", want));
  }
  FetchedManifest out;
  out.descriptor.media_type = MediaTypeOf(resp.body, resp.Header("content-type"));
  out.descriptor.digest = got;
  out.descriptor.size = static_cast<int64_t>(resp.body.size());
  out.bytes = std::move(resp.body);
  return out;
}

absl::StatusOr<FetchedManifest> RegistryClient::FetchManifest(const Reference& ref) {
  ASSIGN_OR_RETURN(auto eps, Endpoints(ref.domain, ref.digest.empty() ? kCapResolve : kCapPull));
  FetchedManifest out;
  RETURN_IF_ERROR(RetryOverEndpoints(
      options_.retry, eps.size(), nullptr, [&](size_t i, absl::Duration timeout) -> absl::Status {
        ASSIGN_OR_RETURN(out, FetchManifestFrom(eps[i], ref, timeout));
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<Descriptor> RegistryClient::Resolve(const Reference& ref) {
  ASSIGN_OR_RETURN(auto eps, Endpoints(ref.domain, ref.digest.empty() ? kCapResolve : kCapPull));
  Descriptor out;
  RETURN_IF_ERROR(RetryOverEndpoints(
      options_.retry, eps.size(), nullptr, [&](size_t i, absl::Duration timeout) -> absl::Status {
        const RegistryEndpoint& ep = eps[i];
        HttpRequest req;
        req.method = "HEAD";
        req.url = ApiUrl(ep, ref.domain, ref.repository, StrCat("manifests/", ref.Object()));
        req.AddHeader("Accept", kManifestAccept);
        req.timeout = timeout;
        ASSIGN_OR_RETURN(HttpResponse resp,
                         session_.Send(ep, {RepositoryScope(ref.repository, false)}, req));
        RETURN_IF_ERROR(HttpStatusToStatus(resp, StrCat("manifest ", ref.String())));
        std::string digest = resp.Header("docker-content-digest");
        auto parsed = Sha256::Parse(digest);
        uint64_t size = 0;
        std::string ct = StripParams(resp.Header("content-type"));
        if (!parsed.ok() || !absl::SimpleAtoi(resp.Header("content-length"), &size) ||
            !(IsManifestMediaType(ct) || IsIndexMediaType(ct))) {
          ASSIGN_OR_RETURN(FetchedManifest m, FetchManifestFrom(ep, ref, timeout));
          out = m.descriptor;
          return absl::OkStatus();
        }
        if (!ref.digest.empty() && digest != ref.digest) {
          return absl::DataLossError(
              StrCat("manifest ", ref.String(), ": registry says digest ", digest));
        }
        out.media_type = ct;
        out.digest = *parsed;
        out.size = static_cast<int64_t>(size);
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<FetchedManifest> RegistryClient::ResolveImage(const Reference& ref,
                                                             std::optional<Platform> platform) {
  ASSIGN_OR_RETURN(FetchedManifest top, FetchManifest(ref));
  if (!IsIndexMediaType(top.descriptor.media_type)) return top;
  ASSIGN_OR_RETURN(Index index, ParseIndex(top.bytes));
  Platform want = platform.value_or(options_.platform);
  std::vector<const Descriptor*> matches = SelectPlatform(index, want);
  if (matches.empty()) {
    return absl::NotFoundError(
        StrCat(ref.String(), ": no image for platform ", want.ToString(), " in its index"));
  }
  ASSIGN_OR_RETURN(FetchedManifest m,
                   FetchManifest(ref.WithObject(matches.front()->digest.ToString())));
  if (IsIndexMediaType(m.descriptor.media_type)) {
    return absl::InvalidArgumentError(StrCat(ref.String(), ": index entry is itself an index"));
  }
  return m;
}

absl::StatusOr<std::string> RegistryClient::FetchBlob(const Reference& ref, const Sha256& digest,
                                                      size_t max_size, std::optional<uint64_t> size) {
  ASSIGN_OR_RETURN(std::unique_ptr<RegistryBlobSource> src, OpenBlob(ref, digest, size));
  if (src->Size() > max_size) {
    return absl::FailedPreconditionError(StrCat("blob ", digest.ToString(), " is ", src->Size(),
                                                " bytes, over the limit of ", max_size));
  }
  return src->ReadVerified();
}

absl::StatusOr<uint64_t> RegistryClient::BlobSize(const Reference& ref, const Sha256& digest) {
  ASSIGN_OR_RETURN(auto eps, Endpoints(ref.domain, kCapPull));
  uint64_t size = 0;
  RETURN_IF_ERROR(RetryOverEndpoints(
      options_.retry, eps.size(), nullptr, [&](size_t i, absl::Duration timeout) -> absl::Status {
        HttpRequest req;
        req.method = "HEAD";
        req.url = ApiUrl(eps[i], ref.domain, ref.repository, StrCat("blobs/", digest.ToString()));
        req.timeout = timeout;
        ASSIGN_OR_RETURN(HttpResponse resp,
                         session_.Send(eps[i], {RepositoryScope(ref.repository, false)}, req));
        if (resp.status >= 300 && resp.status < 400) {
          // Redirected to blob storage: ask there (no registry credentials).
          HttpRequest next = req;
          next.url = ResolveLocation(eps[i].Root(), resp.Header("location"));
          next.headers.clear();
          ASSIGN_OR_RETURN(resp, session_.SendPlain(next));
        }
        RETURN_IF_ERROR(HttpStatusToStatus(resp, StrCat("blob ", digest.ToString())));
        if (!absl::SimpleAtoi(resp.Header("content-length"), &size)) {
          return absl::DataLossError(StrCat("blob ", digest.ToString(), ": no Content-Length"));
        }
        return absl::OkStatus();
      }));
  return size;
}

absl::StatusOr<RegistryClient::BlobTail> RegistryClient::ReadBlobTail(const Reference& ref,
                                                                     const Sha256& digest,
                                                                     uint64_t max_bytes) {
  if (max_bytes == 0) return absl::InvalidArgumentError("ReadBlobTail of 0 bytes");
  ASSIGN_OR_RETURN(auto eps, Endpoints(ref.domain, kCapPull));
  BlobTail tail;
  RETURN_IF_ERROR(RetryOverEndpoints(
      options_.retry, eps.size(), nullptr, [&](size_t i, absl::Duration timeout) -> absl::Status {
        HttpRequest req;
        req.url = ApiUrl(eps[i], ref.domain, ref.repository, StrCat("blobs/", digest.ToString()));
        req.timeout = timeout;
        req.AddHeader("Range", StrCat("bytes=-", max_bytes));
        // A server ignoring the range answers with the whole blob: accept that only for a
        // small blob (the caller falls back to HEAD + range reads on FailedPrecondition).
        req.max_body = static_cast<size_t>(max_bytes) + (size_t{64} << 10);
        ASSIGN_OR_RETURN(HttpResponse resp,
                         session_.Send(eps[i], {RepositoryScope(ref.repository, false)}, req));
        if (resp.status >= 300 && resp.status < 400) {
          // Redirected to blob storage: ask there (no registry credentials).
          HttpRequest next = req;
          next.url = ResolveLocation(eps[i].Root(), resp.Header("location"));
          next.headers.clear();
          next.AddHeader("Range", StrCat("bytes=-", max_bytes));
          next.max_body = req.max_body;
          ASSIGN_OR_RETURN(resp, session_.SendPlain(next));
        }
        RETURN_IF_ERROR(HttpStatusToStatus(resp, StrCat("blob ", digest.ToString())));
        if (resp.status == 206) {
          auto cr = ParseContentRange(resp.Header("content-range"));
          if (!cr.ok() || !cr->total || cr->last + 1 != *cr->total ||
              resp.body.size() != cr->length()) {
            return absl::DataLossError(StrCat("blob ", digest.ToString(), ": bad answer to a suffix range: ",
                                              cr.ok() ? "not the tail" : cr.status().message()));
          }
          tail.size = *cr->total;
          tail.bytes = std::move(resp.body);
        } else {  // 200: the server ignored the range; keep the tail of the whole blob
          tail.size = resp.body.size();
          tail.bytes = resp.body.size() > max_bytes ? resp.body.substr(resp.body.size() - max_bytes)
                                                    : std::move(resp.body);
        }
        return absl::OkStatus();
      }));
  return tail;
}

absl::StatusOr<std::unique_ptr<RegistryBlobSource>> RegistryClient::OpenBlob(
    const Reference& ref, const Sha256& digest, std::optional<uint64_t> size) {
  ASSIGN_OR_RETURN(auto eps, Endpoints(ref.domain, kCapPull));
  if (!size) {
    ASSIGN_OR_RETURN(size, BlobSize(ref, digest));
  }
  return std::make_unique<RegistryBlobSource>(this, ref, digest, *size, std::move(eps));
}

}  // namespace lazysnap::registry

// RegistryClient's write side (blobs, manifests, tags) and referrers.
#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/blob_source.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "registry/client.h"

namespace lazysnap::registry {
namespace {

std::string WithQuery(std::string_view url, std::string_view param) {
  return StrCat(url, url.find('?') == std::string_view::npos ? "?" : "&", param);
}

// Starts an upload (or a mount when `mount_from` is set): the Location of the session, or
// "" when the mount happened (201).
absl::StatusOr<std::string> StartUpload(Session& session, const RegistryEndpoint& ep,
                                        const Reference& ref, const Sha256& digest,
                                        std::string_view mount_from, absl::Duration timeout) {
  HttpRequest req;
  req.method = "POST";
  std::string suffix = "blobs/uploads/";
  if (!mount_from.empty()) {
    suffix = StrCat(suffix, "?mount=", digest.ToString(), "&from=", mount_from);
  }
  req.url = ApiUrl(ep, ref.domain, ref.repository, suffix);
  req.timeout = timeout;
  std::vector<std::string> scopes = {RepositoryScope(ref.repository, true)};
  if (!mount_from.empty()) scopes.push_back(RepositoryScope(mount_from, false));
  ASSIGN_OR_RETURN(HttpResponse resp, session.Send(ep, scopes, std::move(req)));
  RETURN_IF_ERROR(HttpStatusToStatus(resp, StrCat("start upload to ", ref.Name())));
  if (resp.status == 201 && !mount_from.empty()) return std::string();
  std::string location = resp.Header("location");
  if (location.empty()) {
    return absl::FailedPreconditionError(StrCat("upload to ", ref.Name(), ": no Location"));
  }
  return ResolveLocation(ep.Root(), location);
}

// A BlobSource over bytes the caller keeps alive (PushBlob's argument).
class ViewBlobSource : public BlobSource {
 public:
  explicit ViewBlobSource(std::string_view data) : data_(data) {}
  uint64_t Size() const override { return data_.size(); }
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override {
    if (offset > data_.size() || buf.size() > data_.size() - offset) {
      return absl::OutOfRangeError("read past the end");
    }
    std::memcpy(buf.data(), data_.data() + offset, buf.size());
    return absl::OkStatus();
  }

 private:
  std::string_view data_;
};

// Sends the bytes of `src` to the upload session at `location` and commits them as `digest`:
// one PUT up to `chunk_size`, else a PATCH per chunk and an empty PUT.
absl::Status FinishUpload(Session& session, const RegistryEndpoint& ep, const Reference& ref,
                          std::string location, BlobSource& src, const Sha256& digest,
                          size_t chunk_size, absl::Duration timeout) {
  const std::vector<std::string> scopes = {RepositoryScope(ref.repository, true)};
  const uint64_t size = src.Size();
  std::string tail;
  if (size > chunk_size) {
    for (uint64_t off = 0; off < size; off += chunk_size) {
      HttpRequest req;
      ASSIGN_OR_RETURN(req.body, ReadRange(src, off, std::min<uint64_t>(chunk_size, size - off)));
      req.method = "PATCH";
      req.url = location;
      req.timeout = timeout;
      req.AddHeader("Content-Type", "application/octet-stream");
      req.AddHeader("Content-Range", StrCat(off, "-", off + req.body.size() - 1));
      ASSIGN_OR_RETURN(HttpResponse resp, session.Send(ep, scopes, std::move(req)));
      RETURN_IF_ERROR(HttpStatusToStatus(resp, StrCat("upload chunk to ", ref.Name())));
      std::string next = resp.Header("location");
      if (!next.empty()) location = ResolveLocation(ep.Root(), next);
    }
  } else {
    ASSIGN_OR_RETURN(tail, ReadRange(src, 0, size));
  }
  HttpRequest put;
  put.method = "PUT";
  put.url = WithQuery(location, StrCat("digest=", digest.ToString()));
  put.timeout = timeout;
  put.body = std::move(tail);
  put.AddHeader("Content-Type", "application/octet-stream");
  ASSIGN_OR_RETURN(HttpResponse resp, session.Send(ep, scopes, std::move(put)));
  RETURN_IF_ERROR(HttpStatusToStatus(resp, StrCat("commit upload to ", ref.Name())));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Descriptor> RegistryClient::PushBlob(const Reference& ref, std::string_view data) {
  ViewBlobSource src(data);
  return PushBlobFrom(ref, src, Sha256::Of(data));
}

absl::StatusOr<Descriptor> RegistryClient::PushBlobFrom(const Reference& ref, BlobSource& src,
                                                        const Sha256& digest) {
  Descriptor d;
  d.digest = digest;
  d.size = static_cast<int64_t>(src.Size());
  ASSIGN_OR_RETURN(auto eps, Endpoints(ref.domain, kCapPush));
  RETURN_IF_ERROR(RetryOverEndpoints(
      options_.retry, eps.size(), nullptr, [&](size_t i, absl::Duration timeout) -> absl::Status {
        const RegistryEndpoint& ep = eps[i];
        HttpRequest head;
        head.method = "HEAD";
        head.url = ApiUrl(ep, ref.domain, ref.repository, StrCat("blobs/", d.digest.ToString()));
        head.timeout = timeout;
        ASSIGN_OR_RETURN(HttpResponse exists,
                         session_.Send(ep, {RepositoryScope(ref.repository, true)}, head));
        if (exists.status == 200) return absl::OkStatus();
        ASSIGN_OR_RETURN(std::string location,
                         StartUpload(session_, ep, ref, d.digest, "", timeout));
        return FinishUpload(session_, ep, ref, location, src, d.digest, options_.upload_chunk_size,
                            timeout);
      }));
  return d;
}

absl::StatusOr<bool> RegistryClient::MountBlob(const Reference& ref, std::string_view from,
                                               const Sha256& digest) {
  ASSIGN_OR_RETURN(auto eps, Endpoints(ref.domain, kCapPush));
  bool mounted = false;
  RETURN_IF_ERROR(RetryOverEndpoints(
      options_.retry, eps.size(), nullptr, [&](size_t i, absl::Duration timeout) -> absl::Status {
        ASSIGN_OR_RETURN(std::string location,
                         StartUpload(session_, eps[i], ref, digest, from, timeout));
        mounted = location.empty();
        if (!mounted) {  // the registry opened an upload instead: abandon it
          HttpRequest del;
          del.method = "DELETE";
          del.url = location;
          del.timeout = timeout;
          (void)session_.Send(eps[i], {RepositoryScope(ref.repository, true)}, del);
        }
        return absl::OkStatus();
      }));
  return mounted;
}

absl::StatusOr<Descriptor> RegistryClient::PushManifest(const Reference& ref,
                                                        std::string_view media_type,
                                                        std::string_view bytes) {
  Descriptor d = DescriptorOf(media_type, bytes);
  ASSIGN_OR_RETURN(auto eps, Endpoints(ref.domain, kCapPush));
  bool indexed_subject = false;
  RETURN_IF_ERROR(RetryOverEndpoints(
      options_.retry, eps.size(), nullptr, [&](size_t i, absl::Duration timeout) -> absl::Status {
        HttpRequest put;
        put.method = "PUT";
        put.url = ApiUrl(eps[i], ref.domain, ref.repository, StrCat("manifests/", ref.Object()));
        put.timeout = timeout;
        put.body = std::string(bytes);
        put.AddHeader("Content-Type", std::string(media_type));
        ASSIGN_OR_RETURN(HttpResponse resp,
                         session_.Send(eps[i], {RepositoryScope(ref.repository, true)}, put));
        RETURN_IF_ERROR(HttpStatusToStatus(resp, StrCat("push manifest ", ref.String())));
        std::string got = resp.Header("docker-content-digest");
        if (!got.empty() && got != d.digest.ToString()) {
          return absl::DataLossError(StrCat("push manifest ", ref.String(), ": registry says ", got,
                                            ", sent ", d.digest.ToString()));
        }
        indexed_subject = !resp.Header("oci-subject").empty();
        return absl::OkStatus();
      }));
  nlohmann::json doc = nlohmann::json::parse(bytes, nullptr, false);
  if (indexed_subject || doc.is_discarded() || !doc.is_object() || !doc.contains("subject")) {
    return d;
  }
  const nlohmann::json& subject = doc["subject"];
  if (!subject.is_object() || !subject.contains("digest") || !subject["digest"].is_string()) {
    return absl::InvalidArgumentError("manifest subject without a digest");
  }
  ASSIGN_OR_RETURN(Sha256 subject_digest, Sha256::Parse(subject["digest"].get<std::string>()));
  Descriptor referrer = d;
  if (doc.contains("artifactType") && doc["artifactType"].is_string()) {
    referrer.json["artifactType"] = doc["artifactType"];
  } else if (doc.contains("config") && doc["config"].is_object() &&
             doc["config"].contains("mediaType")) {
    referrer.json["artifactType"] = doc["config"]["mediaType"];
  }
  if (doc.contains("annotations") && doc["annotations"].is_object()) {
    for (auto it = doc["annotations"].begin(); it != doc["annotations"].end(); ++it) {
      if (it.value().is_string()) referrer.annotations[it.key()] = it.value().get<std::string>();
    }
  }
  RETURN_IF_ERROR(UpdateReferrersTag(ref, subject_digest, referrer));
  return d;
}

absl::Status RegistryClient::UpdateReferrersTag(const Reference& ref, const Sha256& subject,
                                                const Descriptor& referrer) {
  Reference tag = ref.WithObject(StrCat("sha256-", subject.Hex()));
  Index index;
  index.media_type = kOciIndexMediaType;
  auto existing = FetchManifest(tag);
  if (existing.ok()) {
    ASSIGN_OR_RETURN(index, ParseIndex(existing->bytes));
  } else if (!absl::IsNotFound(existing.status())) {
    return existing.status();
  }
  for (const Descriptor& e : index.manifests) {
    if (e.digest == referrer.digest) return absl::OkStatus();
  }
  index.manifests.push_back(referrer);
  std::string bytes = SerializeIndex(index);
  return PushManifest(tag, kOciIndexMediaType, bytes).status();
}

absl::StatusOr<std::vector<Descriptor>> RegistryClient::Referrers(const Reference& ref,
                                                                  const Sha256& subject,
                                                                  std::string_view artifact_type) {
  ASSIGN_OR_RETURN(auto eps, Endpoints(ref.domain, kCapPull));
  std::string bytes;
  bool api = false;
  absl::Status s = RetryOverEndpoints(
      options_.retry, eps.size(), nullptr, [&](size_t i, absl::Duration timeout) -> absl::Status {
        HttpRequest req;
        std::string suffix = StrCat("referrers/", subject.ToString());
        req.url = ApiUrl(eps[i], ref.domain, ref.repository, suffix);
        if (!artifact_type.empty())
          req.url = WithQuery(req.url, StrCat("artifactType=", artifact_type));
        req.AddHeader("Accept", kOciIndexMediaType);
        req.timeout = timeout;
        req.max_body = options_.max_manifest_bytes;
        ASSIGN_OR_RETURN(HttpResponse resp,
                         session_.Send(eps[i], {RepositoryScope(ref.repository, false)}, req));
        RETURN_IF_ERROR(HttpStatusToStatus(resp, StrCat("referrers of ", subject.ToString())));
        bytes = std::move(resp.body);
        api = true;
        return absl::OkStatus();
      });
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  if (!api) {  // no referrers API: the "sha256-<hex>" tag schema
    auto fetched = FetchManifest(ref.WithObject(StrCat("sha256-", subject.Hex())));
    if (absl::IsNotFound(fetched.status())) return std::vector<Descriptor>();
    if (!fetched.ok()) return fetched.status();
    bytes = std::move(fetched->bytes);
  }
  ASSIGN_OR_RETURN(Index index, ParseIndex(bytes));
  std::vector<Descriptor> out;
  for (Descriptor& d : index.manifests) {
    if (!artifact_type.empty()) {
      auto at = d.json.find("artifactType");
      if (at == d.json.end() || !at->is_string() || at->get<std::string>() != artifact_type) {
        continue;
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace lazysnap::registry

#include "registry/blob_reader.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "registry/client.h"
#include "registry/ranges.h"
#include "registry/retry.h"
#include "registry/session.h"

namespace lazysnap::registry {
namespace {

constexpr size_t kMaxRangesPerRequest = 32;
constexpr int kMaxRedirects = 5;
constexpr size_t kParallelSingleRanges = 8;

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

std::string RootOf(std::string_view url) {
  size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, url.find('/', scheme + 3)));
}

}  // namespace

RegistryBlobSource::RegistryBlobSource(RegistryClient* client, Reference ref, Sha256 digest,
                                       uint64_t size, std::vector<RegistryEndpoint> endpoints)
    : client_(client),
      ref_(std::move(ref)),
      digest_(digest),
      size_(size),
      endpoints_(std::move(endpoints)),
      redirects_(endpoints_.size()) {}

absl::Status RegistryBlobSource::ReadAt(uint64_t offset, absl::Span<char> buf) {
  RangeRead r{offset, buf};
  return ReadRanges(absl::MakeConstSpan(&r, 1));
}

absl::Status RegistryBlobSource::ReadRanges(absl::Span<const RangeRead> ranges) {
  std::vector<RangeRead> todo;
  for (const RangeRead& r : ranges) {
    if (r.offset > size_ || r.buf.size() > size_ - r.offset) {
      return absl::OutOfRangeError(StrCat("read of ", r.buf.size(), " bytes at ", r.offset,
                                          " runs past the end of blob ", digest_.ToString(), " (",
                                          size_, " bytes)"));
    }
    if (!r.buf.empty()) todo.push_back(r);
  }
  for (size_t start = 0; start < todo.size(); start += kMaxRangesPerRequest) {
    absl::Span<const RangeRead> batch =
        absl::MakeConstSpan(todo).subspan(start, kMaxRangesPerRequest);
    size_t preferred;
    {
      absl::MutexLock l(&mu_);
      preferred = preferred_;
    }
    absl::Status s = RetryOverEndpoints(
        client_->options().retry, endpoints_.size(), &preferred,
        [&](size_t i, absl::Duration timeout) { return Attempt(i, batch, timeout); });
    if (!s.ok()) {
      return absl::Status(
          s.code(), StrCat("blob ", digest_.ToString(), " of ", ref_.Name(), ": ", s.message()));
    }
    absl::MutexLock l(&mu_);
    if (preferred != preferred_) {
      LZ_LOG(kWarning, "registry: blob ", digest_.ToString(), " of ", ref_.Name(),
             " now read from ", endpoints_[preferred].host, " (", endpoints_[preferred_].host,
             " failed)");
    }
    preferred_ = preferred;
  }
  return absl::OkStatus();
}

absl::Status RegistryBlobSource::Fetch(size_t i, const std::string& range_header,
                                       absl::Duration timeout, HttpResponse* out) {
  const RegistryEndpoint& ep = endpoints_[i];
  std::string redirect;
  {
    absl::MutexLock l(&mu_);
    redirect = redirects_[i];
  }
  HttpRequest req;
  req.timeout = timeout;
  req.max_body = size_ + (size_t{64} << 10);
  if (!range_header.empty()) req.AddHeader("Range", range_header);
  if (!redirect.empty()) {
    req.url = redirect;
    ++requests_;
    auto resp = client_->session().SendPlain(req);
    if (!resp.ok() || resp->status / 100 != 2) {
      absl::MutexLock l(&mu_);
      redirects_[i].clear();
      return absl::UnavailableError(
          StrCat("cached blob storage location failed (",
                 resp.ok() ? StrCat("HTTP ", resp->status) : std::string(resp.status().message()),
                 "); asking the registry again"));
    }
    *out = std::move(*resp);
    return absl::OkStatus();
  }
  req.url = ApiUrl(ep, ref_.domain, ref_.repository, StrCat("blobs/", digest_.ToString()));
  ++requests_;
  ASSIGN_OR_RETURN(HttpResponse resp,
                   client_->session().Send(ep, {RepositoryScope(ref_.repository, false)}, req));
  std::string base = ep.Root();
  for (int hop = 0; IsRedirect(resp.status); ++hop) {
    std::string location = resp.Header("location");
    if (location.empty() || hop == kMaxRedirects) {
      return absl::FailedPreconditionError(StrCat("bad redirect from ", ep.host));
    }
    HttpRequest next;
    next.url = ResolveLocation(base, location);
    next.timeout = timeout;
    next.max_body = req.max_body;
    if (!range_header.empty()) next.AddHeader("Range", range_header);
    base = RootOf(next.url);
    ++requests_;
    ASSIGN_OR_RETURN(resp, client_->session().SendPlain(next));
    if (resp.status / 100 == 2) {
      absl::MutexLock l(&mu_);
      redirects_[i] = next.url;
    }
  }
  *out = std::move(resp);
  return absl::OkStatus();
}

absl::Status RegistryBlobSource::Fill(const HttpResponse& resp, absl::Span<const RangeRead> ranges,
                                      std::vector<bool>* covered) {
  bytes_ += resp.body.size();
  http_version_ = resp.http_version;
  std::vector<BodyPart> parts;
  if (resp.status == 200) {
    if (resp.body.size() != size_) {
      return absl::DataLossError(
          StrCat("200 answer of ", resp.body.size(), " bytes for a ", size_, "-byte blob"));
    }
    parts.push_back({ContentRange{0, size_ - 1, size_}, resp.body});
  } else if (resp.status == 206) {
    if (auto boundary = ByterangesBoundary(resp.Header("content-type"))) {
      ASSIGN_OR_RETURN(parts, ParseByteranges(resp.body, *boundary));
    } else {
      auto cr = ParseContentRange(resp.Header("content-range"));
      if (!cr.ok()) return absl::DataLossError(StrCat("206 answer: ", cr.status().message()));
      if (resp.body.size() != cr->length()) {
        return absl::DataLossError(
            StrCat("short body: ", resp.body.size(), " of ", cr->length(), " bytes"));
      }
      parts.push_back({*cr, resp.body});
    }
  } else {
    return absl::DataLossError(StrCat("unexpected HTTP ", resp.status, " to a range request"));
  }
  for (const BodyPart& p : parts) {
    if (p.range.total && *p.range.total != size_) {
      return absl::DataLossError(
          StrCat("Content-Range says the blob has ", *p.range.total, " bytes, not ", size_));
    }
  }
  covered->assign(ranges.size(), false);
  for (size_t j = 0; j < ranges.size(); ++j) {
    const RangeRead& r = ranges[j];
    for (const BodyPart& p : parts) {
      if (p.range.first <= r.offset && r.offset + r.buf.size() - 1 <= p.range.last) {
        std::memcpy(r.buf.data(), p.data.data() + (r.offset - p.range.first), r.buf.size());
        (*covered)[j] = true;
        break;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status RegistryBlobSource::Attempt(size_t i, absl::Span<const RangeRead> ranges,
                                         absl::Duration timeout) {
  bool multi = ranges.size() > 1;
  if (multi) {
    absl::MutexLock l(&mu_);
    multi = multi_range_ != MultiRange::kNo && redirects_[i].empty();
  }
  if (ranges.size() > 1 && !multi) return AttemptEach(i, ranges, timeout);
  std::string header = "bytes=";
  for (size_t j = 0; j < ranges.size(); ++j) {
    StrAppend(&header, j ? "," : "", ranges[j].offset, "-",
              ranges[j].offset + ranges[j].buf.size() - 1);
  }
  HttpResponse resp;
  RETURN_IF_ERROR(Fetch(i, header, timeout, &resp));
  RETURN_IF_ERROR(HttpStatusToStatus(resp, StrCat("range read from ", endpoints_[i].host)));
  std::vector<bool> covered;
  RETURN_IF_ERROR(Fill(resp, ranges, &covered));
  if (ranges.size() == 1) {
    if (!covered[0]) return absl::DataLossError("answer does not hold the requested range");
    return absl::OkStatus();
  }
  bool all = std::find(covered.begin(), covered.end(), false) == covered.end();
  {
    absl::MutexLock l(&mu_);
    multi_range_ = all && resp.status == 206 ? MultiRange::kYes : MultiRange::kNo;
  }
  std::vector<RangeRead> rest;
  for (size_t j = 0; j < ranges.size(); ++j) {
    if (!covered[j]) rest.push_back(ranges[j]);
  }
  return rest.empty() ? absl::OkStatus() : AttemptEach(i, rest, timeout);
}

absl::Status RegistryBlobSource::AttemptEach(size_t i, absl::Span<const RangeRead> ranges,
                                             absl::Duration timeout) {
  // One request per range, kParallelSingleRanges at a time (the pool multiplexes them).
  std::vector<absl::Status> results(ranges.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t j; (j = next++) < ranges.size();) {
      results[j] = Attempt(i, ranges.subspan(j, 1), timeout);
    }
  };
  std::vector<std::thread> helpers;
  size_t n = std::min(ranges.size(), kParallelSingleRanges);
  for (size_t h = 1; h < n; ++h) helpers.emplace_back(work);
  work();
  for (auto& t : helpers) t.join();
  for (const absl::Status& s : results) RETURN_IF_ERROR(s);
  return absl::OkStatus();
}

absl::Status RegistryBlobSource::AttemptWhole(size_t i, std::string* out, absl::Duration timeout) {
  HttpResponse resp;
  RETURN_IF_ERROR(Fetch(i, "", timeout, &resp));
  RETURN_IF_ERROR(HttpStatusToStatus(resp, StrCat("blob from ", endpoints_[i].host)));
  bytes_ += resp.body.size();
  if (resp.status != 200 || resp.body.size() != size_) {
    return absl::DataLossError(StrCat("HTTP ", resp.status, " with ", resp.body.size(),
                                      " bytes for a ", size_, "-byte blob"));
  }
  if (Sha256::Of(resp.body) != digest_) {
    return absl::DataLossError("content does not match its digest");
  }
  *out = std::move(resp.body);
  return absl::OkStatus();
}

absl::StatusOr<std::string> RegistryBlobSource::ReadVerified() {
  std::string out;
  if (size_ == 0) {
    if (Sha256::Of("") != digest_) return absl::DataLossError("empty blob with another digest");
    return out;
  }
  size_t preferred;
  {
    absl::MutexLock l(&mu_);
    preferred = preferred_;
  }
  absl::Status s = RetryOverEndpoints(
      client_->options().retry, endpoints_.size(), &preferred,
      [&](size_t i, absl::Duration timeout) { return AttemptWhole(i, &out, timeout); });
  if (!s.ok()) {
    return absl::Status(
        s.code(), StrCat("blob ", digest_.ToString(), " of ", ref_.Name(), ": ", s.message()));
  }
  return out;
}

}  // namespace lazysnap::registry

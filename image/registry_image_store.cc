#include "image/registry_image_store.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "base/blob_source.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "registry/blob_reader.h"

namespace lazysnap {
namespace {

constexpr size_t kReadChunk = size_t{8} << 20;  // bytes per range request when streaming

// Reads a registry blob front to back in large ranges; checks size and digest at the end.
class RegistryBlobStream : public InputStream {
 public:
  RegistryBlobStream(std::unique_ptr<registry::RegistryBlobSource> src, Sha256 digest)
      : src_(std::move(src)), digest_(digest) {}
  absl::StatusOr<size_t> Read(absl::Span<char> buf) override {
    if (pos_ == buf_.size()) {
      if (offset_ == src_->Size()) {
        if (!checked_) {
          checked_ = true;
          if (hasher_.Finish() != digest_) {
            return absl::DataLossError(StrCat("blob ", digest_.ToString(), ": digest mismatch"));
          }
        }
        return 0;
      }
      buf_.resize(std::min<uint64_t>(kReadChunk, src_->Size() - offset_));
      RETURN_IF_ERROR(src_->ReadAt(offset_, absl::MakeSpan(buf_)));
      offset_ += buf_.size();
      hasher_.Update(buf_.data(), buf_.size());
      pos_ = 0;
    }
    size_t n = std::min(buf.size(), buf_.size() - pos_);
    std::copy_n(buf_.data() + pos_, n, buf.data());
    pos_ += n;
    return n;
  }

 private:
  std::unique_ptr<registry::RegistryBlobSource> src_;
  Sha256 digest_;
  Sha256Hasher hasher_;
  std::vector<char> buf_;
  size_t pos_ = 0;
  uint64_t offset_ = 0;
  bool checked_ = false;
};

// Spools into the store's private layout; Commit verifies, then uploads.
class RegistryBlobSink : public BlobSink {
 public:
  RegistryBlobSink(const RegistryImageStore* store, std::unique_ptr<BlobWriter> w)
      : store_(store), w_(std::move(w)) {}
  absl::Status Write(std::string_view data) override { return w_->Write(data); }
  uint64_t bytes() const override { return w_->bytes(); }
  absl::Status Commit(const Sha256& expected) override {
    RETURN_IF_ERROR(w_->Commit(expected).status());
    return store_->PushSpooled(expected);
  }

 private:
  const RegistryImageStore* store_;
  std::unique_ptr<BlobWriter> w_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RegistryImageStore>> RegistryImageStore::Create(
    registry::RegistryClient* client, registry::Reference ref, const std::string& temp_dir) {
  std::string base = temp_dir;
  if (base.empty()) {
    const char* t = std::getenv("TMPDIR");
    base = t != nullptr && *t != '\0' ? t : "/tmp";
  }
  std::string tmpl = StrCat(base, "/lazysnap-push-XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError(StrCat("mkdtemp in ", base, ": ", std::strerror(errno)));
  }
  auto spool = OciLayout::OpenOrCreate(tmpl);
  if (!spool.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(tmpl, ec);
    return spool.status();
  }
  return std::unique_ptr<RegistryImageStore>(
      new RegistryImageStore(client, std::move(ref), tmpl, *std::move(spool)));
}

RegistryImageStore::~RegistryImageStore() {
  std::error_code ec;
  std::filesystem::remove_all(spool_dir_, ec);
}

UploadStats RegistryImageStore::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

absl::StatusOr<Descriptor> RegistryImageStore::Resolve(std::string_view tag) const {
  registry::Reference r = tag.empty() ? ref_ : ref_.WithObject(tag);
  auto d = client_->Resolve(r);
  if (absl::IsNotFound(d.status())) {
    return absl::NotFoundError(StrCat(r.String(), ": image not found (no such repository or tag; ",
                                      d.status().message(), ")"));
  }
  if (!d.ok()) {
    return absl::Status(d.status().code(), StrCat(r.String(), ": ", d.status().message()));
  }
  return d;
}

absl::StatusOr<std::string> RegistryImageStore::ReadManifest(const Descriptor& d,
                                                             size_t max_size) const {
  ASSIGN_OR_RETURN(registry::FetchedManifest m,
                   client_->FetchManifest(ref_.WithObject(d.digest.ToString())));
  if (m.bytes.size() > max_size) {
    return absl::InvalidArgumentError(
        StrCat("manifest ", d.digest.ToString(), " is larger than ", max_size, " bytes"));
  }
  if (d.size >= 0 && m.bytes.size() != static_cast<uint64_t>(d.size)) {
    return absl::DataLossError(
        StrCat("manifest ", d.digest.ToString(), " has ", m.bytes.size(), " bytes, not ", d.size));
  }
  return std::move(m.bytes);
}

absl::StatusOr<std::string> RegistryImageStore::ReadBlob(const Sha256& digest,
                                                         int64_t expected_size,
                                                         size_t max_size) const {
  if (expected_size > 0 && static_cast<uint64_t>(expected_size) > max_size) {
    return absl::InvalidArgumentError(
        StrCat("blob ", digest.ToString(), " is larger than ", max_size, " bytes"));
  }
  ASSIGN_OR_RETURN(std::string data, client_->FetchBlob(ref_, digest, max_size));
  if (expected_size >= 0 && data.size() != static_cast<uint64_t>(expected_size)) {
    return absl::DataLossError(
        StrCat("blob ", digest.ToString(), " has ", data.size(), " bytes, not ", expected_size));
  }
  return data;
}

absl::StatusOr<std::unique_ptr<InputStream>> RegistryImageStore::OpenBlob(
    const Sha256& digest, int64_t expected_size) const {
  std::optional<uint64_t> size;
  if (expected_size >= 0) size = static_cast<uint64_t>(expected_size);
  ASSIGN_OR_RETURN(auto src, client_->OpenBlob(ref_, digest, size));
  return std::unique_ptr<InputStream>(new RegistryBlobStream(std::move(src), digest));
}

bool RegistryImageStore::HasBlob(const Sha256& digest) const {
  return client_->BlobSize(ref_, digest).ok();
}

bool RegistryImageStore::SameStore(const ImageStore& other) const {
  auto* o = dynamic_cast<const RegistryImageStore*>(&other);
  return o != nullptr && o->ref_.domain == ref_.domain && o->ref_.repository == ref_.repository;
}

absl::StatusOr<std::unique_ptr<BlobSink>> RegistryImageStore::NewBlobWriter() const {
  ASSIGN_OR_RETURN(auto w, spool_->NewBlobWriter());
  return std::unique_ptr<BlobSink>(new RegistryBlobSink(this, std::move(w)));
}

absl::Status RegistryImageStore::PushFromSource(BlobSource& src, const Sha256& digest) const {
  if (HasBlob(digest)) {
    absl::MutexLock lock(&mu_);
    ++stats_.blobs_existing;
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(client_->PushBlobFrom(ref_, src, digest).status());
  LZ_LOG(kInfo, "uploaded ", digest.ToString(), " (", src.Size(), " bytes) to ", ref_.Name());
  absl::MutexLock lock(&mu_);
  ++stats_.blobs_uploaded;
  stats_.bytes_uploaded += src.Size();
  return absl::OkStatus();
}

absl::Status RegistryImageStore::PushSpooled(const Sha256& digest) const {
  std::string path = spool_->BlobPath(digest);
  absl::Status s = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(auto src, FileBlobSource::Open(path));
    return PushFromSource(*src, digest);
  }();
  ::unlink(path.c_str());
  return s;
}

absl::StatusOr<Descriptor> RegistryImageStore::WriteBlob(std::string_view media_type,
                                                         std::string_view data) const {
  Descriptor d = DescriptorOf(media_type, data);
  MemoryBlobSource src{std::string(data)};
  RETURN_IF_ERROR(PushFromSource(src, d.digest));
  return d;
}

absl::StatusOr<Descriptor> RegistryImageStore::WriteManifest(std::string_view media_type,
                                                             std::string_view data) const {
  Descriptor d = DescriptorOf(media_type, data);
  RETURN_IF_ERROR(
      client_->PushManifest(ref_.WithObject(d.digest.ToString()), media_type, data).status());
  absl::MutexLock lock(&mu_);
  ++stats_.manifests_pushed;
  manifests_[d.digest.Hex()] = {std::string(media_type), std::string(data)};
  return d;
}

absl::Status RegistryImageStore::CopyBlobFrom(const ImageStore& src, const Descriptor& d) const {
  if (HasBlob(d.digest)) {
    absl::MutexLock lock(&mu_);
    ++stats_.blobs_existing;
    return absl::OkStatus();
  }
  if (auto* r = dynamic_cast<const RegistryImageStore*>(&src);
      r != nullptr && r->ref_.domain == ref_.domain) {
    auto mounted = client_->MountBlob(ref_, r->ref_.repository, d.digest);
    if (mounted.ok() && *mounted) {
      absl::MutexLock lock(&mu_);
      ++stats_.blobs_mounted;
      return absl::OkStatus();
    }
    if (!mounted.ok())
      LZ_LOG(kInfo, "mount of ", d.digest.ToString(), ": ", mounted.status().ToString());
  }
  if (auto* l = dynamic_cast<const OciLayoutStore*>(&src)) {
    ASSIGN_OR_RETURN(auto file, FileBlobSource::Open(l->layout().BlobPath(d.digest)));
    return PushFromSource(*file, d.digest);
  }
  return CopyBlobStreaming(src, *this, d);
}

absl::Status RegistryImageStore::Tag(std::string_view tag, const Descriptor& d) const {
  std::pair<std::string, std::string> m;
  {
    absl::MutexLock lock(&mu_);
    auto it = manifests_.find(d.digest.Hex());
    if (it == manifests_.end()) {
      return absl::FailedPreconditionError(
          StrCat("tag ", tag, ": manifest ", d.digest.ToString(), " was not written here"));
    }
    m = it->second;
  }
  RETURN_IF_ERROR(client_->PushManifest(ref_.WithObject(tag), m.first, m.second).status());
  absl::MutexLock lock(&mu_);
  ++stats_.manifests_pushed;
  return absl::OkStatus();
}

}  // namespace lazysnap

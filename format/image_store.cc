#include "format/image_store.h"

#include <vector>

#include "base/status_macros.h"

namespace lazysnap {
namespace {

class LayoutBlobSink : public BlobSink {
 public:
  explicit LayoutBlobSink(std::unique_ptr<BlobWriter> w) : w_(std::move(w)) {}
  absl::Status Write(std::string_view data) override { return w_->Write(data); }
  absl::Status Commit(const Sha256& expected) override { return w_->Commit(expected).status(); }
  uint64_t bytes() const override { return w_->bytes(); }

 private:
  std::unique_ptr<BlobWriter> w_;
};

}  // namespace

absl::Status CopyBlobStreaming(const ImageStore& src, const ImageStore& dst, const Descriptor& d) {
  ASSIGN_OR_RETURN(auto in, src.OpenBlob(d.digest, d.size));
  ASSIGN_OR_RETURN(auto out, dst.NewBlobWriter());
  std::vector<char> buf(1 << 20);
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, in->Read(absl::MakeSpan(buf)));
    if (n == 0) break;
    RETURN_IF_ERROR(out->Write(std::string_view(buf.data(), n)));
  }
  return out->Commit(d.digest);
}

absl::StatusOr<Descriptor> OciLayoutStore::Resolve(std::string_view tag) const {
  return layout_->Resolve(tag);
}

absl::StatusOr<std::string> OciLayoutStore::ReadManifest(const Descriptor& d,
                                                         size_t max_size) const {
  return layout_->ReadBlob(d.digest, d.size, max_size);
}

absl::StatusOr<std::string> OciLayoutStore::ReadBlob(const Sha256& digest, int64_t expected_size,
                                                     size_t max_size) const {
  return layout_->ReadBlob(digest, expected_size, max_size);
}

absl::StatusOr<std::unique_ptr<InputStream>> OciLayoutStore::OpenBlob(const Sha256& digest,
                                                                      int64_t expected_size) const {
  return layout_->OpenBlob(digest, expected_size);
}

bool OciLayoutStore::HasBlob(const Sha256& digest) const { return layout_->HasBlob(digest); }

bool OciLayoutStore::SameStore(const ImageStore& other) const {
  auto* o = dynamic_cast<const OciLayoutStore*>(&other);
  return o != nullptr && layout_->SameDirectory(*o->layout_);
}

absl::StatusOr<std::unique_ptr<BlobSink>> OciLayoutStore::NewBlobWriter() const {
  ASSIGN_OR_RETURN(auto w, layout_->NewBlobWriter());
  return std::unique_ptr<BlobSink>(new LayoutBlobSink(std::move(w)));
}

absl::StatusOr<Descriptor> OciLayoutStore::WriteBlob(std::string_view media_type,
                                                     std::string_view data) const {
  return layout_->WriteBlob(media_type, data);
}

absl::StatusOr<Descriptor> OciLayoutStore::WriteManifest(std::string_view media_type,
                                                         std::string_view data) const {
  return layout_->WriteBlob(media_type, data);
}

absl::Status OciLayoutStore::CopyBlobFrom(const ImageStore& src, const Descriptor& d) const {
  if (auto* s = dynamic_cast<const OciLayoutStore*>(&src)) {
    return layout_->CopyBlobFrom(*s->layout_, d);
  }
  if (layout_->HasBlob(d.digest)) return absl::OkStatus();
  return CopyBlobStreaming(src, *this, d);
}

absl::Status OciLayoutStore::Tag(std::string_view tag, const Descriptor& d) const {
  return layout_->UpdateIndex([&](Index& index) { return SetTag(index, tag, d); });
}

}  // namespace lazysnap

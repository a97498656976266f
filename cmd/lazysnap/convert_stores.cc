#include "cmd/lazysnap/convert_stores.h"

#include "base/status_macros.h"
#include "base/stream.h"
#include "base/strings.h"

namespace lazysnap::cli {

absl::StatusOr<ImageArg> ParseImageArg(const std::string& s, bool force_layout) {
  ImageArg a;
  a.display = s;
  std::string rest = s;
  if (rest.rfind("oci:", 0) == 0) {
    rest = rest.substr(4);
    force_layout = true;
  }
  if (force_layout) {
    // "DIR[:TAG]", split at the first colon as skopeo's oci: transport does.
    size_t colon = rest.find(':');
    a.layout = true;
    a.dir = rest.substr(0, colon);
    if (colon != std::string::npos) a.tag = rest.substr(colon + 1);
    if (a.dir.empty()) return absl::InvalidArgumentError(StrCat(s, ": no layout directory"));
    return a;
  }
  auto ref = registry::Reference::Parse(rest);
  if (!ref.ok()) {
    return absl::InvalidArgumentError(StrCat(s, ": not an image reference (",
                                             ref.status().message(),
                                             "); name an OCI layout as oci:DIR[:TAG]"));
  }
  a.tag = ref->Object();
  a.ref = *std::move(ref);
  return a;
}

ConvertStores::~ConvertStores() {
  // Stores before the client they use, the client before its transport.
  src_.reset();
  dst_.reset();
  registry_.reset();
}

absl::Status ConvertStores::StartClient(const RegistryFlags& flags) {
  ASSIGN_OR_RETURN(registry_, ConnectRegistry(flags));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ImageStore>> ConvertStores::OpenOne(const ImageArg& a, bool create,
                                                                   const RegistryFlags& flags) {
  if (a.layout) {
    auto layout = create ? OciLayout::OpenOrCreate(a.dir) : OciLayout::Open(a.dir);
    if (!layout.ok()) {
      return absl::Status(layout.status().code(), StrCat(a.dir, ": ", layout.status().message()));
    }
    layouts_.push_back(*std::move(layout));
    return std::unique_ptr<ImageStore>(new OciLayoutStore(layouts_.back().get()));
  }
  ASSIGN_OR_RETURN(auto store, RegistryImageStore::Create(registry_->client.get(), *a.ref, flags.temp_dir));
  return std::unique_ptr<ImageStore>(std::move(store));
}

absl::StatusOr<std::unique_ptr<ConvertStores>> ConvertStores::Open(const ImageArg& src,
                                                                   const ImageArg& dst,
                                                                   const RegistryFlags& flags) {
  std::unique_ptr<ConvertStores> s(new ConvertStores());
  if (src.ref || dst.ref) RETURN_IF_ERROR(s->StartClient(flags));
  ASSIGN_OR_RETURN(s->src_, s->OpenOne(src, false, flags));
  ASSIGN_OR_RETURN(s->dst_, s->OpenOne(dst, true, flags));
  s->dst_registry_ = dynamic_cast<const RegistryImageStore*>(s->dst_.get());
  return s;
}

}  // namespace lazysnap::cli

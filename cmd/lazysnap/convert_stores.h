// The image stores of `lazysnap image convert`: a SRC or DST argument is an OCI layout
// ("oci:DIR[:TAG]", or "DIR[:TAG]" with --oci-layout) or a registry reference
// ("127.0.0.1:5000/repo:tag"), opened over one registry client shared by both sides.
#ifndef LAZYSNAP_CMD_LAZYSNAP_CONVERT_STORES_H_
#define LAZYSNAP_CMD_LAZYSNAP_CONVERT_STORES_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "format/image_store.h"
#include "format/oci_layout.h"
#include "image/registry_image_store.h"
#include "registry/client.h"
#include "registry/credentials.h"
#include "registry/curl_transport.h"
#include "cmd/lazysnap/registry_flags.h"

namespace lazysnap::cli {

// One side of a conversion, parsed. InvalidArgument for a malformed argument.
struct ImageArg {
  bool layout = false;
  std::string dir;  // layout
  std::string tag;  // layout tag ("" = default), or the reference's tag or digest
  std::optional<registry::Reference> ref;
  std::string display;  // for messages and the summary
};
absl::StatusOr<ImageArg> ParseImageArg(const std::string& s, bool force_layout);

// Owns what the stores need: layouts and the registry client.
class ConvertStores {
 public:
  ~ConvertStores();
  // Opens `src` (must exist) and `dst` (a layout is created if missing).
  static absl::StatusOr<std::unique_ptr<ConvertStores>> Open(const ImageArg& src,
                                                             const ImageArg& dst,
                                                             const RegistryFlags& flags);
  const ImageStore& src() const { return *src_; }
  const ImageStore& dst() const { return *dst_; }
  // Set when DST is a registry.
  const RegistryImageStore* dst_registry() const { return dst_registry_; }

 private:
  ConvertStores() = default;
  absl::StatusOr<std::unique_ptr<ImageStore>> OpenOne(const ImageArg& a, bool create,
                                                      const RegistryFlags& flags);
  absl::Status StartClient(const RegistryFlags& flags);

  std::unique_ptr<RegistryConnection> registry_;
  std::vector<std::unique_ptr<OciLayout>> layouts_;
  std::unique_ptr<ImageStore> src_, dst_;
  const RegistryImageStore* dst_registry_ = nullptr;
};

}  // namespace lazysnap::cli

#endif  // LAZYSNAP_CMD_LAZYSNAP_CONVERT_STORES_H_

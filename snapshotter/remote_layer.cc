#include "snapshotter/remote_layer.h"

#include <sys/mount.h>

#include <cerrno>

#include "base/errors.h"
#include "base/strings.h"

namespace lazysnap {
namespace {

class UnavailableRemoteLayerMounter : public RemoteLayerMounter {
 public:
  absl::Status Mount(const std::string& digest, const Labels&, const std::string&) override {
    return absl::UnavailableError(
        StrCat("remote layers are not available in this build (layer ", digest, ")"));
  }
  absl::Status Check(const std::string& dir) override {
    return absl::UnavailableError(StrCat("remote layers are not available: ", dir));
  }
  absl::Status Unmount(const std::string& dir) override {
    if (umount2(dir.c_str(), MNT_DETACH) != 0) {
      int err = errno;
      if (err == EINVAL) return absl::NotFoundError(StrCat("not a mount point: ", dir));
      return ErrnoToStatus(err, StrCat("umount ", dir));
    }
    return absl::OkStatus();
  }
};

}  // namespace

std::string LayerDigestFromLabels(const Labels& labels) {
  for (const char* key : {kCriLayerDigestLabel, kStargzLayerDigestLabel}) {
    auto it = labels.find(key);
    if (it != labels.end() && !it->second.empty()) return it->second;
  }
  return "";
}

std::unique_ptr<RemoteLayerMounter> NewUnavailableRemoteLayerMounter() {
  return std::make_unique<UnavailableRemoteLayerMounter>();
}

}  // namespace lazysnap

// The recording half of `lazysnap image optimize`: unpack an image (one platform) into a
// temporary directory (image/rootfs.h), run a workload in it with its file opens recorded
// (image/workload.h), and return the image's files in first-open order, ready to be the
// prioritized files of a conversion (ConvertOptions::prioritized_files), so that what the
// workload needs at startup is one contiguous range at the front of each layer, followed by
// the prefetch landmark.
#ifndef LAZYSNAP_IMAGE_OPTIMIZE_H_
#define LAZYSNAP_IMAGE_OPTIMIZE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "format/image_store.h"
#include "format/oci.h"
#include "image/rootfs.h"
#include "image/workload.h"

namespace lazysnap {

struct RecordOptions {
  Platform platform = Platform::Default();  // the manifest picked from an index
  // The workload. An empty argv runs the image's Entrypoint + Cmd; env entries are added to
  // (and override, by key) the image's Env; an empty workdir is the image's WorkingDir.
  // timeout, wait_for and output_fd as in WorkloadOptions.
  WorkloadOptions workload;
  // Where the image is unpacked ("" = $TMPDIR or /tmp): needs room for the whole image.
  std::string temp_dir;
};

struct Recording {
  std::vector<std::string> argv;   // what ran
  WorkloadResult workload;         // files: everything it opened below the root
  std::vector<std::string> files;  // the image's own regular files among them, in order
  ApplyStats unpacked;
  absl::Duration unpack_time, run_time;
};

// Unpacks image `tag` of `src` and runs the workload in it (see image/workload.h: the caller
// must be root and in a private mount namespace). The temporary directory is removed before
// returning. Errors: NotFound (tag, platform, blob), InvalidArgument (not a container image,
// no command), the unpacker's and the runner's errors. A workload that fails is not an error.
absl::StatusOr<Recording> RecordImageWorkload(const ImageStore& src, std::string_view tag,
                                              const RecordOptions& options);

}  // namespace lazysnap

#endif  // LAZYSNAP_IMAGE_OPTIMIZE_H_

// What `lazysnap image convert` and `lazysnap image optimize` share: the conversion flags,
// their checking, opening SRC and DST, and running the conversion with its report (summary,
// --json, -q). Each command adds its own flags and steps around these.
#ifndef LAZYSNAP_CMD_LAZYSNAP_CONVERT_FLAGS_H_
#define LAZYSNAP_CMD_LAZYSNAP_CONVERT_FLAGS_H_

#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "cmd/lazysnap/convert_stores.h"
#include "cmd/lazysnap/registry_flags.h"
#include "format/image_convert.h"

namespace lazysnap::cli {

struct ConvertFlags {
  bool oci_layout = false;
  std::string src, dst;
  std::string format = "estargz";
  uint64_t chunk_size = ConvertOptions().chunk_size;
  int level = 0;
  std::vector<std::string> prioritize_files;
  std::string prioritize_list;
  std::vector<std::string> platforms;
  bool all_platforms = false;
  bool quiet = false;
  bool json = false;
  int jobs = 0;
  std::string temp_dir;
  RegistryFlags registry;
};

// Registers SRC, DST and the conversion flags on `cmd` (writing `*f`, which must outlive the
// parse). `optimize`: the registry timeout is --registry-timeout (--timeout is the workload's)
// and --all-platforms is left out (a workload runs on one platform).
void AddConvertFlags(CLI::App& cmd, ConvertFlags* f, bool optimize);

// A path as the converter expects it: relative to the layer root, no "./" or "/" prefix.
std::string NormalizePath(std::string p);

// The flags as options; InvalidArgument for usage errors (bad --level, --platform, list file).
absl::StatusOr<ImageConvertOptions> BuildConvertOptions(const ConvertFlags& f);

// SRC and DST parsed and opened.
struct OpenedImages {
  ImageArg src, dst;
  std::unique_ptr<ConvertStores> stores;
};
// Parses and opens SRC and DST. On failure returns the exit code (after printing the error)
// through `*exit_code`.
std::unique_ptr<OpenedImages> OpenImages(const ConvertFlags& f, int* exit_code);

// Converts, with a progress display on a terminal unless -q, and prints the result: the
// summary, or with --json the result's JSON plus upload counters for a registry DST and the
// members of `extra_json` (an object); without --json, the summary unless `summary` is false.
// Returns the exit code.
int ConvertAndReport(const ConvertFlags& f, OpenedImages& images,
                     const ImageConvertOptions& options,
                     const nlohmann::ordered_json& extra_json = nlohmann::ordered_json::object(),
                     bool summary = true);

}  // namespace lazysnap::cli

#endif  // LAZYSNAP_CMD_LAZYSNAP_CONVERT_FLAGS_H_

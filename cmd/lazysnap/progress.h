// A terminal display of layer conversion progress: one line per layer (bytes of the source
// layer converted, percentage, uncompressed bytes), redrawn in place with ANSI escapes at
// most ten times a second. Used only when stderr is a terminal.
#ifndef LAZYSNAP_CMD_LAZYSNAP_PROGRESS_H_
#define LAZYSNAP_CMD_LAZYSNAP_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "format/image_convert.h"

namespace lazysnap::cli {

// Human-readable byte count: "512 B", "1.5 KiB", "12.3 MiB", ...
std::string HumanBytes(uint64_t n);

// The text of one layer's line (no newline).
std::string ProgressLine(const LayerProgress& p);

// Not thread-safe: calls must be serialized (ConvertImage serializes its progress calls).
// `out` is not owned and must outlive the display.
class ProgressDisplay {
 public:
  explicit ProgressDisplay(std::FILE* out) : out_(out) {}
  // Records `p` and redraws if enough time has passed (or a layer finished).
  void Update(const LayerProgress& p);
  // Draws the final state.
  void Finish();

 private:
  void Redraw();
  std::FILE* out_;
  std::vector<LayerProgress> layers_;
  std::vector<bool> seen_;
  size_t lines_drawn_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace lazysnap::cli

#endif  // LAZYSNAP_CMD_LAZYSNAP_PROGRESS_H_

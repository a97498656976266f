#include "cmd/lazysnap/progress.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "base/strings.h"

namespace lazysnap::cli {

std::string HumanBytes(uint64_t n) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  if (unit == 0) return absl::StrFormat("%d B", n);
  return absl::StrFormat("%.1f %s", v, kUnits[unit]);
}

std::string ProgressLine(const LayerProgress& p) {
  std::string digest = p.source_digest.Hex().substr(0, 12);
  int width = static_cast<int>(std::to_string(p.count).size());
  std::string head = absl::StrFormat("[%*d/%d] %s", width, static_cast<int>(p.id + 1),
                                     static_cast<int>(p.count), digest);
  if (p.done) {
    return StrCat(head, "  done      ", HumanBytes(p.source_size), " (",
                  HumanBytes(p.uncompressed), " uncompressed)");
  }
  if (p.source_read == 0 && p.uncompressed == 0) return StrCat(head, "  waiting");
  if (p.source_size > 0 && p.source_read >= p.source_size) {
    // All input read: the converter is compressing and writing the rest.
    return StrCat(head, "  finishing ", HumanBytes(p.source_size), " (",
                  HumanBytes(p.uncompressed), " uncompressed)");
  }
  double pct = p.source_size == 0 ? 100.0
                                  : 100.0 * static_cast<double>(std::min(p.source_read,
                                                                         p.source_size)) /
                                        static_cast<double>(p.source_size);
  return StrCat(head, absl::StrFormat("  %5.1f%%  ", pct), HumanBytes(p.source_read), " / ",
                HumanBytes(p.source_size), " (", HumanBytes(p.uncompressed), " uncompressed)");
}

void ProgressDisplay::Update(const LayerProgress& p) {
  if (layers_.size() < p.count) {
    layers_.resize(p.count);
    for (size_t i = 0; i < p.count; ++i) layers_[i].id = i, layers_[i].count = p.count;
  }
  if (p.id >= layers_.size()) return;
  layers_[p.id] = p;
  auto now = std::chrono::steady_clock::now();
  if (p.done || now - last_draw_ >= std::chrono::milliseconds(100)) {
    last_draw_ = now;
    Redraw();
  }
}

void ProgressDisplay::Finish() {
  if (!layers_.empty()) Redraw();
}

void ProgressDisplay::Redraw() {
  // Few layers: a line for each. Many: the ones in progress and a count of the rest, so the
  // display never grows taller than the terminal.
  constexpr size_t kMaxLines = 12;
  std::vector<std::string> lines;
  size_t done = 0;
  for (const auto& p : layers_) {
    done += p.done ? 1 : 0;
    bool active = !p.done && (p.source_read > 0 || p.uncompressed > 0);
    if (layers_.size() <= kMaxLines || (active && lines.size() + 1 < kMaxLines)) {
      lines.push_back(ProgressLine(p));
    }
  }
  if (layers_.size() > kMaxLines) {
    lines.push_back(StrCat(done, " of ", layers_.size(), " layers done"));
  }
  std::string out;
  if (lines_drawn_ > 0) StrAppend(&out, "\x1b[", lines_drawn_, "A");  // back to the first line
  StrAppend(&out, "\r\x1b[J");                                        // clear what was drawn
  for (const auto& line : lines) StrAppend(&out, line, "\n");
  lines_drawn_ = lines.size();
  std::fputs(out.c_str(), out_);
  std::fflush(out_);
}

}  // namespace lazysnap::cli

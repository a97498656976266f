// The converter's member order: which input tar members the output keeps and in which
// order. Mirrors containerd/stargz-snapshotter's estargz.Build: a name seen again replaces
// the earlier member and takes the later position (tar semantics: later wins); prioritized
// files (with their parent directories and hard-link targets) move to the front, followed
// by the prefetch landmark.
#ifndef LAZYSNAP_FORMAT_CONVERT_PLAN_H_
#define LAZYSNAP_FORMAT_CONVERT_PLAN_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "format/index.h"
#include "format/tar.h"

namespace lazysnap {

// One tar member of the input as spooled (offsets into the spool file), or one the converter
// adds (synthetic: a landmark; its data is in `data`).
struct InputMember {
  TarEntry entry;
  std::string clean_name;      // CleanEntryName(entry.name)
  uint64_t header_offset = 0;  // first raw header block (extension headers included)
  uint64_t data_offset = 0;    // first data byte
  uint64_t end_offset = 0;     // just past the data's padding (next member's header)
  bool synthetic = false;
  std::string data;            // synthetic members' data
};

// The landmark member the output gets, if any (see PlanMemberOrder).
std::optional<InputMember> LandmarkFor(LayerFormat format,
                                       const std::vector<std::string>& prioritized);

// Whether an input member never reaches the output whatever the order (synthetic members,
// eStargz's own TOC, existing landmarks when the output gets one).
bool DroppedFromInput(const InputMember& m, LayerFormat format, bool landmark);

// Returns the output order as indices into `members`. The landmark (LandmarkFor) is
// members[0] if the caller put a synthetic member there, else it is appended. eStargz: drops stargz.index.json and existing landmarks, always
// writes a landmark (.prefetch.landmark after the prioritized files, .no.prefetch.landmark
// first when `prioritized` is empty). zstd:chunked: landmarks only when `prioritized` is not
// empty. Prioritized names not in the layer are appended to `missed` (not an error: a trace
// covers all layers of an image); their parent directories need not exist.
std::vector<uint32_t> PlanMemberOrder(std::deque<InputMember>* members, LayerFormat format,
                                      const std::vector<std::string>& prioritized,
                                      std::vector<std::string>* missed);

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_CONVERT_PLAN_H_

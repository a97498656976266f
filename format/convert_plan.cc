#include "format/convert_plan.h"

#include <string_view>
#include <unordered_map>

#include "format/estargz.h"

namespace lazysnap {
namespace {

// An ordered set of members keyed by clean name (Go's tarFile): removal leaves a hole.
class MemberList {
 public:
  void Add(uint32_t m, const std::string& name) {
    auto it = index_.find(name);
    if (it != index_.end()) stream_[it->second] = kHole;
    index_[name] = stream_.size();
    stream_.push_back(m);
  }
  bool Has(const std::string& name) const { return index_.count(name) != 0; }
  // The member called `name`, or kHole.
  uint32_t Get(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? kHole : stream_[it->second];
  }
  void Remove(const std::string& name) {
    auto it = index_.find(name);
    if (it == index_.end()) return;
    stream_[it->second] = kHole;
    index_.erase(it);
  }
  void AppendTo(std::vector<uint32_t>* out) const {
    for (uint32_t m : stream_) {
      if (m != kHole) out->push_back(m);
    }
  }
  static constexpr uint32_t kHole = ~0u;

 private:
  std::vector<uint32_t> stream_;
  std::unordered_map<std::string, size_t> index_;
};

std::string ParentOf(const std::string& clean) {
  size_t slash = clean.rfind('/');
  return slash == std::string::npos ? "" : clean.substr(0, slash);
}

// Moves `name`, its parents and (for hard links) its target from `in` to `out`. False if
// `name` itself is in neither.
bool MoveRec(const std::deque<InputMember>& members, const std::string& name, MemberList* in,
             MemberList* out, int depth) {
  if (depth > 4096) return false;
  if (name.empty()) {
    uint32_t root = in->Get(name);
    if (root != MemberList::kHole) {
      out->Add(root, name);
      in->Remove(name);
    }
    return true;
  }
  if (!in->Has(name) && !out->Has(name)) return false;
  MoveRec(members, ParentOf(name), in, out, depth + 1);  // missing parents are fine
  uint32_t m = in->Get(name);
  if (m != MemberList::kHole && members[m].entry.typeflag == '1') {
    auto target = CleanEntryName(members[m].entry.linkname);
    if (target.ok()) MoveRec(members, *target, in, out, depth + 1);
  }
  m = in->Get(name);
  if (m != MemberList::kHole) {
    out->Add(m, name);
    in->Remove(name);
  }
  return true;
}

}  // namespace

std::optional<InputMember> LandmarkFor(LayerFormat format,
                                      const std::vector<std::string>& prioritized) {
  if (format != LayerFormat::kEstargz && prioritized.empty()) return std::nullopt;
  InputMember lm;
  lm.synthetic = true;
  lm.entry.name = prioritized.empty() ? kNoPrefetchLandmark : kPrefetchLandmark;
  lm.clean_name = lm.entry.name;
  lm.entry.typeflag = '0';
  lm.data = std::string(1, '\x0f');
  lm.entry.size = 1;
  return lm;
}

bool DroppedFromInput(const InputMember& m, LayerFormat format, bool landmark) {
  if (m.synthetic) return true;
  if (format == LayerFormat::kEstargz && m.clean_name == kEstargzTocTarName) return true;
  return landmark && (m.clean_name == kPrefetchLandmark || m.clean_name == kNoPrefetchLandmark);
}

std::vector<uint32_t> PlanMemberOrder(std::deque<InputMember>* members, LayerFormat format,
                                      const std::vector<std::string>& prioritized,
                                      std::vector<std::string>* missed) {
  std::optional<InputMember> want_landmark = LandmarkFor(format, prioritized);
  const bool landmark = want_landmark.has_value();
  MemberList in;
  for (uint32_t i = 0; i < members->size(); ++i) {
    if (DroppedFromInput((*members)[i], format, landmark)) continue;
    const std::string& name = (*members)[i].clean_name;
    in.Add(i, name);
  }
  MemberList sorted;
  for (const std::string& p : prioritized) {
    auto clean = CleanEntryName(p);
    if (!clean.ok() || !MoveRec(*members, *clean, &in, &sorted, 0)) missed->push_back(p);
  }
  if (landmark) {
    // Reuse a landmark the caller put in first (streaming conversion), else add one.
    uint32_t at;
    if (!members->empty() && (*members)[0].synthetic) {
      at = 0;
    } else {
      members->push_back(*std::move(want_landmark));
      at = static_cast<uint32_t>(members->size() - 1);
    }
    sorted.Add(at, (*members)[at].clean_name);
  }
  std::vector<uint32_t> order;
  sorted.AppendTo(&order);
  in.AppendTo(&order);
  return order;
}

}  // namespace lazysnap

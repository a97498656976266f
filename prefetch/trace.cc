#include "prefetch/trace.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "base/errors.h"
#include "base/status_macros.h"
#include "base/stream.h"
#include "base/strings.h"

namespace lazysnap {
namespace {

constexpr int kVersion = 1;
constexpr int kMaxDepth = 8;

absl::Status Bad(std::string_view what) {
  return absl::InvalidArgumentError(StrCat("trace: ", what));
}

// Rejects nesting deeper than kMaxDepth before nlohmann builds the value (bounded memory and
// no deep recursion on untrusted input).
absl::Status CheckDepth(std::string_view json) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) return Bad("nested too deeply");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Sha256> DigestField(const nlohmann::json& obj, const char* key,
                                   std::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) {
    return Bad(StrCat(where, ": missing string \"", key, "\""));
  }
  auto d = Sha256::Parse(it->get_ref<const std::string&>());
  if (!d.ok()) return Bad(StrCat(where, ": bad \"", key, "\": ", d.status().message()));
  return *d;
}

absl::StatusOr<uint32_t> U32(const nlohmann::json& v, std::string_view where) {
  if (!v.is_number_unsigned() || v.get<uint64_t>() > UINT32_MAX) {
    return Bad(StrCat(where, ": not an integer in [0, 2^32)"));
  }
  return static_cast<uint32_t>(v.get<uint64_t>());
}

absl::StatusOr<LayerTrace> ParseLayer(const nlohmann::json& j, size_t index, size_t* budget) {
  const std::string where = StrCat("layers[", index, "]");
  if (!j.is_object()) return Bad(StrCat(where, ": not an object"));
  LayerTrace layer;
  ASSIGN_OR_RETURN(layer.digest, DigestField(j, "digest", where));
  ASSIGN_OR_RETURN(layer.toc_digest, DigestField(j, "toc_digest", where));
  auto it = j.find("chunks");
  if (it == j.end() || !it->is_array()) return Bad(StrCat(where, ": missing array \"chunks\""));
  if (it->size() > *budget) return Bad(StrCat("more than ", kMaxTraceAccesses, " accesses"));
  *budget -= it->size();
  layer.chunks.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    const nlohmann::json& pair = (*it)[i];
    const std::string at = StrCat(where, ".chunks[", i, "]");
    if (!pair.is_array() || pair.size() != 2) return Bad(StrCat(at, ": not [chunk, millis]"));
    TraceAccess a;
    ASSIGN_OR_RETURN(a.chunk, U32(pair[0], at));
    ASSIGN_OR_RETURN(a.millis, U32(pair[1], at));
    layer.chunks.push_back(a);
  }
  if (auto b = j.find("blob_size"); b != j.end()) {
    if (!b->is_number_unsigned() || b->get<uint64_t>() > kMaxTraceBlobBytes) {
      return Bad(StrCat(where, ".blob_size: not an integer in [0, 2^53)"));
    }
    layer.blob_size = b->get<uint64_t>();
  }
  if (auto r = j.find("ranges"); r != j.end()) {
    if (!r->is_array() || r->size() != layer.chunks.size()) {
      return Bad(StrCat(where, ": \"ranges\" is not an array as long as \"chunks\""));
    }
    layer.ranges.reserve(r->size());
    for (size_t i = 0; i < r->size(); ++i) {
      const nlohmann::json& pair = (*r)[i];
      const std::string at = StrCat(where, ".ranges[", i, "]");
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_unsigned() ||
          !pair[1].is_number_unsigned()) {
        return Bad(StrCat(at, ": not [offset, size]"));
      }
      TraceRange range{pair[0].get<uint64_t>(), pair[1].get<uint64_t>()};
      if (range.offset > layer.blob_size || range.size > layer.blob_size - range.offset) {
        return Bad(StrCat(at, ": past the blob's size"));
      }
      layer.ranges.push_back(range);
    }
  }
  std::vector<uint32_t> sorted;
  sorted.reserve(layer.chunks.size());
  for (const TraceAccess& a : layer.chunks) sorted.push_back(a.chunk);
  std::sort(sorted.begin(), sorted.end());
  auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  if (dup != sorted.end()) return Bad(StrCat(where, ": chunk ", *dup, " listed twice"));
  return layer;
}

}  // namespace

const LayerTrace* Trace::Find(const Sha256& digest) const {
  for (const LayerTrace& l : layers) {
    if (l.digest == digest) return &l;
  }
  return nullptr;
}

size_t Trace::access_count() const {
  size_t n = 0;
  for (const LayerTrace& l : layers) n += l.chunks.size();
  return n;
}

std::string EncodeTrace(const Trace& trace) {
  // Written by hand: one line per layer header, compact chunk pairs, stable field order.
  std::string out;
  StrAppend(&out, "{\"mediaType\":\"", kTraceMediaType, "\",\"version\":", kVersion,
            ",\n\"manifest\":\"", trace.manifest.ToString(), "\",\n\"layers\":[");
  for (size_t i = 0; i < trace.layers.size(); ++i) {
    const LayerTrace& l = trace.layers[i];
    StrAppend(&out, i == 0 ? "\n" : ",\n", "{\"digest\":\"", l.digest.ToString(),
              "\",\"toc_digest\":\"", l.toc_digest.ToString(), "\",\n\"chunks\":[");
    for (size_t k = 0; k < l.chunks.size(); ++k) {
      StrAppend(&out, k == 0 ? "" : (k % 16 == 0 ? ",\n" : ","), "[", l.chunks[k].chunk, ",",
                l.chunks[k].millis, "]");
    }
    out += "]";
    if (l.blob_size != 0) StrAppend(&out, ",\n\"blob_size\":", l.blob_size);
    if (!l.ranges.empty()) {
      StrAppend(&out, ",\n\"ranges\":[");
      for (size_t k = 0; k < l.ranges.size(); ++k) {
        StrAppend(&out, k == 0 ? "" : (k % 16 == 0 ? ",\n" : ","), "[", l.ranges[k].offset, ",",
                  l.ranges[k].size, "]");
      }
      out += "]";
    }
    out += "}";
  }
  out += "]}\n";
  return out;
}

absl::StatusOr<Trace> ParseTrace(std::string_view json) {
  if (json.size() > kMaxTraceBytes) {
    return Bad(StrCat(json.size(), " bytes, more than the limit of ", kMaxTraceBytes));
  }
  RETURN_IF_ERROR(CheckDepth(json));
  nlohmann::json j = nlohmann::json::parse(json.begin(), json.end(), nullptr,
                                           /*allow_exceptions=*/false);
  if (j.is_discarded()) return Bad("not valid JSON");
  if (!j.is_object()) return Bad("not a JSON object");
  auto mt = j.find("mediaType");
  if (mt == j.end() || !mt->is_string() || mt->get_ref<const std::string&>() != kTraceMediaType) {
    return Bad(StrCat("mediaType is not ", kTraceMediaType));
  }
  auto version = j.find("version");
  if (version == j.end() || !version->is_number_unsigned() || version->get<uint64_t>() != 1) {
    return Bad("version is not 1");
  }
  Trace trace;
  ASSIGN_OR_RETURN(trace.manifest, DigestField(j, "manifest", "trace"));
  auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array()) return Bad("missing array \"layers\"");
  if (layers->size() > kMaxTraceLayers) {
    return Bad(StrCat(layers->size(), " layers, more than ", kMaxTraceLayers));
  }
  size_t budget = kMaxTraceAccesses;
  for (size_t i = 0; i < layers->size(); ++i) {
    ASSIGN_OR_RETURN(LayerTrace layer, ParseLayer((*layers)[i], i, &budget));
    if (trace.Find(layer.digest) != nullptr) {
      return Bad(StrCat("layer ", layer.digest.ToString(), " listed twice"));
    }
    trace.layers.push_back(std::move(layer));
  }
  return trace;
}

TraceStore::TraceStore(std::string root) : dir_(StrCat(root, "/traces")) {}

std::string TraceStore::PathOf(const Sha256& manifest) const {
  return StrCat(dir_, "/", manifest.Hex(), ".json");
}

absl::StatusOr<std::string> EncodeTraceWithin(const Trace& trace, size_t max_bytes) {
  std::string json = EncodeTrace(trace);
  if (json.size() <= max_bytes) return json;
  Trace bare = trace;
  for (LayerTrace& l : bare.layers) {
    l.blob_size = 0;
    l.ranges.clear();
  }
  json = EncodeTrace(bare);
  if (json.size() <= max_bytes) return json;
  return absl::ResourceExhaustedError(StrCat("trace of ", trace.manifest.ToString(), ": ",
                                             json.size(), " bytes, more than the limit of ",
                                             max_bytes));
}

absl::Status TraceStore::Put(const Trace& trace) {
  absl::MutexLock lock(&mu_);
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    std::error_code ec;  // the root itself may not exist yet (a CLI's --root)
    std::filesystem::create_directories(dir_, ec);
    if (ec) return absl::InternalError(StrCat("mkdir ", dir_, ": ", ec.message()));
    ::chmod(dir_.c_str(), 0700);
  }
  ASSIGN_OR_RETURN(std::string json, EncodeTraceWithin(trace, kMaxTraceBytes));
  return WriteFileAtomically(PathOf(trace.manifest), json);
}

absl::StatusOr<Trace> TraceStore::Get(const Sha256& manifest) const {
  const std::string path = PathOf(manifest);
  if (::access(path.c_str(), F_OK) != 0) {
    return absl::NotFoundError(StrCat("no trace of ", manifest.ToString()));
  }
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  auto trace = ParseTrace(text);
  if (!trace.ok()) {
    return absl::InvalidArgumentError(StrCat(path, ": ", trace.status().message()));
  }
  if (trace->manifest != manifest) {
    return absl::InvalidArgumentError(
        StrCat(path, ": names manifest ", trace->manifest.ToString()));
  }
  return trace;
}

bool TraceStore::Has(const Sha256& manifest) const {
  return ::access(PathOf(manifest).c_str(), F_OK) == 0;
}

absl::StatusOr<std::vector<Sha256>> TraceStore::List() const {
  std::vector<Sha256> out;
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return out;
    return ErrnoToStatus(errno, StrCat("opendir ", dir_));
  }
  while (struct dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    constexpr std::string_view kExt = ".json";
    if (name.size() != 64 + kExt.size() || name.substr(64) != kExt) continue;
    auto digest = Sha256::Parse(StrCat("sha256:", name.substr(0, 64)));
    if (digest.ok()) out.push_back(*digest);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(),
            [](const Sha256& a, const Sha256& b) { return a.bytes < b.bytes; });
  return out;
}

absl::Status TraceStore::Remove(const Sha256& manifest) {
  absl::MutexLock lock(&mu_);
  const std::string path = PathOf(manifest);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return absl::NotFoundError(StrCat("no trace of ", manifest.ToString()));
    return ErrnoToStatus(errno, StrCat("unlink ", path));
  }
  return absl::OkStatus();
}

}  // namespace lazysnap

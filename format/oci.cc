#include "format/oci.h"

#include <algorithm>
#include <exception>
#include <stdexcept>

#include "absl/status/status.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace lazysnap {
namespace {

using Json = nlohmann::ordered_json;

absl::Status Invalid(std::string_view what, std::string_view msg) {
  return absl::InvalidArgumentError(StrCat(what, ": ", msg));
}

// Parses untrusted JSON with a size cap and a nesting cap. Never throws.
absl::StatusOr<Json> ParseBounded(std::string_view data, size_t max_bytes, size_t max_depth,
                                  std::string_view what) {
  if (data.size() > max_bytes) {
    return Invalid(what, StrCat("document of ", data.size(), " bytes exceeds the limit of ",
                                max_bytes, " bytes"));
  }
  struct TooDeep : std::runtime_error {
    using std::runtime_error::runtime_error;
  };
  try {
    Json::parser_callback_t cb = [max_depth](int depth, nlohmann::json::parse_event_t,
                                             Json&) -> bool {
      if (depth > static_cast<int>(max_depth)) throw TooDeep("nesting too deep");
      return true;
    };
    Json j = Json::parse(data.begin(), data.end(), cb);
    if (!j.is_object()) return Invalid(what, "not a JSON object");
    return j;
  } catch (const TooDeep&) {
    return Invalid(what, StrCat("JSON nested deeper than ", max_depth, " levels"));
  } catch (const std::exception& e) {
    return Invalid(what, StrCat("malformed JSON: ", e.what()));
  }
}

// Optional string field; InvalidArgument if present with another type.
absl::Status GetString(const Json& j, const char* key, std::string_view what, std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return Invalid(what, StrCat("field '", key, "' is not a string"));
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status GetRequiredString(const Json& j, const char* key, std::string_view what,
                               std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Invalid(what, StrCat("missing field '", key, "'"));
  RETURN_IF_ERROR(GetString(j, key, what, out));
  if (out->empty()) return Invalid(what, StrCat("field '", key, "' is empty"));
  return absl::OkStatus();
}

absl::Status GetStringMap(const Json& j, const char* key, std::string_view what,
                          std::map<std::string, std::string>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return Invalid(what, StrCat("field '", key, "' is not an object"));
  for (const auto& [k, v] : it->items()) {
    if (!v.is_string()) return Invalid(what, StrCat("'", key, ".", k, "' is not a string"));
    (*out)[k] = v.get<std::string>();
  }
  return absl::OkStatus();
}

absl::Status GetStringList(const Json& j, const char* key, std::string_view what,
                           std::vector<std::string>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return Invalid(what, StrCat("field '", key, "' is not an array"));
  for (const auto& v : *it) {
    if (!v.is_string()) return Invalid(what, StrCat("an entry of '", key, "' is not a string"));
    out->push_back(v.get<std::string>());
  }
  return absl::OkStatus();
}

absl::Status CheckSchemaVersion(const Json& j, std::string_view what) {
  auto it = j.find("schemaVersion");
  if (it == j.end()) return Invalid(what, "missing field 'schemaVersion'");
  if (!it->is_number_integer()) return Invalid(what, "'schemaVersion' is not an integer");
  if (it->get<int64_t>() != 2) {
    return Invalid(what, StrCat("unsupported schemaVersion ", it->get<int64_t>(),
                                " (only 2 is supported; Docker schema 1 is not)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Descriptor>> GetDescriptors(const Json& j, const char* key,
                                                       std::string_view what,
                                                       const OciLimits& limits) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Invalid(what, StrCat("missing field '", key, "'"));
  if (!it->is_array()) return Invalid(what, StrCat("field '", key, "' is not an array"));
  if (it->size() > limits.max_descriptors) {
    return Invalid(what, StrCat("'", key, "' has ", it->size(), " entries, more than the limit of ",
                                limits.max_descriptors));
  }
  std::vector<Descriptor> out;
  out.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    auto d = ParseDescriptor((*it)[i]);
    if (!d.ok()) {
      return Invalid(what, StrCat(key, "[", i, "]: ", d.status().message()));
    }
    out.push_back(*std::move(d));
  }
  return out;
}

absl::StatusOr<Platform> ParsePlatformJson(const Json& j) {
  constexpr std::string_view what = "platform";
  if (!j.is_object()) return Invalid(what, "not an object");
  Platform p;
  RETURN_IF_ERROR(GetRequiredString(j, "os", what, &p.os));
  RETURN_IF_ERROR(GetRequiredString(j, "architecture", what, &p.architecture));
  RETURN_IF_ERROR(GetString(j, "variant", what, &p.variant));
  RETURN_IF_ERROR(GetString(j, "os.version", what, &p.os_version));
  RETURN_IF_ERROR(GetStringList(j, "os.features", what, &p.os_features));
  return p;
}

// Sets j[key] = v, keeping the key's position if it exists.
template <typename T>
void Put(Json& j, const char* key, T&& v) {
  j[key] = std::forward<T>(v);
}

void PutOrErase(Json& j, const char* key, const std::string& v) {
  if (v.empty()) {
    j.erase(key);
  } else {
    j[key] = v;
  }
}

void PutMap(Json& j, const char* key, const std::map<std::string, std::string>& m) {
  if (m.empty()) {
    j.erase(key);
    return;
  }
  Json obj = Json::object();
  for (const auto& [k, v] : m) obj[k] = v;
  j[key] = std::move(obj);
}

void PutPlatform(Json& j, const Platform& p) {
  Json& pj = j["platform"];
  if (!pj.is_object()) pj = Json::object();
  pj["architecture"] = p.architecture;
  pj["os"] = p.os;
  PutOrErase(pj, "os.version", p.os_version);
  if (p.os_features.empty()) {
    pj.erase("os.features");
  } else {
    pj["os.features"] = p.os_features;
  }
  PutOrErase(pj, "variant", p.variant);
}

std::string Dump(const Json& j) {
  // Strings came from a UTF-8-validating parser or from lazysnap itself; replace rather than
  // throw if anything invalid slipped in.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// containerd's normalization of architecture names and variants.
Platform Normalize(const Platform& in) {
  Platform p = in;
  p.os = Lower(p.os);
  p.architecture = Lower(p.architecture);
  p.variant = Lower(p.variant);
  if (p.architecture == "i386") {
    p.architecture = "386";
  } else if (p.architecture == "x86_64" || p.architecture == "x86-64") {
    p.architecture = "amd64";
  } else if (p.architecture == "aarch64") {
    p.architecture = "arm64";
  } else if (p.architecture == "armhf") {
    p.architecture = "arm", p.variant = "v7";
  } else if (p.architecture == "armel") {
    p.architecture = "arm", p.variant = "v6";
  }
  if (p.architecture == "amd64" && p.variant == "v1") p.variant = "";
  if (p.architecture == "arm64" && (p.variant == "8" || p.variant == "v8")) p.variant = "";
  if (p.architecture == "arm") {
    if (p.variant.empty() || p.variant == "7") p.variant = "v7";
    if (p.variant == "5" || p.variant == "6" || p.variant == "8") p.variant = "v" + p.variant;
  }
  return p;
}

}  // namespace

bool IsManifestMediaType(std::string_view t) {
  return t == kOciManifestMediaType || t == kDockerManifestMediaType;
}
bool IsIndexMediaType(std::string_view t) {
  return t == kOciIndexMediaType || t == kDockerManifestListMediaType;
}
bool IsNonDistributableLayer(std::string_view t) {
  return t == kDockerForeignLayerMediaType ||
         t.find("vnd.oci.image.layer.nondistributable") != std::string_view::npos;
}

absl::StatusOr<Platform> Platform::Parse(std::string_view text) {
  Platform p;
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = text.find('/', start);
    parts.push_back(Lower(text.substr(start, slash == std::string_view::npos
                                                 ? std::string_view::npos
                                                 : slash - start)));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  bool bad = parts.size() < 2 || parts.size() > 3;
  for (const auto& part : parts) bad = bad || part.empty();
  if (bad) {
    return absl::InvalidArgumentError(
        StrCat("invalid platform '", text, "': want os/arch[/variant], e.g. linux/arm64/v8"));
  }
  p.os = parts[0];
  p.architecture = parts[1];
  if (parts.size() == 3) p.variant = parts[2];
  return p;
}

std::string Platform::ToString() const {
  std::string s = StrCat(os, "/", architecture);
  if (!variant.empty()) StrAppend(&s, "/", variant);
  return s;
}

bool PlatformMatches(const Platform& want, const Platform& have) {
  Platform w = Normalize(want), h = Normalize(have);
  if (w.os != h.os || w.architecture != h.architecture) return false;
  return want.variant.empty() || w.variant == h.variant;
}

std::vector<const Descriptor*> SelectPlatform(const Index& index, const Platform& want) {
  std::vector<const Descriptor*> exact, other;
  Platform w = Normalize(want);
  for (const auto& d : index.manifests) {
    if (!d.platform || !PlatformMatches(want, *d.platform)) continue;
    (Normalize(*d.platform).variant == w.variant ? exact : other).push_back(&d);
  }
  exact.insert(exact.end(), other.begin(), other.end());
  return exact;
}

absl::StatusOr<Descriptor> ParseDescriptor(const Json& j) {
  constexpr std::string_view what = "descriptor";
  if (!j.is_object()) return Invalid(what, "not an object");
  Descriptor d;
  d.json = j;
  RETURN_IF_ERROR(GetRequiredString(j, "mediaType", what, &d.media_type));
  std::string digest;
  RETURN_IF_ERROR(GetRequiredString(j, "digest", what, &digest));
  auto parsed = Sha256::Parse(digest);
  if (!parsed.ok()) {
    return Invalid(what, StrCat("bad digest '", digest.substr(0, 100), "': ",
                                parsed.status().message()));
  }
  d.digest = *parsed;
  auto size = j.find("size");
  if (size == j.end()) return Invalid(what, "missing field 'size'");
  if (!size->is_number_integer() || size->get<int64_t>() < 0) {
    return Invalid(what, "'size' is not a non-negative integer");
  }
  d.size = size->get<int64_t>();
  RETURN_IF_ERROR(GetStringMap(j, "annotations", what, &d.annotations));
  RETURN_IF_ERROR(GetStringList(j, "urls", what, &d.urls));
  if (auto p = j.find("platform"); p != j.end() && !p->is_null()) {
    ASSIGN_OR_RETURN(d.platform, ParsePlatformJson(*p));
  }
  return d;
}

absl::StatusOr<std::string> PeekMediaType(std::string_view data, const OciLimits& limits) {
  ASSIGN_OR_RETURN(Json j, ParseBounded(data, limits.max_json_bytes, limits.max_depth,
                                        "manifest"));
  std::string media_type;
  RETURN_IF_ERROR(GetString(j, "mediaType", "manifest", &media_type));
  return media_type;
}

absl::StatusOr<Manifest> ParseManifest(std::string_view data, const OciLimits& limits) {
  constexpr std::string_view what = "image manifest";
  ASSIGN_OR_RETURN(Json j, ParseBounded(data, limits.max_json_bytes, limits.max_depth, what));
  Manifest m;
  RETURN_IF_ERROR(CheckSchemaVersion(j, what));
  RETURN_IF_ERROR(GetString(j, "mediaType", what, &m.media_type));
  if (!m.media_type.empty() && !IsManifestMediaType(m.media_type)) {
    return Invalid(what, StrCat("mediaType '", m.media_type, "' is not an image manifest"));
  }
  if (m.media_type.empty() && j.contains("manifests")) {
    return Invalid(what, "document is an image index, not a manifest");
  }
  auto config = j.find("config");
  if (config == j.end()) return Invalid(what, "missing field 'config'");
  auto cd = ParseDescriptor(*config);
  if (!cd.ok()) return Invalid(what, StrCat("config: ", cd.status().message()));
  m.config = *std::move(cd);
  ASSIGN_OR_RETURN(m.layers, GetDescriptors(j, "layers", what, limits));
  RETURN_IF_ERROR(GetStringMap(j, "annotations", what, &m.annotations));
  m.json = std::move(j);
  return m;
}

absl::StatusOr<Index> ParseIndex(std::string_view data, const OciLimits& limits) {
  constexpr std::string_view what = "image index";
  ASSIGN_OR_RETURN(Json j, ParseBounded(data, limits.max_json_bytes, limits.max_depth, what));
  Index index;
  RETURN_IF_ERROR(CheckSchemaVersion(j, what));
  RETURN_IF_ERROR(GetString(j, "mediaType", what, &index.media_type));
  if (!index.media_type.empty() && !IsIndexMediaType(index.media_type)) {
    return Invalid(what, StrCat("mediaType '", index.media_type, "' is not an image index"));
  }
  ASSIGN_OR_RETURN(index.manifests, GetDescriptors(j, "manifests", what, limits));
  RETURN_IF_ERROR(GetStringMap(j, "annotations", what, &index.annotations));
  index.json = std::move(j);
  return index;
}

absl::StatusOr<ImageConfig> ParseImageConfig(std::string_view data, const OciLimits& limits) {
  constexpr std::string_view what = "image config";
  ASSIGN_OR_RETURN(Json j, ParseBounded(data, limits.max_config_bytes, limits.max_depth, what));
  ImageConfig c;
  RETURN_IF_ERROR(GetString(j, "os", what, &c.platform.os));
  RETURN_IF_ERROR(GetString(j, "architecture", what, &c.platform.architecture));
  RETURN_IF_ERROR(GetString(j, "variant", what, &c.platform.variant));
  RETURN_IF_ERROR(GetString(j, "os.version", what, &c.platform.os_version));
  RETURN_IF_ERROR(GetStringList(j, "os.features", what, &c.platform.os_features));
  auto rootfs = j.find("rootfs");
  if (rootfs == j.end() || !rootfs->is_object()) return Invalid(what, "missing object 'rootfs'");
  std::string type;
  RETURN_IF_ERROR(GetString(*rootfs, "type", what, &type));
  if (type != "layers") return Invalid(what, StrCat("rootfs.type is '", type, "', not 'layers'"));
  std::vector<std::string> ids;
  auto diff_ids = rootfs->find("diff_ids");
  if (diff_ids == rootfs->end() || !diff_ids->is_array()) {
    return Invalid(what, "missing array 'rootfs.diff_ids'");
  }
  RETURN_IF_ERROR(GetStringList(*rootfs, "diff_ids", what, &ids));
  if (ids.size() > limits.max_descriptors) {
    return Invalid(what, StrCat("too many diff_ids (", ids.size(), ")"));
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    auto d = Sha256::Parse(ids[i]);
    if (!d.ok()) {
      return Invalid(what, StrCat("bad rootfs.diff_ids[", i, "]: ", d.status().message()));
    }
    c.diff_ids.push_back(*d);
  }
  c.json = std::move(j);
  return c;
}

Json DescriptorToJson(const Descriptor& d) {
  Json j = d.json.is_object() ? d.json : Json::object();
  Put(j, "mediaType", d.media_type);
  Put(j, "digest", d.digest.ToString());
  Put(j, "size", d.size);
  if (d.urls.empty()) {
    j.erase("urls");
  } else {
    j["urls"] = d.urls;
  }
  PutMap(j, "annotations", d.annotations);
  if (d.platform) {
    PutPlatform(j, *d.platform);
  } else {
    j.erase("platform");
  }
  return j;
}

std::string SerializeManifest(const Manifest& m) {
  Json j = m.json.is_object() ? m.json : Json::object();
  Put(j, "schemaVersion", m.schema_version);
  PutOrErase(j, "mediaType", m.media_type);
  Put(j, "config", DescriptorToJson(m.config));
  Json layers = Json::array();
  for (const auto& l : m.layers) layers.push_back(DescriptorToJson(l));
  Put(j, "layers", std::move(layers));
  PutMap(j, "annotations", m.annotations);
  return Dump(j);
}

std::string SerializeIndex(const Index& index) {
  Json j = index.json.is_object() ? index.json : Json::object();
  Put(j, "schemaVersion", index.schema_version);
  PutOrErase(j, "mediaType", index.media_type);
  Json manifests = Json::array();
  for (const auto& d : index.manifests) manifests.push_back(DescriptorToJson(d));
  Put(j, "manifests", std::move(manifests));
  PutMap(j, "annotations", index.annotations);
  return Dump(j);
}

std::string SerializeImageConfig(const ImageConfig& config) {
  Json j = config.json.is_object() ? config.json : Json::object();
  Json& rootfs = j["rootfs"];
  if (!rootfs.is_object()) rootfs = Json::object();
  if (!rootfs.contains("type")) rootfs["type"] = "layers";
  Json ids = Json::array();
  for (const auto& d : config.diff_ids) ids.push_back(d.ToString());
  rootfs["diff_ids"] = std::move(ids);
  return Dump(j);
}

Descriptor DescriptorOf(std::string_view media_type, std::string_view data) {
  Descriptor d;
  d.media_type = std::string(media_type);
  d.digest = Sha256::Of(data);
  d.size = static_cast<int64_t>(data.size());
  return d;
}

}  // namespace lazysnap

// OCI image and Docker schema 2 objects: descriptors, image manifests, image indexes (and
// Docker manifest lists), image configs and platforms. Parsing is bounded and strict about
// what lazysnap relies on (mediaType, schemaVersion, digests, sizes); every field it does not
// know is kept, in its original order, and written back on serialization, so a parse followed
// by a serialize of an unchanged object is byte-stable for lazysnap's own (compact) output.
//
// All types here are plain values: not thread-safe for concurrent mutation, safe to share
// read-only. Parsers never throw; errors are InvalidArgument with a message naming the field.
#ifndef LAZYSNAP_FORMAT_OCI_H_
#define LAZYSNAP_FORMAT_OCI_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "base/digest.h"

namespace lazysnap {

// Media types.
inline constexpr char kOciManifestMediaType[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kOciIndexMediaType[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kOciConfigMediaType[] = "application/vnd.oci.image.config.v1+json";
inline constexpr char kOciLayerMediaType[] = "application/vnd.oci.image.layer.v1.tar";
inline constexpr char kOciLayerGzipMediaType[] = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr char kOciLayerZstdMediaType[] = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr char kDockerManifestMediaType[] =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr char kDockerManifestListMediaType[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kDockerConfigMediaType[] = "application/vnd.docker.container.image.v1+json";
inline constexpr char kDockerLayerGzipMediaType[] =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr char kDockerForeignLayerMediaType[] =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

// Annotation naming a tag in an OCI layout's index.json.
inline constexpr char kRefNameAnnotation[] = "org.opencontainers.image.ref.name";

bool IsManifestMediaType(std::string_view media_type);  // OCI or Docker image manifest
bool IsIndexMediaType(std::string_view media_type);     // OCI index or Docker manifest list
// True for layer media types that must not be converted or copied (foreign/non-distributable).
bool IsNonDistributableLayer(std::string_view media_type);

// Limits applied to untrusted JSON.
struct OciLimits {
  size_t max_json_bytes = 4u << 20;    // manifests and indexes (as registries enforce)
  size_t max_config_bytes = 32u << 20;  // image configs (history can be long)
  size_t max_depth = 64;               // JSON nesting
  size_t max_descriptors = 10000;      // layers of a manifest, entries of an index
};

struct Platform {
  std::string os, architecture, variant, os_version;
  std::vector<std::string> os_features;

  // Parses "os/arch[/variant]" (e.g. "linux/arm64/v8"). Lower-cases; InvalidArgument if a
  // part is empty or there are more than three.
  static absl::StatusOr<Platform> Parse(std::string_view text);
  static Platform Default() { return Platform{"linux", "amd64", "", "", {}}; }
  std::string ToString() const;  // "os/arch[/variant]"
  bool operator==(const Platform&) const = default;
};

// Whether an image for `have` satisfies a request for `want`: same os and architecture, and
// the same variant once both are normalized (arm64 defaults to v8, arm to v7, amd64 to v1);
// an empty requested variant accepts any.
bool PlatformMatches(const Platform& want, const Platform& have);

struct Descriptor {
  std::string media_type;
  Sha256 digest;
  int64_t size = 0;
  std::map<std::string, std::string> annotations;
  std::vector<std::string> urls;
  std::optional<Platform> platform;
  nlohmann::ordered_json json = nlohmann::ordered_json::object();  // as parsed (unknown fields)
};

struct Manifest {
  int schema_version = 2;
  std::string media_type;  // may be empty in OCI manifests (then OCI is implied)
  Descriptor config;
  std::vector<Descriptor> layers;
  std::map<std::string, std::string> annotations;
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
};

struct Index {
  int schema_version = 2;
  std::string media_type;  // may be empty in OCI indexes (e.g. an OCI layout's index.json)
  std::vector<Descriptor> manifests;
  std::map<std::string, std::string> annotations;
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
};

// An image config. Only rootfs.diff_ids and the platform fields are interpreted; the whole
// document is kept as parsed and re-serialized with diff_ids rewritten.
struct ImageConfig {
  std::vector<Sha256> diff_ids;
  Platform platform;  // os, architecture, variant, os.version, os.features
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
};

// Parsers of untrusted bytes. A manifest must have schemaVersion 2, a manifest (or empty)
// mediaType, a config and layers; an index likewise with manifests.
absl::StatusOr<Manifest> ParseManifest(std::string_view data, const OciLimits& limits = {});
absl::StatusOr<Index> ParseIndex(std::string_view data, const OciLimits& limits = {});
absl::StatusOr<ImageConfig> ParseImageConfig(std::string_view data,
                                             const OciLimits& limits = {});
absl::StatusOr<Descriptor> ParseDescriptor(const nlohmann::ordered_json& j);

// The mediaType field of a manifest or index document, or "" if it has none; for routing a
// blob of unknown kind to ParseManifest or ParseIndex. InvalidArgument if not a JSON object.
absl::StatusOr<std::string> PeekMediaType(std::string_view data, const OciLimits& limits = {});

// Serializers: compact JSON. Known fields are written from the struct (an empty optional
// field is dropped), unknown ones are kept where they were.
nlohmann::ordered_json DescriptorToJson(const Descriptor& d);
std::string SerializeManifest(const Manifest& m);
std::string SerializeIndex(const Index& index);
std::string SerializeImageConfig(const ImageConfig& config);

// A descriptor of `data` with `media_type` (digest and size computed).
Descriptor DescriptorOf(std::string_view media_type, std::string_view data);

// The entries of `index` that are images for `want` (PlatformMatches), best first: an exact
// variant match before a match by a requested empty variant. Entries without a platform
// are skipped.
std::vector<const Descriptor*> SelectPlatform(const Index& index, const Platform& want);

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_OCI_H_

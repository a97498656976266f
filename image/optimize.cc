#include "image/optimize.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>

#include "base/errors.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "format/decompress.h"

namespace lazysnap {
namespace {

struct Image {
  Manifest manifest;
  nlohmann::ordered_json config;  // the "config" object of the image config ({} if none)
};

absl::StatusOr<Image> LoadImage(const ImageStore& src, std::string_view tag,
                                const Platform& platform) {
  OciLimits limits;
  ASSIGN_OR_RETURN(Descriptor d, src.Resolve(tag));
  ASSIGN_OR_RETURN(std::string data, src.ReadManifest(d, limits.max_json_bytes));
  std::string kind = d.media_type;
  if (!IsIndexMediaType(kind) && !IsManifestMediaType(kind)) {
    ASSIGN_OR_RETURN(kind, PeekMediaType(data, limits));
    if (kind.empty() && ParseIndex(data, limits).ok()) kind = kOciIndexMediaType;
  }
  if (IsIndexMediaType(kind)) {
    ASSIGN_OR_RETURN(Index index, ParseIndex(data, limits));
    auto match = SelectPlatform(index, platform);
    if (match.empty()) {
      return absl::NotFoundError(
          StrCat("the image has no manifest for platform ", platform.ToString()));
    }
    d = *match[0];
    ASSIGN_OR_RETURN(data, src.ReadManifest(d, limits.max_json_bytes));
  }
  std::string what = StrCat("manifest ", d.digest.ToString());
  auto m = ParseManifest(data, limits);
  if (!m.ok()) return Annotate(m.status(), what);
  if (m->config.media_type != kOciConfigMediaType &&
      m->config.media_type != kDockerConfigMediaType) {
    return absl::InvalidArgumentError(StrCat(what, " is not a container image (config media type ",
                                             m->config.media_type, ")"));
  }
  auto config = src.ReadBlob(m->config.digest, m->config.size, limits.max_config_bytes);
  if (!config.ok()) return Annotate(config.status(), StrCat(what, ": config"));
  auto parsed = ParseImageConfig(*config, limits);
  if (!parsed.ok()) return Annotate(parsed.status(), StrCat(what, ": config"));
  Image image{*std::move(m), nlohmann::ordered_json::object()};
  if (parsed->json.contains("config") && parsed->json["config"].is_object()) {
    image.config = parsed->json["config"];
  }
  return image;
}

std::vector<std::string> Strings(const nlohmann::ordered_json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& v : j) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

// The image's Env with `extra` (KEY=VALUE) replacing or adding by key.
std::vector<std::string> MergeEnv(std::vector<std::string> env,
                                  const std::vector<std::string>& extra) {
  for (const auto& e : extra) {
    std::string key = e.substr(0, e.find('='));
    bool replaced = false;
    for (auto& have : env) {
      if (have.substr(0, have.find('=')) == key) {
        have = e;
        replaced = true;
      }
    }
    if (!replaced) env.push_back(e);
  }
  bool has_path = false;
  for (const auto& e : env) has_path |= e.rfind("PATH=", 0) == 0;
  if (!has_path) env.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  return env;
}

// Removes the temporary directory on every return path.
class TempDir {
 public:
  ~TempDir() {
    if (path_.empty()) return;
    absl::Status s = RemoveTree(path_);
    if (!s.ok()) LZ_LOG(kWarning, "removing ", path_, ": ", s.ToString());
  }
  absl::Status Create(const std::string& parent) {
    std::string base = parent;
    if (base.empty()) {
      const char* t = std::getenv("TMPDIR");
      base = t != nullptr && *t != '\0' ? t : "/tmp";
    }
    std::string tmpl = StrCat(base, "/lazysnap-optimize-XXXXXX");
    if (::mkdtemp(tmpl.data()) == nullptr) return ErrnoToStatus(errno, StrCat("mkdtemp ", tmpl));
    path_ = tmpl;
    return absl::OkStatus();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

absl::StatusOr<Recording> RecordImageWorkload(const ImageStore& src, std::string_view tag,
                                              const RecordOptions& options) {
  ASSIGN_OR_RETURN(Image image, LoadImage(src, tag, options.platform));
  Recording rec;
  WorkloadOptions w = options.workload;
  if (w.argv.empty()) {
    w.argv = Strings(image.config["Entrypoint"]);
    for (auto& a : Strings(image.config["Cmd"])) w.argv.push_back(std::move(a));
  }
  if (w.argv.empty()) {
    return absl::InvalidArgumentError("no command given and the image has no Entrypoint or Cmd");
  }
  w.env = MergeEnv(Strings(image.config["Env"]), w.env);
  if (w.workdir.empty() && image.config["WorkingDir"].is_string()) {
    w.workdir = image.config["WorkingDir"].get<std::string>();
  }
  if (w.workdir.empty()) w.workdir = "/";
  if (w.user.empty() && image.config["User"].is_string()) {
    w.user = image.config["User"].get<std::string>();
  }
  rec.argv = w.argv;

  TempDir tmp;
  RETURN_IF_ERROR(tmp.Create(options.temp_dir));
  std::string rootfs = tmp.path() + "/rootfs";
  if (::mkdir(rootfs.c_str(), 0755) != 0) return ErrnoToStatus(errno, StrCat("mkdir ", rootfs));
  ASSIGN_OR_RETURN(auto builder, RootfsBuilder::Open(rootfs));
  absl::Time start = absl::Now();
  for (const Descriptor& layer : image.manifest.layers) {
    std::string what = StrCat("layer ", layer.digest.ToString());
    if (IsNonDistributableLayer(layer.media_type) && !src.HasBlob(layer.digest)) {
      LZ_LOG(kWarning, what, ": foreign layer not in the source, left out of the run");
      continue;
    }
    auto blob = src.OpenBlob(layer.digest, layer.size);
    if (!blob.ok()) return Annotate(blob.status(), what);
    auto tar = NewDecompressingStream(blob->get());
    if (!tar.ok()) return Annotate(tar.status(), what);
    RETURN_IF_ERROR(Annotate(builder->ApplyLayer(**tar), what));
  }
  rec.unpack_time = absl::Now() - start;
  rec.unpacked = builder->stats();
  start = absl::Now();
  ASSIGN_OR_RETURN(rec.workload, RunRecordedWorkload(rootfs, w));
  rec.run_time = absl::Now() - start;
  for (const auto& f : rec.workload.files) {
    if (builder->HasFile(f)) rec.files.push_back(f);
  }
  return rec;
}

}  // namespace lazysnap

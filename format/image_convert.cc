#include "format/image_convert.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "base/errors.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "format/layer.h"

namespace lazysnap {
namespace {

using Json = nlohmann::ordered_json;

constexpr char kContainerdUncompressed[] = "containerd.io/uncompressed";
constexpr char kDockerReferenceType[] = "vnd.docker.reference.type";
constexpr char kOciNondistributableGzip[] =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";

struct Loaded {
  Descriptor desc;  // how the manifest was referenced (index entry or tag)
  Platform platform;
  Manifest manifest;
  ImageConfig config;
};

absl::StatusOr<Loaded> LoadManifest(const ImageStore& src, const Descriptor& d) {
  OciLimits limits;
  std::string what = StrCat("manifest ", d.digest.ToString());
  auto data = src.ReadManifest(d, limits.max_json_bytes);
  if (!data.ok()) return Annotate(data.status(), what);
  auto m = ParseManifest(*data, limits);
  if (!m.ok()) return Annotate(m.status(), what);
  if (m->config.media_type != kOciConfigMediaType &&
      m->config.media_type != kDockerConfigMediaType) {
    return absl::InvalidArgumentError(StrCat(what, " is not a container image (config media type ",
                                             m->config.media_type, ")"));
  }
  auto config_data = src.ReadBlob(m->config.digest, m->config.size, limits.max_config_bytes);
  if (!config_data.ok()) return Annotate(config_data.status(), StrCat(what, ": config"));
  auto config = ParseImageConfig(*config_data, limits);
  if (!config.ok()) return Annotate(config.status(), StrCat(what, ": config"));
  if (config->diff_ids.size() != m->layers.size()) {
    return absl::InvalidArgumentError(StrCat(what, ": config has ", config->diff_ids.size(),
                                              " diff_ids for ", m->layers.size(), " layers"));
  }
  Loaded l{d, d.platform ? *d.platform : config->platform, *std::move(m), *std::move(config)};
  return l;
}

bool IsSeekable(const Descriptor& layer) {
  return layer.annotations.count(kEstargzTocDigestAnnotation) > 0 ||
         layer.annotations.count(kZstdChunkedManifestChecksumAnnotation) > 0;
}

bool IsForeign(const Descriptor& layer) {
  return IsNonDistributableLayer(layer.media_type) || !layer.urls.empty();
}

std::string OciLayerMediaType(const std::string& t) {
  if (t == kDockerLayerGzipMediaType) return kOciLayerGzipMediaType;
  if (t == kDockerForeignLayerMediaType) return kOciNondistributableGzip;
  return t;
}

// Picks the manifests of `index` to convert.
absl::StatusOr<std::vector<Loaded>> SelectManifests(const ImageStore& src, const Index& index,
                                                    const ImageConvertOptions& options) {
  std::vector<Loaded> out;
  std::set<std::string> seen;
  Index candidates = index;  // with the platform of every image entry filled in
  candidates.manifests.clear();
  for (const auto& d : index.manifests) {
    auto type = d.annotations.find(kDockerReferenceType);
    if (type != d.annotations.end() && type->second == "attestation-manifest") {
      LZ_LOG(kInfo, "skipping attestation manifest ", d.digest.ToString());
      continue;
    }
    if (IsIndexMediaType(d.media_type)) {
      return absl::UnimplementedError(
          StrCat("nested image index ", d.digest.ToString(), " is not supported"));
    }
    if (!IsManifestMediaType(d.media_type)) {
      LZ_LOG(kInfo, "skipping index entry ", d.digest.ToString(), " of type ", d.media_type);
      continue;
    }
    Descriptor c = d;
    if (!c.platform || options.all_platforms) {
      ASSIGN_OR_RETURN(Loaded l, LoadManifest(src, d));
      c.platform = l.platform;
      if (options.all_platforms) {
        if (seen.insert(d.digest.Hex()).second) out.push_back(std::move(l));
        continue;
      }
    }
    candidates.manifests.push_back(std::move(c));
  }
  if (options.all_platforms) {
    if (out.empty()) return absl::NotFoundError("the image index lists no image manifests");
    return out;
  }
  std::vector<Platform> wants = options.platforms;
  if (wants.empty()) wants.push_back(Platform::Default());
  for (const auto& want : wants) {
    auto match = SelectPlatform(candidates, want);
    if (match.empty()) {
      std::string have;
      for (const auto& c : candidates.manifests) {
        StrAppend(&have, have.empty() ? "" : ", ", c.platform->ToString());
      }
      return absl::NotFoundError(StrCat("the image has no manifest for platform ",
                                        want.ToString(), " (it has: ", have, ")"));
    }
    if (!seen.insert(match[0]->digest.Hex()).second) continue;
    ASSIGN_OR_RETURN(Loaded l, LoadManifest(src, *match[0]));
    out.push_back(std::move(l));
  }
  return out;
}

// Serializes progress reports and keeps the latest state of every layer.
class ProgressReporter {
 public:
  ProgressReporter(std::function<void(const LayerProgress&)> cb, std::vector<LayerProgress> init)
      : cb_(std::move(cb)), states_(std::move(init)) {}
  template <typename F>
  void Update(size_t id, F&& mutate) {
    absl::MutexLock lock(&mu_);
    mutate(states_[id]);
    if (cb_) cb_(states_[id]);
  }

 private:
  const std::function<void(const LayerProgress&)> cb_;
  absl::Mutex mu_;
  std::vector<LayerProgress> states_ ABSL_GUARDED_BY(mu_);
};

// Counts the bytes read through it.
class CountingInputStream : public InputStream {
 public:
  CountingInputStream(InputStream* in, std::function<void(uint64_t)> on_read)
      : in_(in), on_read_(std::move(on_read)) {}
  absl::StatusOr<size_t> Read(absl::Span<char> buf) override {
    ASSIGN_OR_RETURN(size_t n, in_->Read(buf));
    total_ += n;
    if (n > 0) on_read_(total_);
    return n;
  }

 private:
  InputStream* in_;
  std::function<void(uint64_t)> on_read_;
  uint64_t total_ = 0;
};

// Fails writes once `cancelled` is set, so a failure elsewhere stops the other layers early.
class CancellableOutputStream : public OutputStream {
 public:
  CancellableOutputStream(OutputStream* out, const std::atomic<bool>* cancelled)
      : out_(out), cancelled_(cancelled) {}
  absl::Status Write(std::string_view data) override {
    if (cancelled_->load()) return absl::CancelledError("conversion cancelled");
    return out_->Write(data);
  }

 private:
  OutputStream* out_;
  const std::atomic<bool>* cancelled_;
};

absl::StatusOr<ConvertResult> ConvertOne(const ImageStore& src, const ImageStore& dst,
                                         const Descriptor& layer, size_t id,
                                         const ImageConvertOptions& options,
                                         ProgressReporter& reporter,
                                         const std::atomic<bool>& cancelled) {
  ASSIGN_OR_RETURN(auto in, src.OpenBlob(layer.digest, layer.size));
  CountingInputStream counted(in.get(), [&](uint64_t n) {
    reporter.Update(id, [n](LayerProgress& p) { p.source_read = n; });
  });
  ASSIGN_OR_RETURN(auto writer, dst.NewBlobWriter());
  CancellableOutputStream out(writer.get(), &cancelled);
  ConvertOptions opts = options.layer;
  opts.progress = [&](uint64_t n) {
    reporter.Update(id, [n](LayerProgress& p) { p.uncompressed = n; });
  };
  ASSIGN_OR_RETURN(ConvertResult r, options.converter(counted, out, opts));
  // Read what the converter left (e.g. padding after the compressed stream) so the source
  // blob's digest is checked to the end.
  std::vector<char> buf(1 << 16);
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, counted.Read(absl::MakeSpan(buf)));
    if (n == 0) break;
  }
  if (writer->bytes() != r.blob_size) {
    return absl::InternalError(StrCat("converter reported ", r.blob_size, " bytes but wrote ",
                                      writer->bytes()));
  }
  RETURN_IF_ERROR(writer->Commit(r.blob_digest));
  return r;
}

// Converts `layers` with a bounded number of worker threads. Returns the first error.
absl::StatusOr<std::vector<ConvertResult>> ConvertLayers(const ImageStore& src,
                                                         const ImageStore& dst,
                                                         const std::vector<Descriptor>& layers,
                                                         const ImageConvertOptions& options) {
  std::vector<LayerProgress> init(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    init[i].id = i;
    init[i].count = layers.size();
    init[i].source_digest = layers[i].digest;
    init[i].source_size = static_cast<uint64_t>(layers[i].size);
  }
  ProgressReporter reporter(options.progress, std::move(init));
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  size_t jobs = options.jobs > 0 ? static_cast<size_t>(options.jobs) : cores;
  jobs = std::max<size_t>(1, std::min(jobs, layers.size()));
  ImageConvertOptions per_layer = options;
  if (per_layer.layer.threads == 0) {
    per_layer.layer.threads = static_cast<int>(std::max<size_t>(1, cores / jobs));
  }

  std::vector<ConvertResult> results(layers.size());
  std::atomic<size_t> next{0};
  std::atomic<bool> cancelled{false};
  absl::Mutex mu;
  absl::Status first_error;  // guarded by mu; a real error wins over a cancellation
  auto work = [&] {
    for (size_t i = next++; i < layers.size() && !cancelled.load(); i = next++) {
      auto r = ConvertOne(src, dst, layers[i], i, per_layer, reporter, cancelled);
      reporter.Update(i, [](LayerProgress& p) { p.done = true; });
      if (r.ok()) {
        results[i] = *std::move(r);
        continue;
      }
      absl::MutexLock lock(&mu);
      if (first_error.ok() || (absl::IsCancelled(first_error) && !absl::IsCancelled(r.status()))) {
        first_error = Annotate(r.status(), StrCat("layer ", layers[i].digest.ToString()));
      }
      cancelled.store(true);
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 1; t < jobs; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  absl::MutexLock lock(&mu);
  if (!first_error.ok()) return first_error;
  return results;
}

// The converted layer's descriptor: the old one with content fields and the annotations that
// describe the content replaced.
Descriptor RewriteLayer(const Descriptor& old, const ConvertResult& r) {
  Descriptor d = old;
  d.json.erase("data");  // embedded content of the old blob
  d.media_type = r.media_type;
  d.digest = r.blob_digest;
  d.size = static_cast<int64_t>(r.blob_size);
  bool had_uncompressed = d.annotations.erase(kContainerdUncompressed) > 0;
  for (const char* key : {kEstargzTocDigestAnnotation, kEstargzUncompressedSizeAnnotation,
                          kZstdChunkedManifestChecksumAnnotation,
                          kZstdChunkedManifestPositionAnnotation,
                          kZstdChunkedTarsplitPositionAnnotation,
                          kLazysnapTocTailSizeAnnotation}) {
    d.annotations.erase(key);
  }
  for (const auto& [k, v] : r.annotations) d.annotations[k] = v;
  if (had_uncompressed) d.annotations[kContainerdUncompressed] = r.diff_id.ToString();
  return d;
}

// Points `d` (a descriptor in `desc`'s role) at new content.
Descriptor Repoint(const Descriptor& desc, const Descriptor& content) {
  Descriptor d = desc;
  d.json.erase("data");
  d.media_type = content.media_type;
  d.digest = content.digest;
  d.size = content.size;
  return d;
}

}  // namespace

absl::StatusOr<ImageConvertResult> ConvertImage(const OciLayout& src, std::string_view src_tag,
                                                const OciLayout& dst, std::string_view dst_tag,
                                                const ImageConvertOptions& options) {
  OciLayoutStore src_store(&src), dst_store(&dst);
  return ConvertImage(src_store, src_tag, dst_store, dst_tag, options);
}

absl::StatusOr<ImageConvertResult> ConvertImage(const ImageStore& src, std::string_view src_tag,
                                                const ImageStore& dst, std::string_view dst_tag,
                                                const ImageConvertOptions& options) {
  if (!options.converter) return absl::InvalidArgumentError("no layer converter given");
  Index probe;
  RETURN_IF_ERROR(SetTag(probe, dst_tag, Descriptor()));  // validates the tag up front
  OciLimits limits;
  ASSIGN_OR_RETURN(Descriptor top, src.Resolve(src_tag));
  ASSIGN_OR_RETURN(std::string top_data, src.ReadManifest(top, limits.max_json_bytes));
  std::string kind = top.media_type;
  if (!IsIndexMediaType(kind) && !IsManifestMediaType(kind)) {
    ASSIGN_OR_RETURN(kind, PeekMediaType(top_data, limits));
    if (kind.empty() && ParseIndex(top_data, limits).ok()) kind = kOciIndexMediaType;
  }

  std::optional<Index> src_index;
  std::vector<Loaded> selected;
  if (IsIndexMediaType(kind)) {
    ASSIGN_OR_RETURN(src_index, ParseIndex(top_data, limits));
    ASSIGN_OR_RETURN(selected, SelectManifests(src, *src_index, options));
  } else {
    ASSIGN_OR_RETURN(Loaded l, LoadManifest(src, top));
    if (!options.all_platforms && !options.platforms.empty() &&
        std::none_of(options.platforms.begin(), options.platforms.end(),
                     [&](const Platform& p) { return PlatformMatches(p, l.platform); })) {
      return absl::NotFoundError(StrCat("the image is for ", l.platform.ToString(),
                                        ", not a requested platform"));
    }
    selected.push_back(std::move(l));
  }

  // Distinct layers to convert, in order of first appearance.
  std::map<std::string, size_t> job_of;
  std::vector<Descriptor> to_convert;
  for (const auto& l : selected) {
    for (const auto& layer : l.manifest.layers) {
      if (IsForeign(layer) || IsSeekable(layer)) continue;
      if (job_of.emplace(layer.digest.Hex(), to_convert.size()).second) {
        to_convert.push_back(layer);
      }
    }
  }
  ASSIGN_OR_RETURN(std::vector<ConvertResult> converted,
                   ConvertLayers(src, dst, to_convert, options));

  ImageConvertResult result;
  if (!converted.empty()) {
    for (const auto& file : options.layer.prioritized_files) {
      bool missed_everywhere = std::all_of(converted.begin(), converted.end(), [&](auto& r) {
        const auto& missed = r.missed_prioritized_files;
        return std::find(missed.begin(), missed.end(), file) != missed.end();
      });
      if (missed_everywhere) result.missed_prioritized_files.push_back(file);
    }
  }
  bool same_dir = src.SameStore(dst);
  for (auto& l : selected) {
    ManifestConversion mc;
    mc.platform = l.platform;
    mc.source_digest = l.desc.digest;
    Manifest m = l.manifest;
    ImageConfig config = l.config;
    for (size_t i = 0; i < m.layers.size(); ++i) {
      Descriptor& layer = m.layers[i];
      LayerConversion lc;
      lc.source_digest = layer.digest;
      lc.source_size = layer.size;
      auto job = job_of.find(layer.digest.Hex());
      if (job != job_of.end() && !IsForeign(layer) && !IsSeekable(layer)) {
        const ConvertResult& r = converted[job->second];
        layer = RewriteLayer(layer, r);
        config.diff_ids[i] = r.diff_id;
        lc.converted = true;
        lc.toc_digest = r.toc_digest;
      } else {
        layer.media_type = OciLayerMediaType(layer.media_type);
        bool optional = IsForeign(layer) && !src.HasBlob(layer.digest);
        if (!same_dir && !optional) {
          RETURN_IF_ERROR(Annotate(dst.CopyBlobFrom(src, layer),
                                   StrCat("layer ", layer.digest.ToString())));
        }
      }
      lc.digest = layer.digest;
      lc.size = layer.size;
      lc.media_type = layer.media_type;
      lc.diff_id = config.diff_ids[i];
      mc.layers.push_back(std::move(lc));
    }
    ASSIGN_OR_RETURN(Descriptor cd,
                     dst.WriteBlob(kOciConfigMediaType, SerializeImageConfig(config)));
    m.config = Repoint(m.config, cd);
    m.media_type = kOciManifestMediaType;
    ASSIGN_OR_RETURN(mc.manifest,
                     dst.WriteManifest(kOciManifestMediaType, SerializeManifest(m)));
    result.manifests.push_back(std::move(mc));
  }

  Descriptor new_top = result.manifests[0].manifest;
  if (src_index) {
    Index index = *src_index;
    index.media_type = kOciIndexMediaType;
    index.manifests.clear();
    for (size_t i = 0; i < selected.size(); ++i) {
      index.manifests.push_back(Repoint(selected[i].desc, result.manifests[i].manifest));
    }
    ASSIGN_OR_RETURN(new_top, dst.WriteManifest(kOciIndexMediaType, SerializeIndex(index)));
  }
  // The tag entry keeps the source entry's annotations (e.g. io.containerd.image.name) and
  // platform; SetTag sets the ref name.
  Descriptor entry = Repoint(top, new_top);
  entry.json = Json::object();
  entry.annotations.erase(kRefNameAnnotation);
  if (src_index) entry.platform.reset();
  RETURN_IF_ERROR(dst.Tag(dst_tag, entry));
  result.descriptor = new_top;
  return result;
}

std::string ImageConvertResultToJson(const ImageConvertResult& result) {
  Json out = Json::object();
  out["digest"] = result.descriptor.digest.ToString();
  out["mediaType"] = result.descriptor.media_type;
  out["size"] = result.descriptor.size;
  Json manifests = Json::array();
  for (const auto& m : result.manifests) {
    Json jm = Json::object();
    jm["platform"] = m.platform.ToString();
    jm["sourceDigest"] = m.source_digest.ToString();
    jm["digest"] = m.manifest.digest.ToString();
    Json layers = Json::array();
    for (const auto& l : m.layers) {
      Json jl = Json::object();
      jl["sourceDigest"] = l.source_digest.ToString();
      jl["digest"] = l.digest.ToString();
      jl["size"] = l.size;
      jl["mediaType"] = l.media_type;
      jl["diffID"] = l.diff_id.ToString();
      jl["tocDigest"] = l.toc_digest ? Json(l.toc_digest->ToString()) : Json(nullptr);
      jl["converted"] = l.converted;
      layers.push_back(std::move(jl));
    }
    jm["layers"] = std::move(layers);
    manifests.push_back(std::move(jm));
  }
  out["manifests"] = std::move(manifests);
  out["missedPrioritizedFiles"] = result.missed_prioritized_files;
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace lazysnap

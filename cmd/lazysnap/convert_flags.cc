#include "cmd/lazysnap/convert_flags.h"

#include <unistd.h>

#include <cstdio>

#include "base/status_macros.h"
#include "base/stream.h"
#include "base/strings.h"
#include "cmd/lazysnap/commands.h"
#include "cmd/lazysnap/progress.h"
#include "format/convert.h"

namespace lazysnap::cli {
namespace {

absl::Status ReadPrioritizeList(const std::string& path, std::vector<std::string>* out) {
  ASSIGN_OR_RETURN(std::string data, ReadFileToString(path));
  size_t start = 0;
  while (start < data.size()) {
    size_t end = data.find('\n', start);
    if (end == std::string::npos) end = data.size();
    std::string line = data.substr(start, end - start);
    start = end + 1;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.pop_back();
    }
    if (line.empty() || line[0] == '#') continue;
    out->push_back(NormalizePath(line));
  }
  return absl::OkStatus();
}

void PrintSummary(const ImageConvertResult& r, const ImageArg& dst) {
  std::string name = dst.layout ? StrCat(dst.dir, ":", dst.tag) : dst.ref->String();
  std::printf("%s %s\n", name.c_str(), r.descriptor.digest.ToString().c_str());
  for (const auto& m : r.manifests) {
    std::printf("  %s %s\n", m.platform.ToString().c_str(), m.manifest.digest.ToString().c_str());
    for (const auto& l : m.layers) {
      std::printf("    %s -> %s%s\n", l.source_digest.ToString().c_str(),
                  l.digest.ToString().c_str(), l.converted ? "" : " (kept)");
    }
  }
}

}  // namespace

std::string NormalizePath(std::string p) {
  while (true) {
    if (p.rfind("./", 0) == 0) {
      p.erase(0, 2);
    } else if (p.rfind("/", 0) == 0) {
      p.erase(0, 1);
    } else {
      break;
    }
  }
  return p;
}

void AddConvertFlags(CLI::App& cmd, ConvertFlags* f, bool optimize) {
  cmd.add_flag("--oci-layout", f->oci_layout,
               "SRC and DST are both OCI image layout directories, DIR[:TAG]");
  cmd.add_option("SRC", f->src, "source image: REFERENCE or oci:DIR[:TAG]")->required();
  cmd.add_option("DST", f->dst,
                 "destination image: REFERENCE or oci:DIR[:TAG] (a layout's TAG defaults to "
                 "SRC's)")
      ->required();
  AddRegistryFlags(cmd, &f->registry, optimize ? "--registry-timeout" : "--timeout");
  cmd.add_option("--format", f->format, "layer format")
      ->check(CLI::IsMember({"estargz", "zstd-chunked"}))
      ->capture_default_str();
  cmd.add_option("--chunk-size", f->chunk_size,
                 "uncompressed bytes per chunk of a file (e.g. 4MiB)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{4096}, uint64_t{256} << 20))
      ->capture_default_str();
  cmd.add_option("--level", f->level,
                 "compression level: gzip 1-12, zstd 1-19; 0 picks the format's default")
      ->capture_default_str();
  cmd.add_option("--prioritize-file", f->prioritize_files,
                 optimize ? "a file to put first, before the recorded ones (repeatable; in order)"
                          : "a file to put first (repeatable; in order); e.g. what the "
                            "entrypoint reads")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd.add_option("--prioritize-list", f->prioritize_list,
                 "a file listing paths to put first, one per line ('#' starts a comment)")
      ->check(CLI::ExistingFile);
  if (optimize) {
    cmd.add_option("--platform", f->platforms,
                   "os/arch[/variant] to run and convert (default linux/amd64)")
        ->expected(1);
  } else {
    auto* platform = cmd.add_option("--platform", f->platforms,
                                    "os/arch[/variant] to convert (repeatable; default "
                                    "linux/amd64)")
                         ->expected(1)
                         ->allow_extra_args(false)
                         ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    cmd.add_flag("--all-platforms", f->all_platforms, "convert every platform of an index")
        ->excludes(platform);
  }
  cmd.add_flag("-q,--quiet", f->quiet, "print nothing but errors");
  cmd.add_flag("--json", f->json,
               "print the result as JSON on stdout (with \"upload\" counters for a registry "
               "DST: blobsUploaded, bytesUploaded, blobsMounted, blobsExisting, "
               "manifestsPushed)");
  cmd.add_option("--temp-dir", f->temp_dir,
                 optimize ? "where to unpack the image for the run and spool layers while "
                            "converting (default $TMPDIR or /tmp); needs room for the unpacked "
                            "image"
                          : "where to spool uncompressed layers while converting (default "
                            "$TMPDIR or /tmp); needs room for the largest uncompressed layer per "
                            "job, and for a registry DST the converted layers until they are "
                            "uploaded")
      ->check(CLI::ExistingDirectory);
  cmd.add_option("-j,--jobs", f->jobs, "layers converted at once (default: cores)")
      ->check(CLI::Range(1, 1024));
}

absl::StatusOr<ImageConvertOptions> BuildConvertOptions(const ConvertFlags& f) {
  ImageConvertOptions o;
  o.layer.format = f.format == "zstd-chunked" ? LayerFormat::kZstdChunked : LayerFormat::kEstargz;
  o.layer.chunk_size = static_cast<uint32_t>(f.chunk_size);
  int max_level = o.layer.format == LayerFormat::kEstargz ? 12 : 19;
  if (f.level < 0 || f.level > max_level) {
    return absl::InvalidArgumentError(
        StrCat("--level must be 1..", max_level, " for ", f.format, " (0: default)"));
  }
  o.layer.level = f.level;
  for (const auto& p : f.prioritize_files) o.layer.prioritized_files.push_back(NormalizePath(p));
  if (!f.prioritize_list.empty()) {
    absl::Status s = ReadPrioritizeList(f.prioritize_list, &o.layer.prioritized_files);
    if (!s.ok()) {
      return absl::InvalidArgumentError(StrCat("--prioritize-list: ", s.message()));
    }
  }
  for (const auto& p : f.platforms) {
    ASSIGN_OR_RETURN(Platform platform, Platform::Parse(p));
    o.platforms.push_back(platform);
  }
  o.all_platforms = f.all_platforms;
  o.jobs = f.jobs;
  o.layer.temp_dir = f.temp_dir;
  o.converter = [](InputStream& in, OutputStream& out, const ConvertOptions& options) {
    return ConvertLayer(in, out, options);
  };
  return o;
}

std::unique_ptr<OpenedImages> OpenImages(const ConvertFlags& f, int* exit_code) {
  auto src = ParseImageArg(f.src, f.oci_layout);
  if (!src.ok()) {
    *exit_code = ReportError(src.status(), true);
    return nullptr;
  }
  auto dst = ParseImageArg(f.dst, f.oci_layout);
  if (!dst.ok()) {
    *exit_code = ReportError(dst.status(), true);
    return nullptr;
  }
  if (dst->layout && dst->tag.empty() && src->tag.rfind("sha256:", 0) != 0) dst->tag = src->tag;
  if (dst->layout && dst->tag.empty()) {
    *exit_code = ReportError(absl::InvalidArgumentError("DST needs a tag: DIR:TAG"), true);
    return nullptr;
  }
  if (dst->ref && !dst->ref->digest.empty()) {
    *exit_code =
        ReportError(absl::InvalidArgumentError("DST must name a tag, not a digest"), true);
    return nullptr;
  }
  RegistryFlags registry = f.registry;
  registry.temp_dir = f.temp_dir;
  auto stores = ConvertStores::Open(*src, *dst, registry);
  if (!stores.ok()) {
    *exit_code = ReportError(stores.status());
    return nullptr;
  }
  auto out = std::make_unique<OpenedImages>();
  out->src = *std::move(src);
  out->dst = *std::move(dst);
  out->stores = *std::move(stores);
  return out;
}

int ConvertAndReport(const ConvertFlags& f, OpenedImages& images,
                     const ImageConvertOptions& options_in,
                     const nlohmann::ordered_json& extra_json, bool summary) {
  ImageConvertOptions options = options_in;
  std::unique_ptr<ProgressDisplay> display;
  if (!f.quiet && ::isatty(STDERR_FILENO)) {
    display = std::make_unique<ProgressDisplay>(stderr);
    options.progress = [&display](const LayerProgress& p) { display->Update(p); };
  }
  const ConvertStores& stores = *images.stores;
  auto result = ConvertImage(stores.src(), images.src.tag, stores.dst(), images.dst.tag, options);
  if (display) display->Finish();
  if (!result.ok()) return ReportError(result.status());
  if (!f.quiet) {
    for (const auto& p : result->missed_prioritized_files) {
      std::fprintf(stderr, "lazysnap: warning: prioritized file %s is in no layer\n", p.c_str());
    }
    if (!options.layer.prioritized_files.empty()) {
      for (const auto& m : result->manifests) {
        for (const auto& l : m.layers) {
          if (l.converted) continue;
          std::fprintf(stderr,
                       "lazysnap: warning: layer %s is already seekable and was kept as it is: "
                       "its files are not reordered (convert the original image instead)\n",
                       l.source_digest.ToString().c_str());
        }
      }
    }
  }
  if (f.json) {
    auto j = nlohmann::ordered_json::parse(ImageConvertResultToJson(*result));
    if (const RegistryImageStore* r = stores.dst_registry()) {
      UploadStats u = r->stats();
      j["upload"] = {{"blobsUploaded", u.blobs_uploaded}, {"bytesUploaded", u.bytes_uploaded},
                     {"blobsMounted", u.blobs_mounted}, {"blobsExisting", u.blobs_existing},
                     {"manifestsPushed", u.manifests_pushed}};
    }
    for (const auto& [k, v] : extra_json.items()) j[k] = v;
    std::printf("%s\n", j.dump().c_str());
  } else if (!f.quiet && summary) {
    PrintSummary(*result, images.dst);
  }
  return kExitOk;
}

}  // namespace lazysnap::cli

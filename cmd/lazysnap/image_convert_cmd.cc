// `lazysnap image convert`: converts an image (OCI layout or registry) into a seekable one.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/status_macros.h"
#include "base/stream.h"
#include "base/strings.h"
#include "cmd/lazysnap/commands.h"
#include "cmd/lazysnap/convert_stores.h"
#include "cmd/lazysnap/progress.h"
#include "format/convert.h"
#include "format/image_convert.h"
#include "format/oci_layout.h"

namespace lazysnap::cli {
namespace {

struct ConvertFlags {
  bool oci_layout = false;
  std::string src, dst;
  std::string format = "estargz";
  uint64_t chunk_size = ConvertOptions().chunk_size;
  int level = 0;
  std::vector<std::string> prioritize_files;
  std::string prioritize_list;
  std::vector<std::string> platforms;
  bool all_platforms = false;
  bool quiet = false;
  bool json = false;
  int jobs = 0;
  std::string temp_dir;
  RegistryFlags registry;
};

// A path as the converter expects it: relative to the layer root, no "./" or "/" prefix.
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

// Checks the flags and turns them into options. InvalidArgument for usage errors.
absl::StatusOr<ImageConvertOptions> BuildOptions(const ConvertFlags& f) {
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

int Run(const ConvertFlags& f) {
  auto options = BuildOptions(f);
  if (!options.ok()) return ReportError(options.status(), /*usage=*/true);
  auto src = ParseImageArg(f.src, f.oci_layout);
  if (!src.ok()) return ReportError(src.status(), true);
  auto dst = ParseImageArg(f.dst, f.oci_layout);
  if (!dst.ok()) return ReportError(dst.status(), true);
  if (dst->layout && dst->tag.empty() && src->tag.rfind("sha256:", 0) != 0) dst->tag = src->tag;
  if (dst->layout && dst->tag.empty()) {
    return ReportError(absl::InvalidArgumentError("DST needs a tag: DIR:TAG"), true);
  }
  if (dst->ref && !dst->ref->digest.empty()) {
    return ReportError(absl::InvalidArgumentError("DST must name a tag, not a digest"), true);
  }
  RegistryFlags registry = f.registry;
  registry.temp_dir = f.temp_dir;
  auto stores = ConvertStores::Open(*src, *dst, registry);
  if (!stores.ok()) return ReportError(stores.status());

  std::unique_ptr<ProgressDisplay> display;
  if (!f.quiet && ::isatty(STDERR_FILENO)) {
    display = std::make_unique<ProgressDisplay>(stderr);
    options->progress = [&display](const LayerProgress& p) { display->Update(p); };
  }
  auto result = ConvertImage((*stores)->src(), src->tag, (*stores)->dst(), dst->tag, *options);
  if (display) display->Finish();
  if (!result.ok()) return ReportError(result.status());
  if (!f.quiet) {
    for (const auto& p : result->missed_prioritized_files) {
      std::fprintf(stderr, "lazysnap: warning: prioritized file %s is in no layer\n", p.c_str());
    }
  }
  if (f.json) {
    std::string json = ImageConvertResultToJson(*result);
    if (const RegistryImageStore* r = (*stores)->dst_registry()) {
      auto j = nlohmann::ordered_json::parse(json);
      UploadStats u = r->stats();
      j["upload"] = {{"blobsUploaded", u.blobs_uploaded}, {"bytesUploaded", u.bytes_uploaded},
                     {"blobsMounted", u.blobs_mounted}, {"blobsExisting", u.blobs_existing},
                     {"manifestsPushed", u.manifests_pushed}};
      json = j.dump();
    }
    std::printf("%s\n", json.c_str());
  } else if (!f.quiet) {
    PrintSummary(*result, *dst);
  }
  return kExitOk;
}

}  // namespace

void AddImageConvertCommand(CLI::App& image, CommandBody* run) {
  auto flags = std::make_shared<ConvertFlags>();
  CLI::App* cmd = image.add_subcommand(
      "convert",
      "Convert an image into a seekable one (eStargz or zstd:chunked) for lazy pulling.\n"
      "SRC and DST are registry references (HOST[:PORT]/REPO[:TAG|@DIGEST]) or OCI image\n"
      "layouts, oci:DIR[:TAG] (all of them DIR[:TAG] with --oci-layout; they may be the same).");
  cmd->footer(
      "\nExamples:\n"
      "  lazysnap image convert --oci-layout ./img:latest ./img:latest-estargz\n"
      "  lazysnap image convert registry.example/app:v1 registry.example/app:v1-estargz\n"
      "  lazysnap image convert --plain-http oci:./img:v1 127.0.0.1:5000/app:v1\n"
      "  lazysnap image convert --oci-layout --format zstd-chunked --all-platforms \\\n"
      "      ./src:v1 ./dst:v1\n"
      "  lazysnap image convert --oci-layout --prioritize-list startup.txt --json ./img:v1 "
      "./img:v1-opt\n"
      "Exit status: 0 converted, 1 conversion failed, 2 bad arguments.");
  cmd->add_flag("--oci-layout", flags->oci_layout,
                "SRC and DST are both OCI image layout directories, DIR[:TAG]");
  cmd->add_option("SRC", flags->src, "source image: REFERENCE or oci:DIR[:TAG]")->required();
  cmd->add_option("DST", flags->dst,
                  "destination image: REFERENCE or oci:DIR[:TAG] (a layout's TAG defaults to "
                  "SRC's)")
      ->required();
  AddRegistryFlags(*cmd, &flags->registry);
  cmd->add_option("--format", flags->format, "layer format")
      ->check(CLI::IsMember({"estargz", "zstd-chunked"}))
      ->capture_default_str();
  cmd->add_option("--chunk-size", flags->chunk_size,
                  "uncompressed bytes per chunk of a file (e.g. 4MiB)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{4096}, uint64_t{256} << 20))
      ->capture_default_str();
  cmd->add_option("--level", flags->level,
                  "compression level: gzip 1-12, zstd 1-19; 0 picks the format's default")
      ->capture_default_str();
  cmd->add_option("--prioritize-file", flags->prioritize_files,
                  "a file to put first (repeatable; in order); e.g. what the entrypoint reads");
  cmd->add_option("--prioritize-list", flags->prioritize_list,
                  "a file listing paths to put first, one per line ('#' starts a comment)")
      ->check(CLI::ExistingFile);
  auto* platform = cmd->add_option("--platform", flags->platforms,
                                   "os/arch[/variant] to convert (repeatable; default "
                                   "linux/amd64)");
  cmd->add_flag("--all-platforms", flags->all_platforms, "convert every platform of an index")
      ->excludes(platform);
  cmd->add_flag("-q,--quiet", flags->quiet, "print nothing but errors");
  cmd->add_flag("--json", flags->json,
                "print the result as JSON on stdout (with \"upload\" counters for a registry "
                "DST: blobsUploaded, bytesUploaded, blobsMounted, blobsExisting, "
                "manifestsPushed)");
  cmd->add_option("--temp-dir", flags->temp_dir,
                  "where to spool uncompressed layers while converting (default $TMPDIR or "
                  "/tmp); needs room for the largest uncompressed layer per job, and for a registry "
                  "DST the converted layers until they are uploaded")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("-j,--jobs", flags->jobs, "layers converted at once (default: cores)")
      ->check(CLI::Range(1, 1024));
  cmd->callback([flags, run] { *run = [flags] { return Run(*flags); }; });
}

}  // namespace lazysnap::cli

// `lazysnap image convert`: converts an image (OCI layout or registry) into a seekable one.
#include <memory>

#include <CLI/CLI.hpp>

#include "cmd/lazysnap/commands.h"
#include "cmd/lazysnap/convert_flags.h"

namespace lazysnap::cli {
namespace {

int Run(const ConvertFlags& f) {
  auto options = BuildConvertOptions(f);
  if (!options.ok()) return ReportError(options.status(), /*usage=*/true);
  int exit_code = kExitOk;
  std::unique_ptr<OpenedImages> images = OpenImages(f, &exit_code);
  if (images == nullptr) return exit_code;
  return ConvertAndReport(f, *images, *options);
}

}  // namespace

void AddImageConvertCommand(CLI::App& image, CommandBody* run) {
  auto flags = std::make_shared<ConvertFlags>();
  CLI::App* cmd = image.add_subcommand(
      "convert",
      "Convert an image into a seekable one (eStargz or zstd:chunked) for lazy pulling.\n"
      "SRC and DST are registry references (HOST[:PORT]/REPO[:TAG|@DIGEST]) or OCI image\n"
      "layouts, oci:DIR[:TAG] (all of them DIR[:TAG] with --oci-layout; they may be the same).\n"
      "Layers already seekable are kept as they are. The DST tag is pushed last: a failed\n"
      "conversion leaves no tag behind.");
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
  AddConvertFlags(*cmd, flags.get(), /*optimize=*/false);
  cmd->callback([flags, run] { *run = [flags] { return Run(*flags); }; });
}

}  // namespace lazysnap::cli

// `lazysnap image pull REF`: pulls an image into containerd lazily, over containerd's gRPC API
// (containerd/pull.h does the work; this file is flags, the registry side and output).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "base/status_macros.h"
#include "base/strings.h"
#include "cmd/lazysnap/commands.h"
#include "cmd/lazysnap/registry_flags.h"
#include "containerd/grpc_client.h"
#include "containerd/pull.h"
#include "registry/blob_reader.h"
#include "registry/client.h"

namespace lazysnap::cli {
namespace {

struct PullFlags {
  std::string ref;
  std::string address = "/run/containerd/containerd.sock";
  std::string ns = "default";
  std::string snapshotter = "lazysnap";
  std::string platform = "linux/amd64";
  bool quiet = false;
  bool json = false;
  RegistryFlags registry;
};

constexpr size_t kMaxConfigBytes = size_t{32} << 20;

// The registry side of the pull: one reference's repository.
class RegistrySource : public containerd::ImageSource {
 public:
  RegistrySource(registry::RegistryClient* client, registry::Reference ref)
      : client_(client), ref_(std::move(ref)) {}

  absl::Status Top(Descriptor* desc, std::string* bytes) override {
    ASSIGN_OR_RETURN(auto m, client_->FetchManifest(ref_));  // the message names ref_
    *desc = m.descriptor;
    *bytes = std::move(m.bytes);
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> FetchManifest(const Descriptor& d) override {
    ASSIGN_OR_RETURN(auto m, client_->FetchManifest(ref_.WithObject(d.digest.ToString())));
    return std::move(m.bytes);
  }
  absl::StatusOr<std::string> FetchBlob(const Descriptor& d) override {
    // The descriptor's size: no HEAD first (a round trip).
    return client_->FetchBlob(ref_, d.digest, kMaxConfigBytes, static_cast<uint64_t>(d.size));
  }
  absl::StatusOr<std::unique_ptr<BlobSource>> OpenBlob(const Descriptor& d) override {
    ASSIGN_OR_RETURN(auto b, client_->OpenBlob(ref_, d.digest, static_cast<uint64_t>(d.size)));
    return std::unique_ptr<BlobSource>(std::move(b));
  }

 private:
  registry::RegistryClient* const client_;
  const registry::Reference ref_;
};

nlohmann::ordered_json ResultJson(const std::string& name, const std::string& snapshotter,
                                  const containerd::PullResult& r) {
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (const auto& l : r.layers) {
    layers.push_back({{"digest", l.blob.digest.ToString()},
                      {"size", l.blob.size},
                      {"diffID", l.diff_id.ToString()},
                      {"chainID", l.chain_id},
                      {"outcome", std::string(containerd::LayerOutcomeName(l.outcome))}});
  }
  return {{"name", name},
          {"snapshotter", snapshotter},
          {"target",
           {{"mediaType", r.target.media_type},
            {"digest", r.target.digest.ToString()},
            {"size", r.target.size}}},
          {"manifest", r.manifest.digest.ToString()},
          {"config", r.config.digest.ToString()},
          {"layers", layers}};
}

int Run(const PullFlags& f) {
  auto ref = registry::Reference::Parse(f.ref);
  if (!ref.ok()) {
    return ReportError(absl::InvalidArgumentError(
                           StrCat(f.ref, ": not an image reference (", ref.status().message(), ")")),
                       /*usage=*/true);
  }
  auto platform = Platform::Parse(f.platform);
  if (!platform.ok()) {
    return ReportError(absl::InvalidArgumentError(StrCat("--platform: ", platform.status().message())),
                       true);
  }
  auto conn = ConnectRegistry(f.registry);
  if (!conn.ok()) return ReportError(conn.status());
  containerd::GrpcOptions g;
  g.address = f.address;
  g.ns = f.ns;
  auto api = containerd::GrpcContainerd::Connect(g);
  if (!api.ok()) return ReportError(api.status());

  RegistrySource source((*conn)->client.get(), *ref);
  containerd::PullOptions o;
  o.name = ref->String();
  o.image_ref = ref->String();
  o.snapshotter = f.snapshotter;
  o.platform = *platform;
  if (!f.quiet && !f.json) {
    o.progress = [](std::string_view line) {
      std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
    };
  }
  auto result = containerd::PullImage(**api, source, o);
  if (!result.ok()) {
    return ReportError(absl::Status(result.status().code(),
                                    StrCat("pull ", o.name, ": ", result.status().message())));
  }
  if (f.json) {
    std::printf("%s\n", ResultJson(o.name, f.snapshotter, *result).dump().c_str());
  } else if (!f.quiet) {
    int counts[3] = {0, 0, 0};
    for (const auto& l : result->layers) ++counts[static_cast<int>(l.outcome)];
    std::printf("%s %s: %zu layers (%d remote, %d applied, %d present) for snapshotter %s\n",
                o.name.c_str(), result->target.digest.ToString().c_str(), result->layers.size(),
                counts[0], counts[1], counts[2], f.snapshotter.c_str());
  }
  return kExitOk;
}

}  // namespace

void AddImagePullCommand(CLI::App& image, CommandBody* run) {
  auto flags = std::make_shared<PullFlags>();
  if (const char* a = std::getenv("CONTAINERD_ADDRESS"); a != nullptr && *a != '\0') {
    flags->address = a;
  }
  if (const char* n = std::getenv("CONTAINERD_NAMESPACE"); n != nullptr && *n != '\0') {
    flags->ns = n;
  }
  CLI::App* cmd = image.add_subcommand(
      "pull",
      "Pull an image into containerd lazily: seekable layers (eStargz, zstd:chunked) are\n"
      "mounted remotely by lazysnapd, the others are downloaded and unpacked. Afterwards\n"
      "`ctr run --snapshotter lazysnap REF ...` runs it (the image counts as unpacked).");
  cmd->footer(
      "\nExamples:\n"
      "  lazysnap image pull registry.example/app:v1-estargz\n"
      "  lazysnap image pull --plain-http -n k8s.io 127.0.0.1:5000/app:v1\n"
      "  lazysnap image pull --platform linux/arm64 --json registry.example/app:v1\n"
      "Exit status: 0 pulled, 1 the pull failed (nothing is left behind), 2 bad arguments.");
  cmd->add_option("REF", flags->ref, "image reference: HOST[:PORT]/REPO[:TAG|@DIGEST]")
      ->required();
  cmd->add_option("-a,--address", flags->address,
                  "containerd's gRPC socket (env CONTAINERD_ADDRESS)")
      ->capture_default_str();
  cmd->add_option("-n,--namespace", flags->ns, "containerd namespace (env CONTAINERD_NAMESPACE)")
      ->capture_default_str();
  cmd->add_option("--snapshotter", flags->snapshotter,
                  "containerd snapshotter to unpack for (lazysnapd's proxy plugin name)")
      ->capture_default_str();
  cmd->add_option("--platform", flags->platform, "os/arch[/variant] to pull from an index")
      ->capture_default_str();
  AddRegistryFlags(*cmd, &flags->registry);
  cmd->add_flag("-q,--quiet", flags->quiet, "print nothing but errors");
  cmd->add_flag("--json", flags->json,
                "print the result as JSON on stdout: name, snapshotter, target, manifest, "
                "config, layers (digest, size, diffID, chainID, outcome: remote, applied or "
                "present)");
  cmd->callback([flags, run] { *run = [flags] { return Run(*flags); }; });
}

}  // namespace lazysnap::cli

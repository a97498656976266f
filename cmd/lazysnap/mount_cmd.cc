// `lazysnap mount`: mounts one seekable layer lazily (fusefs/) from a local blob file or a
// registry, in the foreground, until SIGINT/SIGTERM or an unmount; prints what was fetched.
// A tool for demos, debugging and the integration tests; lazysnapd mounts layers itself.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/blob_source.h"
#include "base/digest.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/stream.h"
#include "base/strings.h"
#include "cache/cache_manager.h"
#include "cmd/lazysnap/commands.h"
#include "cmd/lazysnap/registry_flags.h"
#include "format/layer.h"
#include "fusefs/layer_fs.h"
#include "registry/blob_reader.h"
#include "registry/client.h"
#include "registry/credentials.h"
#include "registry/curl_transport.h"
#include "registry/reference.h"

namespace lazysnap::cli {
namespace {

struct MountFlags {
  std::vector<std::string> args;  // [REF] MOUNTPOINT
  std::string blob;
  std::string digest;
  std::string cache_dir;
  RegistryFlags registry;
  int threads = 16;
  LayerFsOptions fs;  // the tuning flags below
  bool debug_fuse = false;
  bool quiet = false;
  bool json = false;
};

struct Opened {
  std::unique_ptr<RegistryConnection> registry;
  std::shared_ptr<BlobSource> source;
  registry::RegistryBlobSource* registry_source = nullptr;  // for request counts
  std::map<std::string, std::string> annotations;
  std::optional<Sha256> digest;  // the blob digest when known
};

absl::StatusOr<Opened> OpenRegistryBlob(const MountFlags& f, const std::string& ref_text) {
  Opened o;
  ASSIGN_OR_RETURN(registry::Reference ref, registry::Reference::Parse(ref_text));
  ASSIGN_OR_RETURN(o.registry, ConnectRegistry(f.registry));
  registry::RegistryClient* client = o.registry->client.get();
  // The manifest gives the layer's size and annotations (TOC digest to verify against);
  // without --digest it must have exactly one layer.
  std::optional<uint64_t> size;
  absl::StatusOr<registry::FetchedManifest> m = client->ResolveImage(ref);
  std::vector<Descriptor> layers;
  if (m.ok()) {
    absl::StatusOr<Manifest> parsed = ParseManifest(m->bytes);
    if (parsed.ok()) layers = parsed->layers;
  }
  if (f.digest.empty()) {
    if (!m.ok()) return m.status();
    if (layers.size() != 1) {
      std::string list;
      for (const Descriptor& d : layers) StrAppend(&list, "\n  ", d.digest.ToString(), " ", d.size);
      return absl::InvalidArgumentError(
          StrCat(ref_text, " has ", layers.size(), " layers; pick one with --digest:", list));
    }
    o.digest = layers[0].digest;
  } else {
    ASSIGN_OR_RETURN(Sha256 d, Sha256::Parse(f.digest));
    o.digest = d;
  }
  for (const Descriptor& d : layers) {
    if (d.digest == *o.digest) {
      size = static_cast<uint64_t>(d.size);
      o.annotations = d.annotations;
    }
  }
  if (!m.ok()) LZ_LOG(kWarning, "no manifest for ", ref_text, " (", m.status().ToString(), ")");
  ASSIGN_OR_RETURN(std::unique_ptr<registry::RegistryBlobSource> blob,
                   client->OpenBlob(ref, *o.digest, size));
  o.registry_source = blob.get();
  o.source = std::move(blob);
  return o;
}

// Waits for SIGINT/SIGTERM (blocked in every thread, taken here) or the mount going away.
int WaitForEnd(const LayerFs& fs) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  const timespec second = {1, 0};
  for (;;) {
    int sig = sigtimedwait(&set, nullptr, &second);
    if (sig > 0) return sig;
    if (absl::Status s = fs.Check(); !s.ok()) {
      LZ_LOG(kInfo, "mount ended: ", s.ToString());
      return 0;
    }
  }
}

int RunMount(const MountFlags& f) {
  if (f.args.empty() || f.args.size() > 2 || (f.blob.empty() == (f.args.size() == 1))) {
    return ReportError(absl::InvalidArgumentError(
                           "usage: lazysnap mount --blob FILE MOUNTPOINT | "
                           "lazysnap mount REF [--digest sha256:...] MOUNTPOINT"),
                       /*usage=*/true);
  }
  const std::string mountpoint = f.args.back();
  // Signals are taken by WaitForEnd only; every thread started from here on inherits this.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  Opened o;
  if (!f.blob.empty()) {
    auto file = FileBlobSource::Open(f.blob);
    if (!file.ok()) return ReportError(file.status());
    o.source = std::move(*file);
    if (!f.digest.empty()) {
      auto d = Sha256::Parse(f.digest);
      if (!d.ok()) return ReportError(d.status(), /*usage=*/true);
      o.digest = *d;
    }
  } else {
    auto r = OpenRegistryBlob(f, f.args[0]);
    if (!r.ok()) return ReportError(r.status());
    o = std::move(*r);
  }
  OpenOptions open_options;
  open_options.annotations = o.annotations;
  auto layer = OpenLayer(*o.source, open_options);
  if (!layer.ok()) return ReportError(layer.status());
  std::string().swap((*layer)->toc_json);  // not needed once indexed: ~3x the index's memory
  malloc_trim(0);  // the parse's freed heap back to the system (glibc keeps it otherwise)
  std::shared_ptr<const SeekableLayer> shared_layer = std::move(*layer);
  const uint64_t toc_bytes = o.registry_source ? o.registry_source->bytes_received() : 0;
  // A local blob without --digest is keyed by its TOC digest.
  const Sha256 key = o.digest.value_or(shared_layer->toc_digest);
  auto manager = CacheManager::Open(f.cache_dir, {});
  if (!manager.ok()) return ReportError(manager.status());
  auto cache = (*manager)->OpenLayer(key, shared_layer, o.source);
  if (!cache.ok()) return ReportError(cache.status());
  const LayerCacheStats before = (*cache)->stats();

  LayerFsOptions options = f.fs;
  options.fsname = key.ToString();
  options.max_threads = f.threads;
  options.debug = f.debug_fuse;
  auto fs = LayerFs::Mount(shared_layer, *cache, mountpoint, options);
  if (!fs.ok()) return ReportError(fs.status());
  if (!f.quiet) {
    std::fprintf(stderr, "lazysnap: mounted %s at %s (%zu entries, %llu file bytes, %llu of %llu "
                         "chunks cached)\n",
                 key.ToString().c_str(), (*fs)->mountpoint().c_str(), shared_layer->index.size(),
                 static_cast<unsigned long long>(shared_layer->index.total_file_bytes()),
                 static_cast<unsigned long long>(before.present_chunks),
                 static_cast<unsigned long long>(before.total_chunks));
  }
  int sig = WaitForEnd(**fs);
  absl::Status unmounted = (*fs)->Unmount();
  absl::Status flushed = (*cache)->Flush();
  LayerCacheStats s = (*cache)->stats();
  LayerFsStats fss = (*fs)->stats();
  const uint64_t blob_size = o.source->Size();
  if (f.json) {
    nlohmann::ordered_json j = {
        {"digest", key.ToString()},         {"blobSize", blob_size},
        {"tocBytes", toc_bytes},            {"bytesFetched", s.bytes_fetched},
        {"requests", s.requests},           {"chunksFetched", s.chunks_fetched},
        {"presentChunks", s.present_chunks}, {"totalChunks", s.total_chunks},
        {"reads", fss.reads},               {"readErrors", fss.read_errors},
        {"passthroughOpens", fss.passthrough_opens},
        {"verificationFailures", s.verification_failures}};
    std::printf("%s\n", j.dump().c_str());
  } else if (!f.quiet) {
    std::printf("fetched %llu bytes in %llu requests (%.1f%% of the %llu-byte layer; TOC %llu "
                "bytes); %llu chunks fetched, %llu of %llu present; %llu reads, %llu read errors, "
                "%llu verification failures; %llu passthrough opens\n",
                static_cast<unsigned long long>(s.bytes_fetched),
                static_cast<unsigned long long>(s.requests),
                blob_size ? 100.0 * static_cast<double>(s.bytes_fetched) / blob_size : 0.0,
                static_cast<unsigned long long>(blob_size),
                static_cast<unsigned long long>(toc_bytes),
                static_cast<unsigned long long>(s.chunks_fetched),
                static_cast<unsigned long long>(s.present_chunks),
                static_cast<unsigned long long>(s.total_chunks),
                static_cast<unsigned long long>(fss.reads),
                static_cast<unsigned long long>(fss.read_errors),
                static_cast<unsigned long long>(s.verification_failures),
                static_cast<unsigned long long>(fss.passthrough_opens));
  }
  std::fflush(stdout);
  if (!unmounted.ok()) return ReportError(unmounted);
  if (!flushed.ok()) return ReportError(flushed);
  (void)sig;
  return kExitOk;
}

}  // namespace

void AddMountCommand(CLI::App& app, CommandBody* run) {
  auto flags = std::make_shared<MountFlags>();
  CLI::App* cmd = app.add_subcommand(
      "mount",
      "Mount one seekable layer (eStargz or zstd:chunked) lazily, read-only, in the foreground.\n"
      "File data is fetched in chunks when first read and kept in --cache-dir. Stops on\n"
      "SIGINT/SIGTERM or when unmounted (umount MOUNTPOINT); then prints the bytes fetched.");
  cmd->footer(
      "\nExamples:\n"
      "  lazysnap mount --blob layer.tar.gz --cache-dir /tmp/c /mnt/layer\n"
      "  lazysnap mount localhost:5000/app:v1 --digest sha256:... --cache-dir /tmp/c /mnt/layer\n"
      "Exit status: 0 after a clean unmount, 1 on errors, 2 bad arguments.");
  cmd->add_option("ARGS", flags->args, "[REF] MOUNTPOINT")->required()->expected(1, 2);
  cmd->add_option("--blob", flags->blob, "a local layer blob file instead of a registry")
      ->check(CLI::ExistingFile);
  cmd->add_option("--digest", flags->digest,
                  "the layer's digest (required when the image has several layers)");
  cmd->add_option("--cache-dir", flags->cache_dir, "where fetched chunks are kept")->required();
  AddRegistryFlags(*cmd, &flags->registry, "--deadline");
  cmd->add_option("--threads", flags->threads, "FUSE worker threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--max-read", flags->fs.max_read_bytes,
                  "largest FUSE read request, in bytes (halved until replies can be spliced)")
      ->check(CLI::Range(4096u, 1u << 20))
      ->capture_default_str();
  cmd->add_option("--read-ahead-kb", flags->fs.read_ahead_kb,
                  "the mount's readahead (bdi read_ahead_kb); 0 keeps the kernel's")
      ->check(CLI::Range(0u, 65536u))
      ->capture_default_str();
  cmd->add_option("--passthrough-min-bytes", flags->fs.passthrough_min_bytes,
                  "FUSE passthrough for fully cached files of at least this size; 0: off")
      ->capture_default_str();
  cmd->add_flag("--debug-fuse", flags->debug_fuse, "trace every FUSE request to stderr");
  cmd->add_flag("-q,--quiet", flags->quiet, "print nothing but errors");
  cmd->add_flag("--json", flags->json,
                "print the figures at the end as JSON on stdout (digest, blobSize, tocBytes, "
                "bytesFetched, requests, chunksFetched, presentChunks, totalChunks, reads, "
                "readErrors, verificationFailures)");
  cmd->callback([flags, run] { *run = [flags] { return RunMount(*flags); }; });
}

}  // namespace lazysnap::cli

// lazysnapd_bench: the real lazysnapd (a child process, its own root and socket), spoken to
// over gRPC as containerd does, against a docker-registry on loopback behind a request-counting
// proxy. Prints:
//  (a) Prepare of a remote eStargz layer (labels as ctr-remote and CRI give them): wall time
//      of the gRPC call, registry requests (round trips) and bytes of footer + TOC read; a
//      second Prepare of the same layer (TOC remembered) for comparison;
//  (b) lazysnapd's memory (VmRSS) idle and with N different layers mounted, per layer and per
//      mounted file.
// Needs root (FUSE) and /usr/bin/docker-registry. Not a test.
//
//   lazysnapd_bench [--layers=20] [--files=3000] [--file_kib=4]    ($LAZYSNAPD: the binary)
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <grpcpp/grpcpp.h>
#include <map>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "base/strings.h"
#include "cmd/lazysnapd/daemon_testenv.h"
#include "registry/client.h"
#include "registry/curl_transport.h"
#include "registry/fault_proxy.h"
#include "registry/testenv.h"

using namespace lazysnap;
using namespace lazysnap::testing;

namespace {

long Flag(int argc, char** argv, const char* name, long def) {
  std::string prefix = StrCat("--", name, "=");
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) return std::atol(argv[i] + prefix.size());
  }
  return def;
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "lazysnapd_bench: %s\n", what.c_str());
  std::exit(1);
}

// `files` files of about `kib` KiB of compressible text, different for every `seed`.
std::map<std::string, std::string> Files(int seed, int files, int kib) {
  std::mt19937 rng(seed);
  std::map<std::string, std::string> out;
  const char* words[] = {"import ", "def ", "return ", "class ", "self", "(", ")", ":\n", "    ",
                         "lazysnap", "layer", "chunk", "= ", "None", "0x", "if ", "else"};
  for (int i = 0; i < files; ++i) {
    std::string path = StrCat("usr/lib/pkg", i % 50, "/mod", seed, "_", i, ".py");
    size_t size = std::uniform_int_distribution<size_t>(64, 2 * kib * 1024)(rng);
    std::string data;
    while (data.size() < size) {
      data += words[rng() % (sizeof(words) / sizeof(words[0]))];
      data += std::to_string(rng() % 1000);
    }
    data.resize(size);
    out[path] = std::move(data);
  }
  return out;
}

struct PrepareFigures {
  double ms = 0;
  int requests = 0;
  uint64_t toc_requests = 0, toc_bytes = 0;  // as lazysnapd logs them
  bool remote = false;
};

PrepareFigures Prepare(snapshots_v1::Snapshots::Stub& stub, registry::testing::FaultProxy& proxy,
                       const DaemonProcess& d, const std::string& key,
                       const std::map<std::string, std::string>& labels, const Sha256& digest) {
  snapshots_v1::PrepareSnapshotRequest req;
  req.set_key(key);
  for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
  snapshots_v1::PrepareSnapshotResponse resp;
  grpc::ClientContext ctx;
  int before = proxy.requests();
  absl::Time start = absl::Now();
  grpc::Status s = stub.Prepare(&ctx, req, &resp);
  PrepareFigures f;
  f.ms = absl::ToDoubleMilliseconds(absl::Now() - start);
  f.requests = proxy.requests() - before;
  f.remote = s.error_code() == grpc::StatusCode::ALREADY_EXISTS;
  if (!f.remote) Die(StrCat("Prepare ", key, ": code ", s.error_code(), " ", s.error_message()));
  // "layer sha256:...: TOC sha256:... (N bytes, C chunks) fetched with R requests, B bytes"
  std::string log = d.Log();
  std::smatch m;
  std::regex re(StrCat("layer ", digest.ToString(), R"(: TOC .* fetched with (\d+) requests, (\d+) bytes)"));
  if (std::regex_search(log, m, re)) {
    f.toc_requests = std::stoull(m[1]);
    f.toc_bytes = std::stoull(m[2]);
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  const int layers = static_cast<int>(Flag(argc, argv, "layers", 20));
  const int files = static_cast<int>(Flag(argc, argv, "files", 3000));
  const int kib = static_cast<int>(Flag(argc, argv, "file_kib", 4));
  if (getuid() != 0) Die("needs root (FUSE)");
  if (!registry::testing::RegistryProcess::Available()) Die("no docker-registry");
  auto tmp = registry::testing::TempDir::Create();
  if (!tmp.ok()) Die(tmp.status().ToString());
  const std::string dir = (*tmp)->path();
  std::filesystem::create_directories(StrCat(dir, "/reg"));
  auto reg = registry::testing::RegistryProcess::Start({}, StrCat(dir, "/reg"));
  if (!reg.ok()) Die(reg.status().ToString());
  auto proxy = registry::testing::FaultProxy::Start((*reg)->port());
  if (!proxy.ok()) Die(proxy.status().ToString());

  // The layers, pushed straight to the registry (lazysnapd reads blobs; no manifest needed).
  std::printf("making %d eStargz layers of %d files (about %d KiB each)...\n", layers, files, kib);
  std::fflush(stdout);
  auto transport = std::move(registry::CurlTransport::Create()).value();
  registry::RegistryClient pusher(transport.get(), nullptr, {});
  struct Made { Sha256 digest, toc; size_t size; };
  std::vector<Made> made;
  const std::string repo = StrCat((*proxy)->host(), "/bench/app");
  for (int i = 0; i < layers; ++i) {
    auto layer = MakeEstargzLayer(Files(i, files, kib));
    if (!layer.ok()) Die(layer.status().ToString());
    auto pushed = pusher.PushBlob(*registry::Reference::Parse(StrCat((*reg)->host(), "/bench/app:x")), layer->blob);
    if (!pushed.ok()) Die(pushed.status().ToString());
    made.push_back({layer->digest, layer->toc_digest, layer->blob.size()});
  }

  // The image's manifest, so that the labels can name it as CRI does (cri.manifest-digest: the
  // key of the image's access traces; without it lazysnapd resolves the tag once per image).
  std::string config = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})";
  auto config_desc = pusher.PushBlob(*registry::Reference::Parse(StrCat((*reg)->host(), "/bench/app:x")), config);
  if (!config_desc.ok()) Die(config_desc.status().ToString());
  std::string manifest = StrCat(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)",
                                R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")",
                                Sha256::Of(config).ToString(), R"(","size":)", config.size(), R"(},"layers":[)");
  for (int i = 0; i < layers; ++i) {
    StrAppend(&manifest, i ? "," : "", R"({"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")",
              made[i].digest.ToString(), R"(","size":)", made[i].size, "}");
  }
  manifest += "]}";
  auto manifest_desc = pusher.PushManifest(*registry::Reference::Parse(StrCat((*reg)->host(), "/bench/app:x")),
                                           "application/vnd.oci.image.manifest.v1+json", manifest);
  if (!manifest_desc.ok()) Die(manifest_desc.status().ToString());
  const std::string manifest_digest = Sha256::Of(manifest).ToString();

  std::filesystem::create_directories(StrCat(dir, "/d/certs.d"));
  auto d = DaemonProcess::Start(LazysnapdBinary(), StrCat(dir, "/d"),
                                StrCat("[registry]\nconfig_path = \"", dir, "/d/certs.d\"\ndocker_config = \"\"\n"));
  if (!d.ok()) Die(d.status().ToString());
  auto stub = (*d)->NewStub();
  // A first call so that the channel is connected before anything is timed.
  {
    snapshots_v1::StatSnapshotRequest req;
    req.set_key("warmup");
    snapshots_v1::StatSnapshotResponse resp;
    grpc::ClientContext ctx;
    (void)stub->Stat(&ctx, req, &resp);
  }
  const uint64_t rss_idle = (*d)->RssBytes();

  std::vector<PrepareFigures> figs;
  for (int i = 0; i < layers; ++i) {
    auto labels = RemoteLayerLabels(StrCat(repo, ":x"), made[i].digest.ToString(),
                                    made[i].toc.ToString(), StrCat("chain-", i));
    labels["containerd.io/snapshot/cri.manifest-digest"] = manifest_digest;
    figs.push_back(Prepare(*stub, **proxy, **d, StrCat("extract-", i), labels, made[i].digest));
  }
  const uint64_t rss_mounted = (*d)->RssBytes();
  // The same layer again under another chain ID: the TOC is remembered (no registry read).
  auto again_labels = RemoteLayerLabels(StrCat(repo, ":x"), made[0].digest.ToString(),
                                        made[0].toc.ToString(), "chain-again");
  again_labels["containerd.io/snapshot/cri.manifest-digest"] = manifest_digest;
  auto again = Prepare(*stub, **proxy, **d, "extract-again", again_labels, made[0].digest);

  std::printf("\n(a) Prepare of a remote eStargz layer over gRPC (%d files, blob %zu bytes)\n", files, made[0].size);
  std::printf("%-26s %10s %10s %12s %14s\n", "", "wall ms", "requests", "TOC requests", "footer+TOC B");
  std::vector<double> ms;
  for (auto& f : figs) ms.push_back(f.ms);
  std::sort(ms.begin(), ms.end());
  std::printf("%-26s %10.1f %10d %12llu %14llu\n", "first layer of the image", figs[0].ms, figs[0].requests,
              (unsigned long long)figs[0].toc_requests, (unsigned long long)figs[0].toc_bytes);
  std::printf("%-26s %10.1f %10d %12llu %14llu\n", "median of all layers", ms[ms.size() / 2],
              figs[figs.size() / 2].requests, (unsigned long long)figs[figs.size() / 2].toc_requests,
              (unsigned long long)figs[figs.size() / 2].toc_bytes);
  std::printf("%-26s %10.1f %10d %12s %14s\n", "same layer again", again.ms, again.requests, "-", "-");
  int max_requests = 0;
  for (auto& f : figs) max_requests = std::max(max_requests, f.requests);
  int max_later = 0;
  for (size_t i = 1; i < figs.size(); ++i) max_later = std::max(max_later, figs[i].requests);
  std::printf("registry requests per Prepare: max %d after the image's first layer (target 2: "
              "size+footer+TOC tail, TOC head; 1 when the TOC fits in 64 KiB)\n", max_later);
  std::printf("the first layer's %d - %llu more: lazysnapd looking the image's access trace up in "
              "the registry (prefetch registry_lookup; once per image, in the background)\n",
              figs[0].requests, (unsigned long long)figs[0].toc_requests);
  (void)max_requests;

  uint64_t total_files = uint64_t(layers) * files;
  std::printf("\n(b) lazysnapd memory (VmRSS)\n");
  std::printf("%-40s %12s\n", "idle (serving, nothing mounted)", StrCat(rss_idle / 1024, " KiB").c_str());
  std::printf("%-40s %12s\n", StrCat(layers, " layers mounted").c_str(), StrCat(rss_mounted / 1024, " KiB").c_str());
  std::printf("%-40s %12s\n", "per mounted layer", StrCat((rss_mounted - rss_idle) / layers / 1024, " KiB").c_str());
  std::printf("%-40s %12s\n", StrCat("per mounted file (", total_files, " files)").c_str(),
              StrCat((rss_mounted - rss_idle) / total_files, " B").c_str());
  absl::Status stopped = (*d)->Stop();
  if (!stopped.ok()) Die(stopped.ToString());
  return 0;
}

// `lazysnap trace`: the access traces lazysnapd records (prefetch/trace.h), in its state
// directory (`list`, `show`, `rm`) and in registries as OCI artifacts referring to their image
// (`push`, `pull`; prefetch/registry_traces.h).
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "cmd/lazysnap/commands.h"
#include "cmd/lazysnap/registry_flags.h"
#include "format/oci.h"
#include "prefetch/registry_traces.h"
#include "prefetch/trace.h"
#include "registry/artifact.h"
#include "registry/reference.h"

namespace lazysnap::cli {
namespace {

constexpr char kDefaultRoot[] = "/var/lib/lazysnap";

struct TraceFlags {
  std::string root = kDefaultRoot;
  std::vector<std::string> args;
  std::string platform;
  bool json = false;
  bool quiet = false;
  RegistryFlags registry;
};

using Json = nlohmann::ordered_json;

void PrintJson(const Json& j) { std::printf("%s\n", j.dump().c_str()); }

// The trace's span: the greatest millis of any access.
uint32_t SpanMillis(const Trace& t) {
  uint32_t span = 0;
  for (const LayerTrace& l : t.layers) {
    for (const TraceAccess& a : l.chunks) span = std::max(span, a.millis);
  }
  return span;
}

Json Summary(const Trace& t) {
  Json j = Json::object();
  j["manifest"] = t.manifest.ToString();
  j["layers"] = t.layers.size();
  j["chunks"] = t.access_count();
  j["span_ms"] = SpanMillis(t);
  return j;
}

// A trace named on the command line: "sha256:<hex>", "<hex>", or a unique prefix of at least
// 4 hex digits of a stored one.
absl::StatusOr<Sha256> FindStored(const TraceStore& store, std::string_view name) {
  if (name.rfind("sha256:", 0) == 0) name.remove_prefix(7);
  if (name.size() == 64) return Sha256::Parse(StrCat("sha256:", name));
  if (name.size() < 4 || name.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        StrCat("'", name, "' is not a manifest digest or a prefix of at least 4 hex digits"));
  }
  ASSIGN_OR_RETURN(std::vector<Sha256> all, store.List());
  std::optional<Sha256> match;
  for (const Sha256& d : all) {
    if (d.Hex().rfind(name, 0) != 0) continue;
    if (match) return absl::InvalidArgumentError(StrCat("'", name, "' names several traces"));
    match = d;
  }
  if (!match) return absl::NotFoundError(StrCat("no trace ", name, " in ", store.dir()));
  return *match;
}

int RunList(const TraceFlags& f) {
  TraceStore store(f.root);
  auto all = store.List();
  if (!all.ok()) return ReportError(all.status());
  Json out = Json::array();
  if (!f.json && !f.quiet) {
    std::printf("%-71s %6s %8s %9s %10s  %s\n", "MANIFEST", "LAYERS", "CHUNKS", "SPAN", "BYTES",
                "RECORDED");
  }
  int status = kExitOk;
  for (const Sha256& d : *all) {
    if (f.quiet) {
      std::printf("%s\n", d.ToString().c_str());
      continue;
    }
    auto t = store.Get(d);
    if (!t.ok()) {
      status = ReportError(t.status());  // listed on, exit 1 at the end
      continue;
    }
    struct stat st {};
    ::stat(store.PathOf(d).c_str(), &st);
    const std::string when = registry::FormatRfc3339(absl::FromTimeT(st.st_mtime));
    if (f.json) {
      Json j = Summary(*t);
      j["bytes"] = static_cast<uint64_t>(st.st_size);
      j["recorded"] = when;
      out.push_back(std::move(j));
    } else {
      std::printf("%-71s %6zu %8zu %7.1fs %10llu  %s\n", d.ToString().c_str(), t->layers.size(),
                  t->access_count(), SpanMillis(*t) / 1000.0,
                  static_cast<unsigned long long>(st.st_size), when.c_str());
    }
  }
  if (f.json) PrintJson(out);
  return status;
}

int RunShow(const TraceFlags& f) {
  if (f.args.size() != 1) {
    return ReportError(absl::InvalidArgumentError("usage: lazysnap trace show MANIFEST"), true);
  }
  TraceStore store(f.root);
  auto d = FindStored(store, f.args[0]);
  if (!d.ok()) return ReportError(d.status(), absl::IsInvalidArgument(d.status()));
  auto t = store.Get(*d);
  if (!t.ok()) return ReportError(t.status());
  if (f.json) {
    std::printf("%s\n", EncodeTrace(*t).c_str());
    return kExitOk;
  }
  std::printf("manifest %s: %zu layers, %zu chunks over %.1f s\n", t->manifest.ToString().c_str(),
              t->layers.size(), t->access_count(), SpanMillis(*t) / 1000.0);
  for (const LayerTrace& l : t->layers) {
    uint32_t last = l.chunks.empty() ? 0 : l.chunks.back().millis;
    std::printf("  layer %s\n    toc %s\n    %zu chunks, first accesses until %.1f s\n",
                l.digest.ToString().c_str(), l.toc_digest.ToString().c_str(), l.chunks.size(),
                last / 1000.0);
  }
  return kExitOk;
}

int RunRemove(const TraceFlags& f) {
  if (f.args.empty()) {
    return ReportError(absl::InvalidArgumentError("usage: lazysnap trace rm MANIFEST..."), true);
  }
  TraceStore store(f.root);
  int status = kExitOk;
  for (const std::string& name : f.args) {
    auto d = FindStored(store, name);
    absl::Status s = d.ok() ? store.Remove(*d) : d.status();
    if (!s.ok()) {
      status = ReportError(s);
      continue;
    }
    if (!f.quiet) std::printf("%s\n", d->ToString().c_str());
  }
  return status;
}

// The manifests a trace of `ref` may be keyed by, most specific first: the platform's image
// manifest, then (when the reference names an index) the index itself, as lazysnapd keys a
// tag it resolved with one HEAD (prefetch/trace.md).
absl::StatusOr<std::vector<Descriptor>> Candidates(registry::RegistryClient& client,
                                                   const registry::Reference& ref,
                                                   const std::string& platform) {
  std::optional<Platform> p;
  if (!platform.empty()) {
    ASSIGN_OR_RETURN(Platform parsed, Platform::Parse(platform));
    p = parsed;
  }
  std::vector<Descriptor> out;
  ASSIGN_OR_RETURN(registry::FetchedManifest image, client.ResolveImage(ref, p));
  out.push_back(image.descriptor);
  auto top = client.Resolve(ref);
  if (top.ok() && top->digest != image.descriptor.digest) out.push_back(*top);
  return out;
}

struct Connected {
  std::unique_ptr<RegistryConnection> connection;
  registry::Reference ref;
  std::vector<Descriptor> candidates;
};

absl::StatusOr<Connected> Connect(const TraceFlags& f) {
  if (f.args.size() != 1) return absl::InvalidArgumentError("expected one IMAGE_REF");
  Connected c;
  auto ref = registry::Reference::Parse(f.args[0]);
  if (!ref.ok()) {
    return absl::InvalidArgumentError(StrCat("bad image reference '", f.args[0], "': ",
                                             ref.status().message()));
  }
  c.ref = *ref;
  ASSIGN_OR_RETURN(c.connection, ConnectRegistry(f.registry));
  auto candidates = Candidates(*c.connection->client, c.ref, f.platform);
  if (!candidates.ok()) {
    return absl::Status(candidates.status().code(),
                        StrCat(f.args[0], ": ", candidates.status().message()));
  }
  c.candidates = *std::move(candidates);
  return c;
}

int RunPush(const TraceFlags& f) {
  auto c = Connect(f);
  if (!c.ok()) return ReportError(c.status(), absl::IsInvalidArgument(c.status()));
  TraceStore store(f.root);
  for (const Descriptor& subject : c->candidates) {
    auto t = store.Get(subject.digest);
    if (absl::IsNotFound(t.status())) continue;
    if (!t.ok()) return ReportError(t.status());
    auto pushed = PushTrace(*c->connection->client, c->ref, subject, *t);
    if (!pushed.ok()) {
      return ReportError(absl::Status(pushed.status().code(),
                                      StrCat("push trace of ", f.args[0], ": ",
                                             pushed.status().message())));
    }
    Json j = Summary(*t);
    j["repository"] = c->ref.Name();
    j["artifact"] = pushed->manifest.digest.ToString();
    j["blob"] = pushed->blob.digest.ToString();
    j["bytes"] = pushed->blob.size;
    if (f.json) {
      PrintJson(j);
    } else if (!f.quiet) {
      std::printf("pushed the trace of %s (%zu layers, %zu chunks, %lld bytes) to %s@%s\n",
                  subject.digest.ToString().c_str(), t->layers.size(), t->access_count(),
                  static_cast<long long>(pushed->blob.size), c->ref.Name().c_str(),
                  pushed->manifest.digest.ToString().c_str());
    }
    return kExitOk;
  }
  std::string names;
  for (const Descriptor& d : c->candidates) StrAppend(&names, names.empty() ? "" : " or ", d.digest.ToString());
  return ReportError(absl::NotFoundError(
      StrCat("no trace of ", f.args[0], " (manifest ", names, ") in ", store.dir(),
             "; run the image once under lazysnapd with [prefetch] record on, or give --root")));
}

int RunPull(const TraceFlags& f) {
  auto c = Connect(f);
  if (!c.ok()) return ReportError(c.status(), absl::IsInvalidArgument(c.status()));
  TraceStore store(f.root);
  for (const Descriptor& subject : c->candidates) {
    auto t = PullTrace(*c->connection->client, c->ref, subject.digest);
    if (absl::IsNotFound(t.status())) continue;
    if (!t.ok()) {
      return ReportError(absl::Status(t.status().code(), StrCat("pull trace of ", f.args[0], ": ",
                                                                t.status().message())));
    }
    const bool replaced = store.Has(subject.digest);
    // A root lazysnapd has not created yet: made as lazysnapd makes it (0700).
    std::error_code ec;
    if (!std::filesystem::exists(f.root, ec)) {
      std::filesystem::create_directories(f.root, ec);
      if (ec || ::chmod(f.root.c_str(), 0700) != 0) {
        return ReportError(absl::InternalError(
            StrCat("create ", f.root, ": ", ec ? ec.message() : std::strerror(errno))));
      }
    }
    if (absl::Status s = store.Put(*t); !s.ok()) return ReportError(s);
    if (f.json) {
      Json j = Summary(*t);
      j["path"] = store.PathOf(subject.digest);
      j["replaced"] = replaced;
      PrintJson(j);
    } else if (!f.quiet) {
      std::printf("pulled the trace of %s (%zu layers, %zu chunks) to %s%s\n",
                  subject.digest.ToString().c_str(), t->layers.size(), t->access_count(),
                  store.PathOf(subject.digest).c_str(), replaced ? " (replaced)" : "");
    }
    return kExitOk;
  }
  return ReportError(absl::NotFoundError(
      StrCat("no trace of ", f.args[0], " (manifest ", c->candidates[0].digest.ToString(),
             ") in ", c->ref.Name())));
}

CLI::App* Sub(CLI::App& trace, const char* name, const char* help,
              std::shared_ptr<TraceFlags> flags) {
  CLI::App* cmd = trace.add_subcommand(name, help);
  cmd->add_option("--root", flags->root, "lazysnapd's state directory (traces in ROOT/traces)")
      ->capture_default_str();
  return cmd;
}

}  // namespace

void AddTraceCommand(CLI::App& app, CommandBody* run) {
  CLI::App* trace = app.add_subcommand(
      "trace",
      "Access traces: which chunks an image reads at startup, recorded by lazysnapd and used\n"
      "to prefetch them on later cold starts; shared through registries as OCI artifacts.");
  trace->require_subcommand(1);

  auto list = std::make_shared<TraceFlags>();
  CLI::App* cmd = Sub(*trace, "list", "List the stored traces", list);
  cmd->add_flag("--json", list->json, "print a JSON array");
  cmd->add_flag("-q,--quiet", list->quiet, "print only the manifest digests");
  cmd->callback([list, run] { *run = [list] { return RunList(*list); }; });

  auto show = std::make_shared<TraceFlags>();
  cmd = Sub(*trace, "show", "Show one stored trace", show);
  cmd->add_option("MANIFEST", show->args, "manifest digest, or a unique hex prefix")->required();
  cmd->add_flag("--json", show->json, "print the trace itself (application/vnd.lazysnap.trace.v1+json)");
  cmd->callback([show, run] { *run = [show] { return RunShow(*show); }; });

  auto rm = std::make_shared<TraceFlags>();
  cmd = Sub(*trace, "rm", "Remove stored traces (lazysnapd records anew on the next mount)", rm);
  cmd->add_option("MANIFEST", rm->args, "manifest digests, or unique hex prefixes")->required();
  cmd->add_flag("-q,--quiet", rm->quiet, "print nothing but errors");
  cmd->callback([rm, run] { *run = [rm] { return RunRemove(*rm); }; });

  for (const bool push : {true, false}) {
    auto flags = std::make_shared<TraceFlags>();
    cmd = Sub(*trace, push ? "push" : "pull",
              push ? "Push the stored trace of an image to its repository, as an OCI artifact\n"
                     "referring to the image manifest (referrers API or the sha256-<hex> tag)"
                   : "Pull the newest trace of an image from its repository into the store\n"
                     "(replacing a stored one)",
              flags);
    cmd->add_option("IMAGE_REF", flags->args, "the image, e.g. registry:5000/app:v1")
        ->required()
        ->expected(1);
    cmd->add_option("--platform", flags->platform,
                    "os/arch[/variant] in a multi-platform image (default linux/amd64)");
    cmd->add_flag("--json", flags->json, "print a JSON object");
    cmd->add_flag("-q,--quiet", flags->quiet, "print nothing but errors");
    AddRegistryFlags(*cmd, &flags->registry);
    cmd->callback([flags, run, push] {
      *run = [flags, push] { return push ? RunPush(*flags) : RunPull(*flags); };
    });
  }
  trace->footer(
      "\nExamples:\n"
      "  lazysnap trace list --root /var/lib/lazysnap\n"
      "  lazysnap trace push --plain-http 127.0.0.1:5000/python:3\n"
      "  lazysnap trace pull 127.0.0.1:5000/python:3 --plain-http --root /var/lib/lazysnap\n"
      "Exit status: 0 success, 1 failure (e.g. no such trace), 2 bad arguments.");
}

}  // namespace lazysnap::cli

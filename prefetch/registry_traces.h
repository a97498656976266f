// Access traces in a registry: a Trace published as an OCI artifact referring to its image
// manifest (registry/artifact.h; layout in docs/prefetch.md, "Traces in a registry"), and
// RegistryTraceLookup, lazysnapd's background look-up of traces it does not have locally.
#ifndef LAZYSNAP_PREFETCH_REGISTRY_TRACES_H_
#define LAZYSNAP_PREFETCH_REGISTRY_TRACES_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/digest.h"
#include "format/oci.h"
#include "prefetch/manager.h"
#include "prefetch/trace.h"
#include "registry/artifact.h"
#include "registry/client.h"
#include "registry/credentials.h"
#include "registry/transport.h"
#include "registry/reference.h"

namespace lazysnap {

// Pushes `trace` to `repo`'s repository as an artifact referring to `subject` (the image
// manifest's descriptor, whose digest must be trace.manifest: InvalidArgument otherwise).
absl::StatusOr<registry::PushedArtifact> PushTrace(registry::RegistryClient& client,
                                                   const registry::Reference& repo,
                                                   const Descriptor& subject, const Trace& trace);

// The newest trace referring to `manifest` in `repo`'s repository. NotFound when there is
// none; InvalidArgument when it does not parse or names another manifest.
absl::StatusOr<Trace> PullTrace(registry::RegistryClient& client, const registry::Reference& repo,
                                const Sha256& manifest);

// Looks traces up in the registry in the background, one image at a time, and puts what it
// finds into a TraceStore. Each manifest is looked up at most once per `retry_after` (a
// found trace, a registry without one and a failure alike), so mounting the layers of one
// image asks once. Thread-safe; Request never blocks on the network.
class RegistryTraceLookup {
 public:
  // Called on the lookup thread after a found trace is stored. Must not call back into this.
  using FoundFn = std::function<void(const Trace&)>;

  // `client` and `store` are not owned and must outlive this. `found` may be empty.
  RegistryTraceLookup(registry::RegistryClient* client, TraceStore* store, FoundFn found,
                      absl::Duration retry_after = absl::Minutes(10));
  // Drops queued requests, waits for the one running.
  ~RegistryTraceLookup();

  // Queues a lookup of `manifest`'s trace in `repo`'s repository unless the store has one, or
  // one was asked for within retry_after. At most kMaxQueued wait; more are dropped (logged).
  void Request(const registry::Reference& repo, const Sha256& manifest);
  // Blocks until the queue is empty and no lookup runs (tests).
  void WaitIdle();
  // Blocks until no lookup of `manifest` is queued or running, at most `timeout`. True when
  // none is (then the store has the trace if the registry had one).
  bool WaitFor(const Sha256& manifest, absl::Duration timeout);

  struct Counters {
    uint64_t requests = 0;  // lookups made
    uint64_t found = 0;     // traces found and stored
    uint64_t not_found = 0;
    uint64_t failed = 0;    // registry errors, bad traces
  };
  Counters counters() const;

  static constexpr size_t kMaxQueued = 64;

 private:
  struct Job {
    registry::Reference repo;
    Sha256 manifest;
  };
  void Loop();

  registry::RegistryClient* const client_;
  TraceStore* const store_;
  const FoundFn found_;
  const absl::Duration retry_after_;

  mutable absl::Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> asked_ ABSL_GUARDED_BY(mu_);  // by manifest hex
  std::set<std::string> pending_ ABSL_GUARDED_BY(mu_);  // queued or running, by manifest hex
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  Counters counters_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;  // last: started after everything above exists
};

// lazysnapd's registry settings for the lookup (as RegistryMounterOptions has them).
struct RegistryTraceSourceOptions {
  std::string hosts_dir;      // containerd's certs.d ("" = default endpoints)
  std::string docker_config;  // a Docker config.json with credentials ("" = none)
  std::string auths_toml;     // lazysnapd config text with [registry.auths."HOST"] ("" = none)
  absl::Duration deadline = absl::Seconds(30);   // one lookup, retries included
  absl::Duration max_wait = absl::Milliseconds(500);  // Fetch's wait (the mount's delay)
};

// PrefetchManager's TraceSource (prefetch/manager.h) over a RegistryTraceLookup, for
// lazysnapd's [prefetch] registry_lookup. The lookup runs in the background: Hint() starts it
// when an image's layer starts mounting (before its TOC is read, so the two overlap); Fetch,
// called once per image when its first layer is mounted, waits for it at most `max_wait` and
// then answers NotFound. A trace that arrives later is still stored (TraceStore) and used by
// the next mount of the image. Thread-safe.
class RegistryTraceSource : public TraceSource {
 public:
  // `client` and `store` are not owned and must outlive this (`store`: the PrefetchManager's).
  RegistryTraceSource(registry::RegistryClient* client, TraceStore* store,
                      absl::Duration max_wait = absl::Milliseconds(500));

  // Starts a lookup of `manifest` in the repository of `image_ref` (no-op when stored, looked
  // up recently, or the reference does not parse). Never blocks on the network.
  void Hint(const std::string& image_ref, const Sha256& manifest) override;
  absl::StatusOr<Trace> Fetch(const std::string& image_ref, const Sha256& manifest) override;

  RegistryTraceLookup& lookup() { return lookup_; }

 private:
  friend absl::StatusOr<std::shared_ptr<RegistryTraceSource>> NewRegistryTraceSource(
      const RegistryTraceSourceOptions& options, TraceStore* store);
  // For NewRegistryTraceSource: owns the client and what it uses.
  std::unique_ptr<registry::HttpTransport> transport_;
  std::unique_ptr<registry::CredentialStore> credentials_;
  std::unique_ptr<registry::RegistryClient> client_;
  TraceStore* const store_;
  const absl::Duration max_wait_;
  RegistryTraceLookup lookup_;  // last: stopped before the client goes
};

// A RegistryTraceSource with its own registry client (curl transport, credentials).
// `store` is the PrefetchManager's; it must outlive the source.
absl::StatusOr<std::shared_ptr<RegistryTraceSource>> NewRegistryTraceSource(
    const RegistryTraceSourceOptions& options, TraceStore* store);

}  // namespace lazysnap

#endif  // LAZYSNAP_PREFETCH_REGISTRY_TRACES_H_

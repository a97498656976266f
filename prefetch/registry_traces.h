// Access traces in a registry: a Trace published as an OCI artifact referring to its image
// manifest (registry/artifact.h; layout in docs/prefetch.md, "Traces in a registry"), and
// RegistryTraceLookup, lazysnapd's background look-up of traces it does not have locally.
#ifndef LAZYSNAP_PREFETCH_REGISTRY_TRACES_H_
#define LAZYSNAP_PREFETCH_REGISTRY_TRACES_H_

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/digest.h"
#include "format/oci.h"
#include "prefetch/trace.h"
#include "registry/artifact.h"
#include "registry/client.h"
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
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  Counters counters_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;  // last: started after everything above exists
};

}  // namespace lazysnap

#endif  // LAZYSNAP_PREFETCH_REGISTRY_TRACES_H_

#include "prefetch/registry_traces.h"

#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "registry/curl_transport.h"

namespace lazysnap {

absl::StatusOr<registry::PushedArtifact> PushTrace(registry::RegistryClient& client,
                                                   const registry::Reference& repo,
                                                   const Descriptor& subject, const Trace& trace) {
  if (subject.digest != trace.manifest) {
    return absl::InvalidArgumentError(StrCat("the trace is of ", trace.manifest.ToString(),
                                             ", not of ", subject.digest.ToString()));
  }
  ASSIGN_OR_RETURN(std::string json, EncodeTraceWithin(trace, kMaxTraceBytes));
  return registry::PushArtifact(client, repo, subject, kTraceMediaType, kTraceMediaType, json,
                                registry::NowRfc3339());
}

absl::StatusOr<Trace> PullTrace(registry::RegistryClient& client, const registry::Reference& repo,
                                const Sha256& manifest) {
  ASSIGN_OR_RETURN(registry::PulledArtifact a,
                   registry::PullArtifact(client, repo, manifest, kTraceMediaType, kMaxTraceBytes));
  auto trace = ParseTrace(a.blob);
  if (!trace.ok()) {
    return absl::InvalidArgumentError(StrCat("trace artifact ", a.manifest.digest.ToString(),
                                             ": ", trace.status().message()));
  }
  if (trace->manifest != manifest) {
    return absl::InvalidArgumentError(StrCat("trace artifact ", a.manifest.digest.ToString(),
                                             " is a trace of ", trace->manifest.ToString(),
                                             ", not of ", manifest.ToString()));
  }
  return trace;
}

RegistryTraceLookup::RegistryTraceLookup(registry::RegistryClient* client, TraceStore* store,
                                         FoundFn found, absl::Duration retry_after)
    : client_(client), store_(store), found_(std::move(found)), retry_after_(retry_after) {
  thread_ = std::thread([this] { Loop(); });
}

RegistryTraceLookup::~RegistryTraceLookup() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
    queue_.clear();
    pending_.clear();
  }
  thread_.join();
}

void RegistryTraceLookup::Request(const registry::Reference& repo, const Sha256& manifest) {
  if (store_->Has(manifest)) return;
  const absl::Time now = absl::Now();
  absl::MutexLock l(&mu_);
  if (stop_) return;
  auto it = asked_.find(manifest.Hex());
  if (it != asked_.end() && now - it->second < retry_after_) return;
  if (queue_.size() >= kMaxQueued) {
    LZ_LOG(kWarning, "trace lookup of ", manifest.ToString(), " dropped: ", queue_.size(),
           " lookups queued");
    return;
  }
  if (asked_.size() >= 4096) {  // forget the expired ones
    for (auto a = asked_.begin(); a != asked_.end();) {
      a = now - a->second >= retry_after_ ? asked_.erase(a) : std::next(a);
    }
  }
  asked_[manifest.Hex()] = now;
  pending_.insert(manifest.Hex());
  queue_.push_back(Job{repo.WithObject(manifest.ToString()), manifest});
}

void RegistryTraceLookup::WaitIdle() {
  absl::MutexLock l(&mu_);
  mu_.Await(absl::Condition(
      +[](RegistryTraceLookup* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
        return self->queue_.empty() && !self->running_;
      },
      this));
}

bool RegistryTraceLookup::WaitFor(const Sha256& manifest, absl::Duration timeout) {
  const std::string hex = manifest.Hex();
  struct Arg {
    RegistryTraceLookup* self;
    const std::string* hex;
  } arg{this, &hex};
  absl::MutexLock l(&mu_);
  return mu_.AwaitWithTimeout(
      absl::Condition(
          +[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS { return !a->self->pending_.contains(*a->hex); },
          &arg),
      timeout);
}

RegistryTraceLookup::Counters RegistryTraceLookup::counters() const {
  absl::MutexLock l(&mu_);
  return counters_;
}

void RegistryTraceLookup::Loop() {
  for (;;) {
    Job job;
    {
      absl::MutexLock l(&mu_);
      mu_.Await(absl::Condition(
          +[](RegistryTraceLookup* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stop_ || !self->queue_.empty();
          },
          this));
      if (stop_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      running_ = true;
      ++counters_.requests;
    }
    absl::StatusOr<Trace> trace;
    if (store_->Has(job.manifest)) {  // recorded or pulled meanwhile
      trace = absl::AlreadyExistsError("stored meanwhile");
    } else {
      trace = PullTrace(*client_, job.repo, job.manifest);
    }
    absl::Status stored = trace.ok() ? store_->Put(*trace) : trace.status();
    if (trace.ok() && stored.ok()) {
      LZ_LOG(kInfo, "trace of ", job.manifest.ToString(), " found in ", job.repo.Name(), ": ",
             trace->layers.size(), " layers, ", trace->access_count(), " chunks");
    } else if (absl::IsNotFound(stored)) {
      LZ_LOG(kInfo, "no trace of ", job.manifest.ToString(), " in ", job.repo.Name());
    } else if (!absl::IsAlreadyExists(stored)) {
      LZ_LOG(kWarning, "trace lookup of ", job.manifest.ToString(), " in ", job.repo.Name(),
             " failed: ", stored.ToString());
    }
    if (trace.ok() && stored.ok() && found_) found_(*trace);
    absl::MutexLock l(&mu_);
    running_ = false;
    pending_.erase(job.manifest.Hex());
    if (trace.ok() && stored.ok()) {
      ++counters_.found;
    } else if (absl::IsNotFound(stored)) {
      ++counters_.not_found;
    } else if (!absl::IsAlreadyExists(stored)) {
      ++counters_.failed;
    }
  }
}

RegistryTraceSource::RegistryTraceSource(registry::RegistryClient* client, TraceStore* store,
                                         absl::Duration max_wait)
    : store_(store), max_wait_(max_wait), lookup_(client, store, nullptr) {}

void RegistryTraceSource::Hint(const std::string& image_ref, const Sha256& manifest) {
  auto ref = registry::Reference::Parse(image_ref);
  if (!ref.ok()) return;
  lookup_.Request(*ref, manifest);
}

absl::StatusOr<Trace> RegistryTraceSource::Fetch(const std::string& image_ref,
                                                 const Sha256& manifest) {
  if (image_ref.empty()) return absl::NotFoundError("no image reference to look a trace up in");
  ASSIGN_OR_RETURN(registry::Reference ref, registry::Reference::Parse(image_ref));
  lookup_.Request(ref, manifest);
  if (!lookup_.WaitFor(manifest, max_wait_)) {
    LZ_LOG(kInfo, "trace lookup of ", manifest.ToString(), " still running after ",
           absl::FormatDuration(max_wait_), "; the mount goes on without it");
    return absl::NotFoundError("trace lookup still running");
  }
  return store_->Get(manifest);
}

absl::StatusOr<std::shared_ptr<RegistryTraceSource>> NewRegistryTraceSource(
    const RegistryTraceSourceOptions& options, TraceStore* store) {
  ASSIGN_OR_RETURN(std::unique_ptr<registry::CurlTransport> transport,
                   registry::CurlTransport::Create());
  auto credentials = std::make_unique<registry::CredentialStore>();
  if (!options.docker_config.empty()) {
    absl::Status s = credentials->AddDockerConfigFile(options.docker_config);
    if (!s.ok()) LZ_LOG(kWarning, "trace lookup: registry credentials: ", s.ToString());
  }
  if (!options.auths_toml.empty()) RETURN_IF_ERROR(credentials->AddLazysnapConfig(options.auths_toml));
  registry::ClientOptions o;
  o.hosts_dir = options.hosts_dir;
  o.retry.deadline = options.deadline;
  o.retry.attempt_timeout = std::min(o.retry.attempt_timeout, options.deadline);
  auto client = std::make_unique<registry::RegistryClient>(transport.get(), credentials.get(), o);
  auto source = std::make_shared<RegistryTraceSource>(client.get(), store, options.max_wait);
  source->transport_ = std::move(transport);
  source->credentials_ = std::move(credentials);
  source->client_ = std::move(client);
  return source;
}

}  // namespace lazysnap

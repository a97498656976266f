// Traces through a real docker-registry 2.8: push, pull, and lazysnapd's background lookup.
#include "prefetch/registry_traces.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "base/strings.h"
#include "registry/curl_transport.h"
#include "registry/testenv.h"

namespace lazysnap {
namespace {

using registry::testing::RegistryProcess;
using registry::testing::TempDir;

class RegistryTracesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RegistryProcess::Available()) GTEST_SKIP() << "no docker-registry";
    dir_ = std::move(TempDir::Create()).value();
    auto reg = RegistryProcess::Start({}, dir_->path());
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = std::move(*reg);
    transport_ = std::move(registry::CurlTransport::Create()).value();
    registry::ClientOptions opts;
    opts.retry.deadline = absl::Seconds(10);
    client_ = std::make_unique<registry::RegistryClient>(transport_.get(), nullptr, opts);
    ref_ = *registry::Reference::Parse(StrCat(registry_->host(), "/test/python:3"));
    store_dir_ = std::move(TempDir::Create()).value();
  }

  Descriptor PushImage(const std::string& config) {
    EXPECT_TRUE(client_->PushBlob(ref_, config).ok());
    Manifest m;
    m.media_type = kOciManifestMediaType;
    m.config = DescriptorOf(kOciConfigMediaType, config);
    auto d = client_->PushManifest(ref_, kOciManifestMediaType, SerializeManifest(m));
    EXPECT_TRUE(d.ok()) << d.status();
    return d.value_or(Descriptor{});
  }

  static Trace SampleTrace(const Sha256& manifest) {
    Trace t;
    t.manifest = manifest;
    LayerTrace l;
    l.digest = Sha256::Of("layer");
    l.toc_digest = Sha256::Of("toc");
    l.chunks = {{7, 0}, {3, 1}, {900, 25}};
    t.layers.push_back(l);
    return t;
  }

  std::unique_ptr<TempDir> dir_, store_dir_;
  std::unique_ptr<RegistryProcess> registry_;
  std::unique_ptr<registry::CurlTransport> transport_;
  std::unique_ptr<registry::RegistryClient> client_;
  registry::Reference ref_;
};

TEST_F(RegistryTracesTest, PushedTracePullsBackEqual) {
  const Descriptor image = PushImage("{\"os\":\"linux\"}");
  EXPECT_TRUE(absl::IsNotFound(PullTrace(*client_, ref_, image.digest).status()));
  const Trace trace = SampleTrace(image.digest);
  auto pushed = PushTrace(*client_, ref_, image, trace);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(pushed->blob.media_type, kTraceMediaType);
  auto pulled = PullTrace(*client_, ref_, image.digest);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(*pulled, trace);
  // A trace of another image is not pushed as this image's.
  EXPECT_TRUE(absl::IsInvalidArgument(
      PushTrace(*client_, ref_, image, SampleTrace(Sha256::Of("other"))).status()));
}

TEST_F(RegistryTracesTest, BackgroundLookupStoresTheTraceOnceAndCallsBack) {
  const Descriptor with = PushImage("{\"os\":\"linux\",\"n\":1}");
  const Descriptor without = PushImage("{\"os\":\"linux\",\"n\":2}");
  ASSERT_TRUE(PushTrace(*client_, ref_, with, SampleTrace(with.digest)).ok());

  TraceStore store(store_dir_->path());
  std::vector<Sha256> found;
  absl::Mutex mu;
  RegistryTraceLookup lookup(client_.get(), &store, [&](const Trace& t) {
    absl::MutexLock l(&mu);
    found.push_back(t.manifest);
  });
  // Every layer of an image asks; one lookup happens.
  for (int i = 0; i < 5; ++i) lookup.Request(ref_, with.digest);
  lookup.Request(ref_, without.digest);
  lookup.WaitIdle();
  auto stored = store.Get(with.digest);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(*stored, SampleTrace(with.digest));
  EXPECT_FALSE(store.Has(without.digest));
  RegistryTraceLookup::Counters c = lookup.counters();
  EXPECT_EQ(c.requests, 2u);
  EXPECT_EQ(c.found, 1u);
  EXPECT_EQ(c.not_found, 1u);
  EXPECT_EQ(c.failed, 0u);
  {
    absl::MutexLock l(&mu);
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0], with.digest);
  }
  // Stored now, and the miss is remembered: no more registry requests.
  lookup.Request(ref_, with.digest);
  lookup.Request(ref_, without.digest);
  lookup.WaitIdle();
  EXPECT_EQ(lookup.counters().requests, 2u);
}

TEST_F(RegistryTracesTest, RegistryDownCountsAFailure) {
  const Descriptor image = PushImage("{\"os\":\"linux\"}");
  registry_->Stop();
  registry::ClientOptions opts;
  opts.retry.deadline = absl::Milliseconds(500);
  registry::RegistryClient quick(transport_.get(), nullptr, opts);
  TraceStore store(store_dir_->path());
  RegistryTraceLookup lookup(&quick, &store, nullptr);
  lookup.Request(ref_, image.digest);
  lookup.WaitIdle();
  EXPECT_EQ(lookup.counters().failed, 1u);
  EXPECT_FALSE(store.Has(image.digest));
}

TEST_F(RegistryTracesTest, SourceAnswersWithTheRegistryTraceAndStoresIt) {
  const Descriptor with = PushImage("{\"os\":\"linux\",\"n\":3}");
  const Descriptor without = PushImage("{\"os\":\"linux\",\"n\":4}");
  ASSERT_TRUE(PushTrace(*client_, ref_, with, SampleTrace(with.digest)).ok());
  TraceStore store(store_dir_->path());
  RegistryTraceSourceOptions options;
  options.max_wait = absl::Seconds(30);
  auto made = NewRegistryTraceSource(options, &store);
  ASSERT_TRUE(made.ok()) << made.status();
  RegistryTraceSource& source = **made;
  source.Hint(ref_.String(), with.digest);  // as a mount starts
  auto t = source.Fetch(ref_.String(), with.digest);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, SampleTrace(with.digest));
  EXPECT_TRUE(store.Has(with.digest));
  EXPECT_EQ(source.lookup().counters().requests, 1u);  // the hint's lookup was waited on
  EXPECT_TRUE(absl::IsNotFound(source.Fetch(ref_.String(), without.digest).status()));
  EXPECT_TRUE(absl::IsNotFound(source.Fetch("", without.digest).status()));
}

}  // namespace
}  // namespace lazysnap

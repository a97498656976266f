// RegistryLayerMounter against a real docker-registry and real FUSE mounts (needs root and
// /dev/fuse; skipped otherwise): lazy reads, TOC verification against the label, fallback
// errors, and mounting again from the locally stored TOC with the registry gone.
#include "remote/registry_mounter.h"

#include <fcntl.h>
#include <filesystem>
#include <optional>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/escaping.h"
#include "base/strings.h"
#include "cache/testing.h"
#include "format/estargz.h"
#include "format/estargz_testutil.h"
#include "fusefs/testing.h"
#include "registry/curl_transport.h"
#include "registry/fault_proxy.h"
#include "registry/testenv.h"

#include <thread>

namespace lazysnap {
namespace {

using registry::testing::RegistryProcess;

// The whole file at `path`, or nullopt when open or read fails (EIO from the mount).
std::optional<std::string> ReadAll(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  ::close(fd);
  if (n < 0) return std::nullopt;
  return out;
}

class RegistryMounterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = fusefs_testing::CannotMount(); !why.empty()) GTEST_SKIP() << why;
    if (!RegistryProcess::Available()) GTEST_SKIP() << "no docker-registry";
    lazysnap::testing::EstargzBuilder b;
    b.AddDir("etc");
    b.AddFile("etc/hosts", "127.0.0.1 localhost\n");
    big_ = cache_testing::PseudoRandom(1 << 20, 3);
    b.AddFile("bin/big", big_, /*chunk_size=*/16384, 0755);
    blob_ = b.Finish();
    MemoryBlobSource mem(blob_);
    auto layer = OpenLayer(mem, OpenOptions{});
    ASSERT_TRUE(layer.ok()) << layer.status();
    toc_digest_ = (*layer)->toc_digest;

    const std::string reg_dir = StrCat(tmp_.path(), "/registry");
    ASSERT_EQ(::mkdir(reg_dir.c_str(), 0755), 0);
    auto reg = RegistryProcess::Start({}, reg_dir);
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = std::move(*reg);
    ref_ = StrCat(registry_->host(), "/test/layer:x");
    auto transport = registry::CurlTransport::Create();
    ASSERT_TRUE(transport.ok());
    registry::RegistryClient client(transport->get(), nullptr, {});
    auto r = registry::Reference::Parse(ref_);
    ASSERT_TRUE(r.ok());
    auto desc = client.PushBlob(*r, blob_);
    ASSERT_TRUE(desc.ok()) << desc.status();
    digest_ = desc->digest.ToString();
    auto gz = client.PushBlob(*r, lazysnap::testing::GzipMember(cache_testing::PseudoRandom(100000, 9)));
    ASSERT_TRUE(gz.ok()) << gz.status();
    gzip_digest_ = gz->digest.ToString();

    mnt_ = StrCat(tmp_.path(), "/mnt");
    ASSERT_EQ(::mkdir(mnt_.c_str(), 0755), 0);
    NewMounter();
  }
  absl::Duration image_key_wait_ = absl::Seconds(1);
  absl::Duration mount_deadline_ = absl::Seconds(2);
  absl::Duration read_deadline_ = absl::Seconds(2);
  uint64_t bandwidth_limit_ = 0;  // [prefetch] bandwidth_limit
  uint64_t tail_bytes_ = RegistryMounterOptions{}.tail_bytes;
  std::string cache_name_ = "cache";  // a new one: no TOC stored yet
  void NewMounter(bool prefetch = false) {
    mounter_.reset();
    RegistryMounterOptions options;
    if (prefetch) {
      options.prefetch = PrefetchConfig{};
      options.prefetch->scheduler.bandwidth_limit = bandwidth_limit_;
      options.trace_root = StrCat(tmp_.path(), "/root");
    }
    options.cache_root = StrCat(tmp_.path(), "/", cache_name_);
    options.tail_bytes = tail_bytes_;
    options.mount_deadline = mount_deadline_;
    options.read_deadline = read_deadline_;
    options.image_key_wait = image_key_wait_;
    auto m = RegistryLayerMounter::Create(options);
    ASSERT_TRUE(m.ok()) << m.status();
    mounter_ = std::move(*m);
  }
  Labels LabelsFor(const std::string& digest) const {
    return {{"containerd.io/snapshot/remote/stargz.reference", ref_},
            {"containerd.io/snapshot/remote/stargz.digest", digest},
            {"containerd.io/snapshot/stargz/toc.digest", toc_digest_.ToString()}};
  }
  // The image manifest the traced tests record under (traces are keyed by it).
  static Sha256 TraceManifest() { return Sha256::Of("manifest"); }
  // LabelsFor(digest_) with the image manifest's label, so that mounts record and replay.
  Labels TracedLabels() const {
    Labels labels = LabelsFor(digest_);
    labels[kCriManifestDigestLabel] = TraceManifest().ToString();
    return labels;
  }
  // Mounts with prefetch, reads /bin/big, unmounts and destroys the mounter: the trace of that
  // read is stored. Callers wrap it in ASSERT_NO_FATAL_FAILURE.
  void RecordTraceOfBig() {
    NewMounter(/*prefetch=*/true);
    ASSERT_TRUE(mounter_->Mount(digest_, TracedLabels(), mnt_).ok());
    ASSERT_EQ(ReadAll(mnt_ + "/bin/big"), big_);
    ASSERT_TRUE(mounter_->Unmount(mnt_).ok());
    mounter_.reset();  // the trace is stored
  }
  bool Empty(const std::string& dir) {
    std::error_code ec;
    return std::filesystem::is_empty(dir, ec) && !ec;
  }

  cache_testing::TempDir tmp_;
  std::unique_ptr<RegistryProcess> registry_;
  std::string blob_, big_, ref_, digest_, gzip_digest_, mnt_;
  Sha256 toc_digest_;
  std::unique_ptr<RegistryLayerMounter> mounter_;  // last: unmounts before tmp_ goes
};

TEST_F(RegistryMounterTest, MountsLazilyAndUnmounts) {
  ASSERT_TRUE(mounter_->Mount(digest_, LabelsFor(digest_), mnt_).ok());
  EXPECT_TRUE(mounter_->Check(mnt_).ok());
  EXPECT_EQ(ReadAll(mnt_ + "/etc/hosts"), "127.0.0.1 localhost\n");
  auto stats = mounter_->Stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].blob_size, blob_.size());
  EXPECT_GT(stats[0].cache.bytes_fetched, 0u);
  EXPECT_LT(stats[0].cache.bytes_fetched, blob_.size() / 4) << "fetched more than the file";
  EXPECT_EQ(ReadAll(mnt_ + "/bin/big"), big_);
  EXPECT_TRUE(mounter_->Mount(digest_, LabelsFor(digest_), mnt_).code() ==
              absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(mounter_->Unmount(mnt_).ok());
  EXPECT_FALSE(mounter_->Check(mnt_).ok());
  EXPECT_TRUE(Empty(mnt_));
}

TEST_F(RegistryMounterTest, TocDigestLabelIsVerified) {
  Labels labels = LabelsFor(digest_);
  labels["containerd.io/snapshot/stargz/toc.digest"] = Sha256::Of("other").ToString();
  absl::Status s = mounter_->Mount(digest_, labels, mnt_);
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(mounter_->Check(mnt_).ok());
  EXPECT_TRUE(Empty(mnt_));
}

TEST_F(RegistryMounterTest, NotSeekableOrUnreachableIsAnError) {
  absl::Status s = mounter_->Mount(gzip_digest_, LabelsFor(gzip_digest_), mnt_);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_TRUE(Empty(mnt_));
  EXPECT_FALSE(mounter_->Mount(digest_, {}, mnt_).ok()) << "no reference, nothing stored";
  registry_->Stop();
  s = mounter_->Mount(digest_, LabelsFor(digest_), mnt_);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(Empty(mnt_));
}

TEST_F(RegistryMounterTest, MountsFromStoredTocWithoutTheRegistry) {
  ASSERT_TRUE(mounter_->Mount(digest_, LabelsFor(digest_), mnt_).ok());
  ASSERT_EQ(ReadAll(mnt_ + "/etc/hosts"), "127.0.0.1 localhost\n");
  NewMounter();  // the old one unmounts and flushes its cache, as at a daemon stop
  ASSERT_TRUE(Empty(mnt_));
  registry_->Stop();
  ASSERT_TRUE(mounter_->Mount(digest_, LabelsFor(digest_), mnt_).ok());
  auto stats = mounter_->Stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_TRUE(stats[0].toc_from_cache);
  EXPECT_EQ(ReadAll(mnt_ + "/etc/hosts"), "127.0.0.1 localhost\n") << "cached chunk";
  EXPECT_EQ(ReadAll(mnt_ + "/bin/big"), std::nullopt) << "EIO: not cached, registry gone";
  EXPECT_TRUE(mounter_->Check(mnt_).ok()) << "a failed read does not kill the mount";
}

TEST_F(RegistryMounterTest, ResolvingTheTagDoesNotDelayTheTocRead) {
  // Labels as ctr-remote gives them for a tag: no manifest digest, so the prefetcher's image
  // key is the tag resolved. The registry stalls every manifest request; the layer's TOC is
  // read meanwhile (before this, only after the resolution gave up: a round trip or more of
  // every pull at 20 ms RTT).
  auto proxy = registry::testing::FaultProxy::Start(registry_->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  (*proxy)->set_stall(absl::Seconds(4));
  (*proxy)->Always(registry::testing::Fault::kStall, "/manifests/");
  ref_ = StrCat((*proxy)->host(), "/test/layer:x");
  NewMounter(/*prefetch=*/true);
  absl::Status mounted;
  std::thread mount([&] { mounted = mounter_->Mount(digest_, LabelsFor(digest_), mnt_); });
  const absl::Time deadline = absl::Now() + absl::Milliseconds(1500);  // mount deadline: 2 s
  while ((*proxy)->requests() < 2 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_GE((*proxy)->requests(), 2) << "the blob was not read while the manifest was stalled";
  mount.join();
  ASSERT_TRUE(mounted.ok()) << mounted;  // without an image key: no trace, still mounted
  EXPECT_EQ(ReadAll(mnt_ + "/etc/hosts"), "127.0.0.1 localhost\n");
  ASSERT_TRUE(mounter_->Unmount(mnt_).ok());
  mounter_.reset();  // before the proxy
}

TEST_F(RegistryMounterTest, AnUnresolvableTagHoldsUpNoMountForLong) {
  // The registry answers blobs but stalls every manifest request past the mount deadline
  // (2 s here; 10 s in lazysnapd): the tag cannot be resolved. Mount waits image_key_wait for
  // the key, not the deadline, and a failed resolution is not tried again by the next mount
  // (a restart restoring many layers with the registry down used to cost 10 s per layer).
  auto proxy = registry::testing::FaultProxy::Start(registry_->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  (*proxy)->set_stall(absl::Seconds(8));
  (*proxy)->Always(registry::testing::Fault::kStall, "/manifests/");
  ref_ = StrCat((*proxy)->host(), "/test/layer:x");
  image_key_wait_ = absl::Milliseconds(200);
  NewMounter(/*prefetch=*/true);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(mounter_->Mount(digest_, LabelsFor(digest_), mnt_).ok());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1500)) << "waited for the stalled resolve";
  EXPECT_EQ(ReadAll(mnt_ + "/etc/hosts"), "127.0.0.1 localhost\n");
  ASSERT_TRUE(mounter_->Unmount(mnt_).ok());
  absl::SleepFor(absl::Now() - start > absl::Seconds(3) ? absl::ZeroDuration()
                                                          : absl::Seconds(3) - (absl::Now() - start));
  // The resolution has given up by now (mount deadline 2 s). A remount (TOC from the local
  // cache, like a restore) asks the registry nothing: not the manifest again.
  const int requests = (*proxy)->requests();
  const absl::Time again = absl::Now();
  ASSERT_TRUE(mounter_->Mount(digest_, LabelsFor(digest_), mnt_).ok());
  EXPECT_LT(absl::Now() - again, absl::Milliseconds(1500));
  EXPECT_EQ((*proxy)->requests(), requests) << "the failed resolution was tried again at once";
  ASSERT_TRUE(mounter_->Unmount(mnt_).ok());
  mounter_.reset();  // before the proxy
}

TEST_F(RegistryMounterTest, ConnectionsForTheReplayAreOpenedWhileTheTocIsRead) {
  // With prefetching on (4 workers), a layer whose TOC must be read also sends 3 HEADs of the
  // blob at once, so that the replay's first requests find connections open (a new one costs
  // a round trip more). The registry stalls the first 4 blob requests for 4 s (then drops
  // them: they are retried): all 4 arrive during the stall, before any answer. Deadlines, not
  // fixed sleeps: a loaded 2-core machine may take long to send them, never 3.5 s.
  auto proxy = registry::testing::FaultProxy::Start(registry_->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  (*proxy)->set_stall(absl::Seconds(4));
  using registry::testing::Fault;
  (*proxy)->Inject({Fault::kStall, Fault::kStall, Fault::kStall, Fault::kStall}, "/blobs/");
  ref_ = StrCat((*proxy)->host(), "/test/layer:x");
  mount_deadline_ = absl::Seconds(20);  // the TOC read outlives the stall
  NewMounter(/*prefetch=*/true);
  Labels labels = TracedLabels();  // a manifest digest: no tag resolution
  absl::Status mounted;
  const absl::Time start = absl::Now();
  std::thread mount([&] { mounted = mounter_->Mount(digest_, labels, mnt_); });
  // No request is answered before start + 4 s: until then, every one seen is a first one.
  const absl::Time deadline = start + absl::Milliseconds(3500);
  while ((*proxy)->requests() < 4 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ((*proxy)->requests(), 4) << "the TOC read alone, or the HEADs after it";
  mount.join();
  ASSERT_TRUE(mounted.ok()) << mounted;
  EXPECT_EQ(ReadAll(mnt_ + "/etc/hosts"), "127.0.0.1 localhost\n");
  ASSERT_TRUE(mounter_->Unmount(mnt_).ok());
  mounter_->WaitForWarmUp();  // the HEADs' retries are done
  // Mounted again with the TOC stored: nothing to warm for.
  const int before = (*proxy)->requests();
  ASSERT_TRUE(mounter_->Mount(digest_, labels, mnt_).ok());
  ASSERT_TRUE(mounter_->Unmount(mnt_).ok());
  mounter_->WaitForWarmUp();
  EXPECT_EQ((*proxy)->requests(), before);
  mounter_.reset();  // before the proxy
}

TEST_F(RegistryMounterTest, AFuseMountThatFailsAfterThePrefetchStartLeavesNoRecordingBehind) {
  // The replay and the recording start before the FUSE mount. Here that mount fails (its
  // directory does not exist) and is retried, as containerd does: the trace stored holds the
  // retry's reads, under one entry for the layer.
  NewMounter(/*prefetch=*/true);
  Labels labels = TracedLabels();
  EXPECT_FALSE(mounter_->Mount(digest_, labels, mnt_ + "/missing").ok());
  ASSERT_TRUE(mounter_->Mount(digest_, labels, mnt_).ok());
  EXPECT_EQ(ReadAll(mnt_ + "/etc/hosts"), "127.0.0.1 localhost\n");
  ASSERT_TRUE(mounter_->Unmount(mnt_).ok());
  mounter_.reset();  // ends the recording: the trace is stored
  TraceStore store(StrCat(tmp_.path(), "/root"));
  auto trace = store.Get(TraceManifest());
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->layers.size(), 1u);
  EXPECT_EQ(trace->layers[0].digest.ToString(), digest_);
  EXPECT_FALSE(trace->layers[0].chunks.empty()) << "the failed mount's empty log was kept";
}

TEST_F(RegistryMounterTest, ATocTailSizeHintOfTheWholeBlobOrMoreReadsItInOneRequest) {
  // A hint >= the blob's size (a small layer; or a wrong hint): the suffix range covers the
  // whole blob, which docker-registry answers as 206 for bytes 0-(size-1). The TOC comes from
  // that one answer; the files read right.
  int round = 0;
  for (uint64_t hint : {uint64_t{blob_.size()}, uint64_t{blob_.size() + 1},
                        uint64_t{3 * blob_.size()}}) {
    cache_name_ = StrCat("whole", ++round);  // nothing stored: the TOC is read
    NewMounter();
    Labels labels = LabelsFor(digest_);
    labels[kLazysnapTocTailSizeAnnotation] = StrCat(hint);
    absl::Status s = mounter_->Mount(digest_, labels, mnt_);
    ASSERT_TRUE(s.ok()) << hint << ": " << s;
    auto all = mounter_->Stats();
    ASSERT_EQ(all.size(), 1u);
    EXPECT_FALSE(all[0].toc_from_cache);
    EXPECT_EQ(all[0].toc_requests, 1u) << hint;
    EXPECT_EQ(all[0].toc_bytes, blob_.size()) << hint;
    EXPECT_EQ(all[0].blob_size, blob_.size()) << hint;
    EXPECT_EQ(ReadAll(mnt_ + "/etc/hosts"), "127.0.0.1 localhost\n");
    EXPECT_EQ(ReadAll(mnt_ + "/bin/big"), big_);
    ASSERT_TRUE(mounter_->Unmount(mnt_).ok());
  }
}

TEST_F(RegistryMounterTest, WithATraceTheReplaysFirstBytesAreFetchedBesideTheToc) {
  // A first mount records the trace (with the chunks' blob ranges). Mounted again with a new
  // cache (the TOC read again), the traced ranges are fetched on the warm-up connections
  // while the TOC is read, and the replay takes them from memory; the data reads right.
  ASSERT_NO_FATAL_FAILURE(RecordTraceOfBig());
  Labels labels = TracedLabels();
  // The TOC's first GET is stalled for 2 s (then dropped: retried), so that the early ranges,
  // asked for after the warm-up HEADs, are in before the replay starts, however loaded the
  // machine (else the replay may read a range not yet started itself).
  auto proxy = registry::testing::FaultProxy::Start(registry_->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  (*proxy)->set_stall(absl::Seconds(2));
  (*proxy)->Inject({registry::testing::Fault::kStall}, "GET /v2/test/layer/blobs/");
  ref_ = StrCat((*proxy)->host(), "/test/layer:x");
  labels = TracedLabels();  // through the proxy
  cache_name_ = "cache2";
  mount_deadline_ = absl::Seconds(20);  // the TOC read outlives the stall
  NewMounter(/*prefetch=*/true);
  ASSERT_TRUE(mounter_->Mount(digest_, labels, mnt_).ok());
  EXPECT_EQ((*proxy)->faults_injected(), 1);
  mounter_->prefetch()->WaitIdle();
  auto stats = mounter_->Stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_FALSE(stats[0].toc_from_cache);
  EXPECT_GT(stats[0].early.ranges, 0u);
  EXPECT_GT(stats[0].early.served_bytes, 0u) << "the replay read nothing fetched early";
  EXPECT_GT(stats[0].cache.prefetch_chunks, 0u);
  const uint64_t requests = stats[0].cache.requests;
  EXPECT_EQ(ReadAll(mnt_ + "/bin/big"), big_);
  EXPECT_EQ(mounter_->Stats()[0].cache.requests, requests) << "the replay left chunks to fetch";
  ASSERT_TRUE(mounter_->Unmount(mnt_).ok());
  // A stored TOC: nothing fetched early.
  ASSERT_TRUE(mounter_->Mount(digest_, labels, mnt_).ok());
  EXPECT_EQ(mounter_->Stats()[0].early.ranges, 0u);
  ASSERT_TRUE(mounter_->Unmount(mnt_).ok());
  mounter_.reset();  // before the proxy
}

TEST_F(RegistryMounterTest, ARegistryFailingAfterThePlanFailsTheMountAndHoldsUpNoShutdown) {
  // The trace plans early ranges; then the registry answers every blob request with 500. The
  // mount fails (the TOC cannot be read) and the warm-up threads stop at once (no early
  // range is fetched with the read deadline's retries): the mounter's destructor, which
  // waits for them, returns promptly.
  ASSERT_NO_FATAL_FAILURE(RecordTraceOfBig());
  Labels labels = TracedLabels();
  auto proxy = registry::testing::FaultProxy::Start(registry_->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  (*proxy)->Always(registry::testing::Fault::kStatus500, "/blobs/");
  ref_ = StrCat((*proxy)->host(), "/test/layer:x");
  labels = TracedLabels();  // through the proxy
  cache_name_ = "cache2";
  read_deadline_ = absl::Seconds(60);
  NewMounter(/*prefetch=*/true);
  EXPECT_FALSE(mounter_->Mount(digest_, labels, mnt_).ok());
  const absl::Time start = absl::Now();
  mounter_.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "the warm-up went on fetching";
}

TEST_F(RegistryMounterTest, ATraceWithAnotherBlobSizeFetchesNothingEarlyAndDelaysNoRead) {
  // A trace whose blob_size is not the blob's (another blob of the layer's digest can't be;
  // a stale or edited trace can): every early answer would fail its Content-Range check.
  // No early bytes are used, and the files read right without waiting for them.
  ASSERT_NO_FATAL_FAILURE(RecordTraceOfBig());
  Labels labels = TracedLabels();
  TraceStore store(StrCat(tmp_.path(), "/root"));
  auto trace = store.Get(TraceManifest());
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->layers.size(), 1u);
  ASSERT_EQ(trace->layers[0].blob_size, blob_.size());
  trace->layers[0].blob_size += 4096;
  ASSERT_TRUE(store.Put(*trace).ok());
  cache_name_ = "cache2";
  read_deadline_ = absl::Seconds(30);  // a read waiting for a failing early range: 30 s, 60
  NewMounter(/*prefetch=*/true);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(mounter_->Mount(digest_, labels, mnt_).ok());
  EXPECT_EQ(ReadAll(mnt_ + "/bin/big"), big_);
  EXPECT_EQ(ReadAll(mnt_ + "/etc/hosts"), "127.0.0.1 localhost\n");
  EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << "reads waited for early bytes";
  auto stats = mounter_->Stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].early.served_bytes, 0u);
  ASSERT_TRUE(mounter_->Unmount(mnt_).ok());
  const absl::Time stop = absl::Now();
  mounter_.reset();
  EXPECT_LT(absl::Now() - stop, absl::Seconds(5)) << "the warm-up went on fetching";
}

TEST_F(RegistryMounterTest, UnderAPrefetchBandwidthLimitNothingIsFetchedEarly) {
  // Early fetches are not paced by the prefetch token bucket: with a limit set, none.
  ASSERT_NO_FATAL_FAILURE(RecordTraceOfBig());
  Labels labels = TracedLabels();
  cache_name_ = "cache2";
  bandwidth_limit_ = 100 << 20;
  NewMounter(/*prefetch=*/true);
  ASSERT_TRUE(mounter_->Mount(digest_, labels, mnt_).ok());
  EXPECT_EQ(mounter_->Stats()[0].early.ranges, 0u);
  EXPECT_EQ(ReadAll(mnt_ + "/bin/big"), big_);
  ASSERT_TRUE(mounter_->Unmount(mnt_).ok());
}

TEST_F(RegistryMounterTest, TheTocTailSizeLabelReadsFooterAndTocInOneRequest) {
  // `lazysnap image convert`'s toc-tail-size annotation, passed on by containerd as a label:
  // the first read is sized from it, so footer and TOC come in one round trip where the
  // 64 KiB first guess takes two for a larger TOC (python's: 340 KB). Only a hint: a wrong one
  // mounts with the second request, and the TOC is verified all the same.
  lazysnap::testing::EstargzBuilder b;
  b.AddFile("etc/hosts", "127.0.0.1 localhost\n");
  for (int i = 0; i < 6000; i++) {  // incompressible names and digests: a TOC of ~210 KB gzip'd
    b.AddFile(StrCat("f/", absl::BytesToHexString(cache_testing::PseudoRandom(24, i))), "x");
  }
  const std::string blob = b.Finish();
  auto footer = ParseEstargzFooter(blob.substr(blob.size() - 64));
  ASSERT_TRUE(footer.ok()) << footer.status();
  const uint64_t exact = blob.size() - footer->toc_offset;
  ASSERT_GT(exact / 2, RegistryMounterOptions{}.tail_bytes) << "the TOC must exceed 2 first guesses";
  Sha256 toc_digest;
  {
    MemoryBlobSource mem(blob);
    auto layer = OpenLayer(mem, OpenOptions{});
    ASSERT_TRUE(layer.ok()) << layer.status();
    toc_digest = (*layer)->toc_digest;
    auto transport = registry::CurlTransport::Create();
    ASSERT_TRUE(transport.ok());
    registry::RegistryClient client(transport->get(), nullptr, {});
    auto r = registry::Reference::Parse(ref_);
    ASSERT_TRUE(r.ok());
    auto desc = client.PushBlob(*r, blob);
    ASSERT_TRUE(desc.ok()) << desc.status();
    digest_ = desc->digest.ToString();
  }
  int round = 0;
  auto mount = [&](std::optional<std::string> hint, const std::string& toc) {
    cache_name_ = StrCat("cache", ++round);  // nothing stored: the TOC is read
    NewMounter();
    Labels labels = LabelsFor(digest_);
    labels["containerd.io/snapshot/stargz/toc.digest"] = toc;
    if (hint) labels[kLazysnapTocTailSizeAnnotation] = *hint;
    absl::Status s = mounter_->Mount(digest_, labels, mnt_);
    RemoteLayerStats st;
    if (s.ok()) {
      auto all = mounter_->Stats();
      EXPECT_EQ(all.size(), 1u);
      st = all.at(0);
      EXPECT_FALSE(st.toc_from_cache);
      EXPECT_EQ(ReadAll(mnt_ + "/etc/hosts"), "127.0.0.1 localhost\n");
      EXPECT_TRUE(mounter_->Unmount(mnt_).ok());
    }
    return std::make_pair(s, st);
  };
  const std::string good = toc_digest.ToString();
  auto [s0, none] = mount(std::nullopt, good);
  ASSERT_TRUE(s0.ok()) << s0;
  EXPECT_EQ(none.toc_requests, 2u);
  EXPECT_EQ(none.toc_bytes, exact);
  auto [s1, hinted] = mount(StrCat(exact), good);
  ASSERT_TRUE(s1.ok()) << s1;
  EXPECT_EQ(hinted.toc_requests, 1u);
  EXPECT_EQ(hinted.toc_bytes, exact) << "read more (or less) than footer and TOC";
  auto [s2, small] = mount(StrCat(exact / 2), good);  // wrong: the rest is read after it
  ASSERT_TRUE(s2.ok()) << s2;
  EXPECT_EQ(small.toc_requests, 2u);
  EXPECT_EQ(small.toc_bytes, exact);
  auto [s3, large] = mount(StrCat(exact + 1000), good);  // wrong the other way: 1000 bytes more
  ASSERT_TRUE(s3.ok()) << s3;
  EXPECT_EQ(large.toc_requests, 1u);
  EXPECT_EQ(large.toc_bytes, exact + 1000);
  auto [s4, huge] = mount(StrCat(uint64_t{1} << 40), good);  // past max_tail_hint_bytes: ignored
  ASSERT_TRUE(s4.ok()) << s4;
  EXPECT_EQ(huge.toc_requests, 2u);
  auto [s5, garbage] = mount("lots", good);
  ASSERT_TRUE(s5.ok()) << s5;
  EXPECT_EQ(garbage.toc_requests, 2u);
  auto [s6, bad] = mount(StrCat(exact), Sha256::Of("other").ToString());
  EXPECT_TRUE(absl::IsDataLoss(s6)) << s6 << ": the hinted read's TOC was not verified";
  EXPECT_TRUE(Empty(mnt_));
}

}  // namespace
}  // namespace lazysnap

// FUSE passthrough (fusefs/passthrough.h): the reply patching, and on a real mount: a large
// fully cached file is opened with passthrough and reads the right bytes (read, mmap, through
// overlayfs), an inode open without passthrough keeps working when its backing file becomes
// ready, passthrough off by config changes nothing, and a refused backing file falls back.
#include "fusefs/passthrough.h"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/mount.h>

#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "absl/synchronization/notification.h"

#include "base/digest.h"
#include "cache/testing.h"
#include "fusefs/layer_fs.h"
#include "fusefs/passthrough_abi.h"
#include "fusefs/testing.h"

namespace lazysnap {
namespace {

using cache_testing::PseudoRandom;
using cache_testing::TempDir;
using namespace fusefs_testing;

// ---- the wire ----------------------------------------------------------------------------------

std::string InitRequest(uint64_t unique, uint32_t flags, uint32_t flags2) {
  fuse_abi::InHeader h = {};
  h.opcode = fuse_abi::kOpInit;
  h.unique = unique;
  fuse_abi::InitIn in = {};
  in.major = 7;
  in.minor = 41;
  in.flags = flags;
  in.flags2 = flags2;
  h.len = sizeof(h) + sizeof(in);
  std::string msg(reinterpret_cast<const char*>(&h), sizeof(h));
  msg.append(reinterpret_cast<const char*>(&in), sizeof(in));
  return msg;
}

template <typename Out>
bool Patch(PassthroughWire& w, uint64_t unique, Out* out, int32_t backing_id, int32_t error = 0) {
  fuse_abi::OutHeader h = {};
  h.unique = unique;
  h.error = error;
  h.len = sizeof(h) + sizeof(Out);
  iovec iov[2] = {{&h, sizeof(h)}, {out, sizeof(Out)}};
  return w.PatchReply(iov, 2, backing_id);
}

TEST(PassthroughTest, StackedFilesystemsAreRecognisedByType) {
  EXPECT_TRUE(IsStackedFsType(0x794c7630));   // overlayfs
  EXPECT_TRUE(IsStackedFsType(0x65735546));   // FUSE
  EXPECT_TRUE(IsStackedFsType(0xf15f));       // ecryptfs
  EXPECT_FALSE(IsStackedFsType(0xEF53));      // ext4
  EXPECT_FALSE(IsStackedFsType(0x58465342));  // xfs
  EXPECT_FALSE(IsStackedFsType(0x01021994));  // tmpfs
}

TEST(PassthroughWireTest, AcceptsPassthroughInTheInitReplyOnlyWhenOfferedAndAccepted) {
  PassthroughWire w;
  std::string req = InitRequest(7, fuse_abi::kInitExt, fuse_abi::kPassthroughFlags2);
  w.NoteRequest(req.data(), req.size());
  ASSERT_TRUE(w.offered());
  fuse_abi::InitOut out = {};
  out.flags = 1;  // whatever libfuse set
  EXPECT_FALSE(Patch(w, 7, &out, 0)) << "not accepted yet";
  w.Accept();
  EXPECT_FALSE(Patch(w, 8, &out, 0)) << "another request's reply";
  EXPECT_FALSE(Patch(w, 7, &out, 0, -EIO)) << "an error reply";
  ASSERT_TRUE(Patch(w, 7, &out, 0));
  EXPECT_EQ(out.flags, 1u | fuse_abi::kInitExt);
  EXPECT_EQ(out.flags2, fuse_abi::kPassthroughFlags2);
  EXPECT_EQ(out.max_stack_depth, 1u);
}

TEST(PassthroughWireTest, AnInitWithoutPassthroughIsNotOffered) {
  PassthroughWire w;
  // flags2 has the bit but FUSE_INIT_EXT is not set: flags2 means nothing.
  std::string req = InitRequest(1, 0, fuse_abi::kPassthroughFlags2);
  w.NoteRequest(req.data(), req.size());
  EXPECT_FALSE(w.offered());
  req = InitRequest(1, fuse_abi::kInitExt, 0);
  w.NoteRequest(req.data(), req.size());
  EXPECT_FALSE(w.offered());
  w.Accept();
  fuse_abi::InitOut out = {};
  EXPECT_FALSE(Patch(w, 1, &out, 0));
  EXPECT_EQ(out.flags2, 0u);
}

TEST(PassthroughWireTest, MarksAnOpenReplyWithTheBackingIdAndDropsKeepCache) {
  PassthroughWire w;
  fuse_abi::OpenOut out = {};
  out.fh = 2;
  out.open_flags = 1u << 1;  // FOPEN_KEEP_CACHE
  EXPECT_FALSE(Patch(w, 3, &out, 0)) << "no backing id: untouched";
  EXPECT_EQ(out.open_flags, 1u << 1);
  ASSERT_TRUE(Patch(w, 3, &out, 5));
  EXPECT_EQ(out.open_flags, fuse_abi::kOpenPassthrough);
  EXPECT_EQ(out.backing_id, 5);
  EXPECT_EQ(out.fh, 2u);
  EXPECT_EQ(ScopedOpenBackingId::Current(), 0);
  {
    ScopedOpenBackingId mark(9);
    EXPECT_EQ(ScopedOpenBackingId::Current(), 9);
  }
  EXPECT_EQ(ScopedOpenBackingId::Current(), 0);
}

// ---- real mounts -------------------------------------------------------------------------------

constexpr size_t kBig = 3 << 20;

absl::StatusOr<std::string> ReadAll(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", path));
  std::string out;
  char buf[1 << 16];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  int err = errno;
  ::close(fd);
  if (n < 0) return ErrnoToStatus(err, StrCat("read ", path));
  return out;
}

std::string MmapAll(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return StrCat("open: ", strerror(errno));
  struct stat st;
  ::fstat(fd, &st);
  void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);  // the mapping keeps the file open
  if (p == MAP_FAILED) return StrCat("mmap: ", strerror(errno));
  std::string out(static_cast<const char*>(p), static_cast<size_t>(st.st_size));
  ::munmap(p, static_cast<size_t>(st.st_size));
  return out;
}

// Drops the page cache of `paths` only (posix_fadvise): the FUSE file (or an overlay over
// it) and the per-file copy, so the next read must come from the backing file or the daemon.
void DropCaches(std::initializer_list<std::string> paths) {
  for (const std::string& p : paths) {
    int fd = ::open(p.c_str(), O_RDONLY);
    if (fd < 0) continue;  // e.g. no copy (yet)
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

// Waits up to 10 s for `pred`.
template <typename Pred>
bool WaitFor(Pred pred) {
  for (int i = 0; i < 1000; i++) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

class PassthroughMountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = CannotMount(); !why.empty()) GTEST_SKIP() << why;
    big_ = PseudoRandom(kBig, 42);
    small_ = PseudoRandom(5000, 43);
    auto blob = BuildLayer({Dir("d"), File("d/big", big_), File("d/small", small_),
                            Link("d/link", "d/big", '1')},
                           LayerFormat::kEstargz);
    ASSERT_TRUE(blob.ok()) << blob.status();
    blob_ = std::move(*blob);
  }
  void TearDown() override {
    for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
  }
  std::unique_ptr<MountedLayer> Mount(const std::string& dir, uint64_t min_bytes = 1 << 20,
                                      const LayerCacheOptions& cache_options = {}) {
    LayerFsOptions o;
    o.passthrough_min_bytes = min_bytes;
    auto m = MountedLayer::Mount(std::make_shared<MemoryBlobSource>(blob_), dir, cache_options, o);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? std::move(*m) : nullptr;
  }
  // Reads d/big once through `m` (all chunks cached) and waits for its copy.
  void CacheBig(MountedLayer& m) {
    ASSERT_EQ(ReadAll(m.mnt + "/d/big").value_or(""), big_);
    if (!m.fs->passthrough_active()) GTEST_SKIP() << "the kernel has no FUSE passthrough";
    ASSERT_TRUE(WaitFor([&] { return m.fs->stats().passthrough_copies == 1; }));
  }
  // Reads d/big until an open of it used passthrough (the RELEASE of earlier normal opens
  // reaches the daemon after close() returns).
  void ReadBigUntilPassthrough(MountedLayer& m, const std::string& path) {
    uint64_t before = m.fs->stats().passthrough_opens;
    ASSERT_TRUE(WaitFor([&] {
      EXPECT_EQ(ReadAll(path).value_or("error"), big_);
      return m.fs->stats().passthrough_opens > before;
    }));
  }

  // The per-file copy of d/big.
  std::string CopyOfBig(MountedLayer& m) {
    auto ino = m.fs->view().Lookup(1, "d");
    auto big = m.fs->view().Lookup(**ino, "big");
    return m.cache->FileCopyPath(m.fs->view().DataEntry(**big));
  }

  std::string big_, small_, blob_;
  std::vector<std::string> mounts_;
};

TEST_F(PassthroughMountTest, LargeCachedFileIsReadThroughItsBackingFile) {
  TempDir tmp;
  auto m = Mount(tmp.path());
  ASSERT_NE(m, nullptr);
  ASSERT_NO_FATAL_FAILURE(CacheBig(*m));
  ReadBigUntilPassthrough(*m, m->mnt + "/d/big");
  DropCaches({m->mnt + "/d/big", CopyOfBig(*m)});
  uint64_t reads = m->fs->stats().reads, opens = m->fs->stats().passthrough_opens;
  EXPECT_EQ(Sha256::Of(ReadAll(m->mnt + "/d/big").value_or("")), Sha256::Of(big_));
  EXPECT_EQ(Sha256::Of(MmapAll(m->mnt + "/d/big")), Sha256::Of(big_));
  EXPECT_EQ(m->fs->stats().passthrough_opens, opens + 2);
  EXPECT_EQ(m->fs->stats().reads, reads) << "no read reached the daemon";
  // A small file is never passthrough.
  EXPECT_EQ(ReadAll(m->mnt + "/d/small").value_or(""), small_);
  EXPECT_EQ(m->fs->stats().passthrough_opens, opens + 2);
  reads = m->fs->stats().reads;

  // overlayfs over the FUSE mount (containerd's case): depth 2, still passthrough.
  std::string up = tmp.path() + "/up", work = tmp.path() + "/work", ovl = tmp.path() + "/ovl";
  for (const std::string& d : {up, work, ovl}) ::mkdir(d.c_str(), 0755);
  std::string opts = StrCat("lowerdir=", m->mnt, ",upperdir=", up, ",workdir=", work);
  ASSERT_EQ(::mount("overlay", ovl.c_str(), "overlay", 0, opts.c_str()), 0) << strerror(errno);
  mounts_.push_back(ovl);
  DropCaches({ovl + "/d/big", CopyOfBig(*m)});
  EXPECT_EQ(Sha256::Of(ReadAll(ovl + "/d/big").value_or("")), Sha256::Of(big_));
  EXPECT_EQ(Sha256::Of(MmapAll(ovl + "/d/big")), Sha256::Of(big_));
  EXPECT_GE(m->fs->stats().passthrough_opens, opens + 4);
  EXPECT_EQ(m->fs->stats().reads, reads);
  ::umount2(ovl.c_str(), MNT_DETACH);
  mounts_.clear();
}

TEST_F(PassthroughMountTest, AFileOpenWithoutPassthroughKeepsWorkingWhenItsCopyIsReady) {
  TempDir tmp;
  auto m = Mount(tmp.path());
  ASSERT_NE(m, nullptr);
  std::string path = m->mnt + "/d/big";
  int fd1 = ::open(path.c_str(), O_RDONLY);  // cold: a normal open
  ASSERT_GE(fd1, 0);
  std::string got(kBig, '\0');
  ASSERT_EQ(::pread(fd1, got.data(), kBig, 0), static_cast<ssize_t>(kBig));
  ASSERT_EQ(got, big_);
  if (!m->fs->passthrough_active()) GTEST_SKIP() << "the kernel has no FUSE passthrough";
  // Another open and close of it (the file complete) makes the copy while fd1 stays open.
  ASSERT_EQ(ReadAll(path).value_or(""), big_);
  ASSERT_TRUE(WaitFor([&] { return m->fs->stats().passthrough_copies == 1; }));
  // The copy is ready but the inode is in cached mode: this open must not be passthrough
  // (the kernel would fail it) and works.
  int fd2 = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd2, 0) << strerror(errno);
  std::string got2(kBig, '\0');
  EXPECT_EQ(::pread(fd2, got2.data(), kBig, 0), static_cast<ssize_t>(kBig));
  EXPECT_EQ(got2, big_);
  EXPECT_EQ(m->fs->stats().passthrough_opens, 0u);
  ::close(fd1);
  ::close(fd2);
  ReadBigUntilPassthrough(*m, path);
  // And while a passthrough open is held, later opens are passthrough too.
  int fd3 = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd3, 0);
  uint64_t opens = m->fs->stats().passthrough_opens;
  EXPECT_EQ(ReadAll(path).value_or(""), big_);
  EXPECT_EQ(m->fs->stats().passthrough_opens, opens + 1);
  ::close(fd3);
}

TEST_F(PassthroughMountTest, WhileAnAccessTraceIsRecordedOpensAreNormalAndReadsSeen) {
  TempDir tmp;
  auto m = Mount(tmp.path());
  ASSERT_NE(m, nullptr);
  ASSERT_NO_FATAL_FAILURE(CacheBig(*m));
  const uint32_t chunks = static_cast<uint32_t>(m->layer->index.chunks().size());
  auto log = std::make_shared<AccessLog>(chunks, chunks, absl::InfiniteDuration());
  m->cache->SetAccessLog(log);
  for (int i = 0; i < 3; i++) {
    DropCaches({m->mnt + "/d/big"});
    EXPECT_EQ(ReadAll(m->mnt + "/d/big").value_or(""), big_);
  }
  EXPECT_EQ(m->fs->stats().passthrough_opens, 0u);
  EXPECT_GE(log->size(), kBig / 65536) << "every chunk of d/big recorded";
  log->Stop();  // a stopped recording no longer holds passthrough back
  ReadBigUntilPassthrough(*m, m->mnt + "/d/big");
}

TEST_F(PassthroughMountTest, OffByConfigNothingChanges) {
  TempDir tmp;
  auto m = Mount(tmp.path(), /*min_bytes=*/0);
  ASSERT_NE(m, nullptr);
  for (int i = 0; i < 3; i++) EXPECT_EQ(ReadAll(m->mnt + "/d/big").value_or(""), big_);
  EXPECT_FALSE(m->fs->passthrough_active());
  EXPECT_EQ(m->fs->stats().passthrough_opens, 0u);
  EXPECT_EQ(m->fs->stats().passthrough_copies, 0u);
  struct stat st;
  EXPECT_NE(::stat((m->cache->dir() + "/files").c_str(), &st), 0) << "no copy made";
}

TEST_F(PassthroughMountTest, ACacheOnAStackedFilesystemDoesNotTakePassthrough) {
  TempDir tmp;
  // The cache on overlayfs: every backing file would be refused (ELOOP), so passthrough is
  // not accepted at INIT and the mount keeps its full stacking depth.
  std::string lower = tmp.path() + "/lower", up = tmp.path() + "/up",
              work = tmp.path() + "/work", ovl = tmp.path() + "/ovl";
  for (const std::string& d : {lower, up, work, ovl}) ::mkdir(d.c_str(), 0755);
  std::string opts = StrCat("lowerdir=", lower, ",upperdir=", up, ",workdir=", work);
  ASSERT_EQ(::mount("overlay", ovl.c_str(), "overlay", 0, opts.c_str()), 0) << strerror(errno);
  mounts_.push_back(ovl);
  {
    auto m = Mount(ovl);
    ASSERT_NE(m, nullptr);
    for (int i = 0; i < 3; i++) {
      DropCaches({m->mnt + "/d/big"});
      EXPECT_EQ(ReadAll(m->mnt + "/d/big").value_or(""), big_);
      EXPECT_EQ(MmapAll(m->mnt + "/d/big"), big_);
    }
    EXPECT_FALSE(m->fs->passthrough_active());
    EXPECT_EQ(m->fs->stats().passthrough_opens, 0u);
    EXPECT_EQ(m->fs->stats().passthrough_copies, 0u);
    EXPECT_EQ(m->fs->stats().read_errors, 0u);
  }
}

// The trade-off of docs/fusefs.md: with passthrough the mount is one level deep, so the
// container's overlay over it is at the kernel's limit; with passthrough off an overlay nests
// on that overlay (docker/podman/buildkit inside a container).
TEST_F(PassthroughMountTest, WithPassthroughOffAnOverlayNestsOnTheContainersOverlay) {
  for (uint64_t min_bytes : {uint64_t{0}, uint64_t{1} << 20}) {
    TempDir tmp;
    auto m = Mount(tmp.path(), min_bytes);
    ASSERT_NE(m, nullptr);
    ASSERT_EQ(ReadAll(m->mnt + "/d/big").value_or(""), big_);
    std::string lower = m->mnt;
    std::string top;
    int failed = 0;
    for (int level = 1; level <= 2; level++) {
      std::string base = StrCat(tmp.path(), "/", level);
      std::string up = base + "up", work = base + "work", ovl = base + "ovl";
      for (const std::string& d : {up, work, ovl}) ::mkdir(d.c_str(), 0755);
      std::string opts = StrCat("lowerdir=", lower, ",upperdir=", up, ",workdir=", work);
      if (::mount("overlay", ovl.c_str(), "overlay", 0, opts.c_str()) != 0) {
        EXPECT_EQ(errno, EINVAL) << "level " << level;
        failed = level;
        break;
      }
      mounts_.push_back(ovl);
      lower = top = ovl;
    }
    if (min_bytes == 0) {
      EXPECT_EQ(failed, 0) << "an overlay on an overlay on the mount";
      EXPECT_EQ(ReadAll(top + "/d/big").value_or(""), big_);
    } else if (m->fs->passthrough_active()) {
      EXPECT_EQ(failed, 2) << "the documented cost of passthrough";
    }
    for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) {
      ::umount2(it->c_str(), MNT_DETACH);
    }
    mounts_.clear();
  }
}

// Hard links are two FUSE inodes over one data entry: one copy, each inode its own backing
// id, both read right through passthrough.
TEST_F(PassthroughMountTest, HardLinksShareOneCopyAndBothReadThroughIt) {
  TempDir tmp;
  auto m = Mount(tmp.path());
  ASSERT_NE(m, nullptr);
  ASSERT_NO_FATAL_FAILURE(CacheBig(*m));
  ReadBigUntilPassthrough(*m, m->mnt + "/d/big");
  ReadBigUntilPassthrough(*m, m->mnt + "/d/link");
  DropCaches({m->mnt + "/d/big", m->mnt + "/d/link", CopyOfBig(*m)});
  uint64_t reads = m->fs->stats().reads;
  EXPECT_EQ(Sha256::Of(ReadAll(m->mnt + "/d/link").value_or("")), Sha256::Of(big_));
  EXPECT_EQ(Sha256::Of(MmapAll(m->mnt + "/d/big")), Sha256::Of(big_));
  EXPECT_EQ(m->fs->stats().reads, reads) << "no read reached the daemon";
  EXPECT_EQ(m->fs->stats().passthrough_copies, 1u);
  struct stat a, b;
  ASSERT_EQ(::stat((m->mnt + "/d/big").c_str(), &a), 0);
  ASSERT_EQ(::stat((m->mnt + "/d/link").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
}

TEST_F(PassthroughMountTest, ACopyLeftByAnEarlierMountIsUsedAtOnce) {
  TempDir tmp;
  {
    auto m = Mount(tmp.path());
    ASSERT_NE(m, nullptr);
    ASSERT_NO_FATAL_FAILURE(CacheBig(*m));
  }
  auto m = Mount(tmp.path());
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(ReadAll(m->mnt + "/d/big").value_or(""), big_);
  EXPECT_EQ(m->fs->stats().passthrough_opens, 1u) << "the first open";
  EXPECT_EQ(m->fs->stats().reads, 0u);
  EXPECT_EQ(m->fs->stats().passthrough_copies, 0u) << "no second copy";
}

TEST_F(PassthroughMountTest, AFailedCopyIsNotRetriedAtEveryOpen) {
  TempDir tmp;
  std::atomic<int> asked{0};
  LayerCacheOptions o;
  o.copy_allowed = [&asked](uint64_t) {  // the cache is at its size limit
    asked++;
    return false;
  };
  auto m = Mount(tmp.path(), 1 << 20, o);
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(ReadAll(m->mnt + "/d/big").value_or(""), big_);
  if (!m->fs->passthrough_active()) GTEST_SKIP() << "the kernel has no FUSE passthrough";
  ASSERT_TRUE(WaitFor([&] { return m->fs->stats().passthrough_copy_failures == 1; }));
  for (int i = 0; i < 5; i++) EXPECT_EQ(ReadAll(m->mnt + "/d/big").value_or(""), big_);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(asked.load(), 1);
  EXPECT_EQ(m->fs->stats().passthrough_copy_failures, 1u);
  EXPECT_EQ(m->fs->stats().passthrough_opens, 0u);
}

TEST_F(PassthroughMountTest, UnmountStopsACopyInProgressAndLeavesNoFile) {
  TempDir tmp;
  absl::Notification started, release;
  LayerCacheOptions o;
  o.copy_piece_bytes = 64 << 10;
  o.copy_allowed = [&](uint64_t) {  // holds the copy at its start until the unmount began
    started.Notify();
    release.WaitForNotification();
    return true;
  };
  auto m = Mount(tmp.path(), 1 << 20, o);
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(ReadAll(m->mnt + "/d/big").value_or(""), big_);
  if (!m->fs->passthrough_active()) {
    release.Notify();
    GTEST_SKIP() << "the kernel has no FUSE passthrough";
  }
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  std::string copy = CopyOfBig(*m);
  std::thread unmount([&] { EXPECT_TRUE(m->fs->Unmount().ok()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // Stop has set the flag
  release.Notify();
  unmount.join();
  EXPECT_EQ(m->fs->stats().passthrough_copies, 0u);
  EXPECT_EQ(m->fs->stats().passthrough_copy_failures, 0u) << "a stop is no failure";
  struct stat st;
  EXPECT_NE(::stat(copy.c_str(), &st), 0);
  int entries = 0;
  DIR* d = ::opendir((m->cache->dir() + "/files").c_str());
  ASSERT_NE(d, nullptr);
  while (dirent* e = ::readdir(d)) entries += std::string_view(e->d_name).size() > 2;
  ::closedir(d);
  EXPECT_EQ(entries, 0) << "no temp file left";
}

}  // namespace
}  // namespace lazysnap

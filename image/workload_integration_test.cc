#include "image/workload.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>

#include "image/rootfs.h"

namespace lazysnap {
namespace {

namespace fs = std::filesystem;

// A tiny root: dash, cat and sleep with the C library, and three data files.
class WorkloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mount namespaces, chroot, fanotify)";
    const std::pair<const char*, const char*> files[] = {
        {"/usr/bin/dash", "bin/sh"},
        {"/usr/bin/cat", "bin/cat"},
        {"/usr/bin/sleep", "bin/sleep"},
        {"/lib/x86_64-linux-gnu/libc.so.6", "lib/x86_64-linux-gnu/libc.so.6"},
        {"/lib64/ld-linux-x86-64.so.2", "lib64/ld-linux-x86-64.so.2"}};
    for (const auto& [from, _] : files) {
      if (!fs::exists(from)) GTEST_SKIP() << from << " is missing";
    }
    root_ = fs::path(::testing::TempDir()) / ("workload-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    for (const auto& [from, to] : files) {
      fs::create_directories((root_ / to).parent_path());
      fs::copy_file(fs::canonical(from), root_ / to);
      fs::permissions(root_ / to, fs::perms::owner_all);
    }
    fs::create_directories(root_ / "data");
    for (const char* f : {"a", "b", "c"}) std::ofstream(root_ / "data" / f) << f << "\n";
    fs::create_symlink("b", root_ / "data/link-to-b");
    ASSERT_TRUE(EnterPrivateMountNamespace().ok());
  }
  void TearDown() override {
    if (!root_.empty()) EXPECT_TRUE(RemoveTree(root_.string()).ok());
  }

  WorkloadResult Run(WorkloadOptions o) {
    o.output_fd = -1;
    auto r = RunRecordedWorkload(root_.string(), o);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : WorkloadResult();
  }

  fs::path root_;
};

size_t IndexOf(const std::vector<std::string>& v, const std::string& s) {
  return static_cast<size_t>(std::find(v.begin(), v.end(), s) - v.begin());
}

TEST_F(WorkloadTest, RecordsFilesInFirstOpenOrder) {
  WorkloadOptions o;
  o.argv = {"sh", "-c", "cat /data/link-to-b; cd /data && cat a b; exit 3"};
  o.env = {"PATH=/bin"};
  WorkloadResult r = Run(o);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_FALSE(r.timed_out);
  const auto& f = r.files;
  ASSERT_LT(IndexOf(f, "bin/sh"), f.size());
  ASSERT_LT(IndexOf(f, "bin/cat"), f.size());
  ASSERT_LT(IndexOf(f, "data/b"), f.size());  // through the symlink: the file itself
  ASSERT_LT(IndexOf(f, "data/a"), f.size());
  EXPECT_LT(IndexOf(f, "bin/sh"), IndexOf(f, "bin/cat"));
  EXPECT_LT(IndexOf(f, "data/b"), IndexOf(f, "data/a"));
  EXPECT_LT(IndexOf(f, "lib/x86_64-linux-gnu/libc.so.6"), f.size());
  EXPECT_EQ(IndexOf(f, "data/c"), f.size());
  EXPECT_EQ(std::count(f.begin(), f.end(), "bin/cat"), 1);
  for (const auto& p : f) EXPECT_NE(p.rfind("proc/", 0), 0u) << p;
  // Mounts made for the run are gone.
  EXPECT_FALSE(fs::exists(root_ / "proc/self"));
}

TEST_F(WorkloadTest, StopsAtWaitForAndAtTimeout) {
  WorkloadOptions o;
  o.argv = {"/bin/sh", "-c", "cat /data/a; echo READY; sleep 30; cat /data/c"};
  o.env = {};
  o.wait_for = "READY";
  o.timeout = absl::Seconds(20);
  absl::Time start = absl::Now();
  WorkloadResult r = Run(o);
  EXPECT_TRUE(r.saw_wait_for);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_LT(IndexOf(r.files, "data/a"), r.files.size());
  EXPECT_EQ(IndexOf(r.files, "data/c"), r.files.size());

  o.wait_for.clear();
  o.argv = {"/bin/sh", "-c", "cat /data/b; sleep 30"};
  o.timeout = absl::Milliseconds(500);
  r = Run(o);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_LT(IndexOf(r.files, "data/b"), r.files.size());  // recorded before the kill
}

TEST_F(WorkloadTest, MissingCommandIsAnExitCodeNotAnError) {
  WorkloadOptions o;
  o.argv = {"no-such-command"};
  o.env = {"PATH=/bin"};
  EXPECT_EQ(Run(o).exit_code, 127);
}

TEST_F(WorkloadTest, RunsAsTheImageUser) {
  for (const char* f : {"bin/sh", "bin/cat", "bin/sleep", "lib/x86_64-linux-gnu/libc.so.6",
                        "lib64/ld-linux-x86-64.so.2"}) {
    fs::permissions(root_ / f, fs::perms::owner_all | fs::perms::group_read |
                                   fs::perms::group_exec | fs::perms::others_read |
                                   fs::perms::others_exec);
  }
  fs::create_directories(root_ / "etc");
  std::ofstream(root_ / "etc/passwd") << "root:x:0:0:root:/root:/bin/sh\n"
                                      << "app:x:1234:2345:App:/home/app:/bin/sh\n";
  std::ofstream(root_ / "etc/group") << "root:x:0:\napp:x:2345:\nextra:x:3456:app\n";
  std::ofstream(root_ / "data/secret") << "root only\n";
  fs::permissions(root_ / "data/secret", fs::perms::owner_read | fs::perms::owner_write);

  char out_path[] = "/tmp/lazysnap-workload-out-XXXXXX";
  int out = ::mkstemp(out_path);
  ASSERT_GE(out, 0);
  WorkloadOptions o;
  o.argv = {"/bin/sh", "-c",
            "cat /proc/self/status; echo HOME=$HOME; cat /data/secret || echo DENIED; cat /data/a"};
  o.env = {"PATH=/bin"};
  o.user = "app";
  o.output_fd = out;
  auto r = RunRecordedWorkload(root_.string(), o);
  ::close(out);
  ASSERT_TRUE(r.ok()) << r.status();
  std::ifstream in(out_path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ::unlink(out_path);
  EXPECT_NE(text.find("Uid:\t1234\t1234\t1234\t1234"), std::string::npos) << text;
  EXPECT_NE(text.find("Gid:\t2345\t2345\t2345\t2345"), std::string::npos) << text;
  EXPECT_NE(text.find("Groups:\t3456"), std::string::npos) << text;
  EXPECT_NE(text.find("HOME=/home/app"), std::string::npos) << text;
  EXPECT_NE(text.find("DENIED"), std::string::npos) << text;
  EXPECT_EQ(IndexOf(r->files, "data/secret"), r->files.size());  // not opened: not recorded
  EXPECT_LT(IndexOf(r->files, "data/a"), r->files.size());

  o.user = "ghost";  // not in /etc/passwd: an error before anything runs
  o.output_fd = -1;
  EXPECT_TRUE(absl::IsNotFound(RunRecordedWorkload(root_.string(), o).status()));
}

}  // namespace
}  // namespace lazysnap

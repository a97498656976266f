#include "image/optimize.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "format/oci_layout.h"
#include "format/tar.h"

namespace lazysnap {
namespace {

namespace fs = std::filesystem;

std::string ReadHostFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void AddFile(std::string* tar, const std::string& name, const std::string& data,
             uint32_t mode = 0644) {
  TarEntry e;
  e.typeflag = '0';
  e.name = name;
  e.mode = mode;
  e.size = data.size();
  *tar += EncodeTarHeader(e) + data + std::string(TarPaddingFor(data.size()), '\0');
}

// A two-layer image: dash and cat with the C library and data files, then a layer that
// deletes one data file and adds another. Its config runs `sh -c 'cat ...'` in /data.
class RecordImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mount namespaces, chroot, fanotify)";
    const std::pair<const char*, const char*> files[] = {
        {"/usr/bin/dash", "bin/sh"},
        {"/usr/bin/cat", "bin/cat"},
        {"/lib/x86_64-linux-gnu/libc.so.6", "lib/x86_64-linux-gnu/libc.so.6"},
        {"/lib64/ld-linux-x86-64.so.2", "lib64/ld-linux-x86-64.so.2"}};
    std::string base;
    for (const auto& [from, to] : files) {
      if (!fs::exists(from)) GTEST_SKIP() << from << " is missing";
      AddFile(&base, to, ReadHostFile(fs::canonical(from)), 0755);
    }
    AddFile(&base, "data/a", "a\n");
    AddFile(&base, "data/gone", "gone\n");
    base += TarTrailer();
    std::string top;
    AddFile(&top, "data/.wh.gone", "");
    AddFile(&top, "data/b", "b\n");
    top += TarTrailer();

    dir_ = fs::path(::testing::TempDir()) / ("record-image-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto layout = OciLayout::OpenOrCreate((dir_ / "layout").string());
    ASSERT_TRUE(layout.ok()) << layout.status();
    layout_ = *std::move(layout);
    store_ = std::make_unique<OciLayoutStore>(layout_.get());
    Manifest m;
    m.media_type = kOciManifestMediaType;
    std::string diff_ids;
    for (const std::string* layer : {&base, &top}) {
      auto d = store_->WriteBlob(kOciLayerMediaType, *layer);
      ASSERT_TRUE(d.ok()) << d.status();
      m.layers.push_back(*d);
      diff_ids += (diff_ids.empty() ? "\"" : ",\"") + d->digest.ToString() + "\"";
    }
    std::string config =
        R"({"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin","X=1"],)"
        R"("WorkingDir":"/data","Cmd":["sh","-c","cat a b; cat gone; echo $X > /data/new"]},)"
        R"("rootfs":{"type":"layers","diff_ids":[)" + diff_ids + "]}}";
    auto c = store_->WriteBlob(kOciConfigMediaType, config);
    ASSERT_TRUE(c.ok()) << c.status();
    m.config = *c;
    auto md = store_->WriteManifest(kOciManifestMediaType, SerializeManifest(m));
    ASSERT_TRUE(md.ok()) << md.status();
    ASSERT_TRUE(store_->Tag("v1", *md).ok());
    ASSERT_TRUE(EnterPrivateMountNamespace().ok());
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  fs::path dir_;
  std::unique_ptr<OciLayout> layout_;
  std::unique_ptr<OciLayoutStore> store_;
};

TEST_F(RecordImageTest, RunsTheImageCommandInItsWorkdirAndKeepsTheImageFiles) {
  RecordOptions o;
  o.workload.output_fd = -1;
  o.temp_dir = dir_.string();
  auto rec = RecordImageWorkload(*store_, "v1", o);
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->argv, (std::vector<std::string>{"sh", "-c",
                                                 "cat a b; cat gone; echo $X > /data/new"}));
  EXPECT_EQ(rec->workload.exit_code, 0);
  const auto& f = rec->files;
  auto at = [&](const std::string& p) { return std::find(f.begin(), f.end(), p) - f.begin(); };
  ASSERT_LT(at("data/a"), static_cast<long>(f.size()));
  ASSERT_LT(at("data/b"), static_cast<long>(f.size()));
  EXPECT_LT(at("bin/sh"), at("data/a"));
  EXPECT_LT(at("data/a"), at("data/b"));
  EXPECT_EQ(at("data/gone"), static_cast<long>(f.size()));  // whited out
  EXPECT_EQ(at("data/new"), static_cast<long>(f.size()));   // made by the workload
  EXPECT_EQ(rec->unpacked.removed, 1u);
  // The unpacked image is gone; only the layout is left in the temp dir.
  for (const auto& e : fs::directory_iterator(dir_)) EXPECT_EQ(e.path().filename(), "layout");
}

TEST_F(RecordImageTest, ArgumentsEnvAndWorkdirOverrideTheImage) {
  RecordOptions o;
  o.workload.output_fd = -1;
  o.workload.argv = {"sh", "-c", "test \"$X$Y\" = 23 && cat data/b"};
  o.workload.env = {"X=2", "Y=3"};
  o.workload.workdir = "/";
  o.temp_dir = dir_.string();
  auto rec = RecordImageWorkload(*store_, "v1", o);
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->workload.exit_code, 0);
  EXPECT_NE(std::find(rec->files.begin(), rec->files.end(), "data/b"), rec->files.end());
  EXPECT_EQ(std::find(rec->files.begin(), rec->files.end(), "data/a"), rec->files.end());
}

TEST_F(RecordImageTest, MissingTagIsNotFound) {
  RecordOptions o;
  o.temp_dir = dir_.string();
  EXPECT_EQ(RecordImageWorkload(*store_, "nope", o).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace lazysnap

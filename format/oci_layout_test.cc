#include "format/oci_layout.h"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lazysnap {
namespace {

using ::testing::HasSubstr;

class OciLayoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/oci_layout_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { ASSERT_EQ(std::system(("rm -rf '" + root_ + "'").c_str()), 0); }

  std::vector<std::string> ListDir(const std::string& dir) {
    std::vector<std::string> names;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return names;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    return names;
  }

  std::string root_;
};

TEST_F(OciLayoutTest, CreateWriteReadTag) {
  std::string dir = root_ + "/layout";
  auto layout = OciLayout::OpenOrCreate(dir);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(*ReadFileToString(dir + "/oci-layout"), R"({"imageLayoutVersion":"1.0.0"})");
  auto index = (*layout)->ReadIndex();
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_TRUE(index->manifests.empty());

  auto d = (*layout)->WriteBlob(kOciConfigMediaType, "config bytes");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest, Sha256::Of("config bytes"));
  EXPECT_TRUE((*layout)->HasBlob(d->digest));
  EXPECT_EQ(*ReadFileToString((*layout)->BlobPath(d->digest)), "config bytes");
  auto back = (*layout)->ReadBlob(d->digest, d->size, 1024);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, "config bytes");

  ASSERT_TRUE((*layout)->UpdateIndex([&](Index& i) { return SetTag(i, "v1", *d); }).ok());
  ASSERT_TRUE((*layout)->UpdateIndex([&](Index& i) { return SetTag(i, "v2", *d); }).ok());
  auto resolved = (*layout)->Resolve("v1");
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->digest, d->digest);
  EXPECT_EQ(resolved->annotations.at(kRefNameAnnotation), "v1");
  EXPECT_TRUE(absl::IsNotFound((*layout)->Resolve("nope").status()));
  EXPECT_TRUE(absl::IsNotFound((*layout)->Resolve("").status()));  // two images: ambiguous

  // Reopening sees the same state.
  auto again = OciLayout::Open(dir);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->ReadIndex()->manifests.size(), 2u);
  // No temporary files left behind.
  for (const auto& name : ListDir(dir)) EXPECT_EQ(name.find(".lazysnap-tmp"), std::string::npos);
}

TEST_F(OciLayoutTest, RetaggingReplacesTheOldEntry) {
  Index index;
  Descriptor a = DescriptorOf(kOciManifestMediaType, "a");
  Descriptor b = DescriptorOf(kOciManifestMediaType, "b");
  ASSERT_TRUE(SetTag(index, "latest", a).ok());
  ASSERT_TRUE(SetTag(index, "other", a).ok());
  ASSERT_TRUE(SetTag(index, "latest", b).ok());
  ASSERT_EQ(index.manifests.size(), 2u);
  EXPECT_EQ(index.manifests[0].annotations.at(kRefNameAnnotation), "other");
  EXPECT_EQ(index.manifests[1].digest, b.digest);
  for (const char* bad : {"", "-x", "a b", "x/", "a//b", "x-"}) {
    EXPECT_FALSE(SetTag(index, bad, a).ok()) << bad;
  }
  for (const char* good : {"v1.0", "docker.io/library/foo:bar", "a--b", "1"}) {
    EXPECT_TRUE(SetTag(index, good, a).ok()) << good;
  }
}

TEST_F(OciLayoutTest, CorruptBlobIsDataLoss) {
  auto layout = OciLayout::OpenOrCreate(root_ + "/l");
  ASSERT_TRUE(layout.ok());
  auto d = (*layout)->WriteBlob("x", "good content");
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(WriteFileAtomically((*layout)->BlobPath(d->digest), "evil content").ok());
  auto r = (*layout)->ReadBlob(d->digest, -1, 1024);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  r = (*layout)->ReadBlob(d->digest, d->size + 1, 1024);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  r = (*layout)->ReadBlob(d->digest, -1, 4);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  r = (*layout)->ReadBlob(Sha256::Of("missing"), -1, 4);
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();

  // Copying a corrupt blob into another layout fails and leaves nothing behind.
  auto dst = OciLayout::OpenOrCreate(root_ + "/dst");
  ASSERT_TRUE(dst.ok());
  EXPECT_EQ((*dst)->CopyBlobFrom(**layout, *d).code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE((*dst)->HasBlob(d->digest));
  EXPECT_TRUE(ListDir(root_ + "/dst/blobs/sha256").empty());
}

TEST_F(OciLayoutTest, WriterCommitChecksExpectedDigest) {
  auto layout = OciLayout::OpenOrCreate(root_ + "/l");
  ASSERT_TRUE(layout.ok());
  auto w = (*layout)->NewBlobWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write("abc").ok());
  auto c = (*w)->Commit(Sha256::Of("abd"));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE((*layout)->HasBlob(Sha256::Of("abc")));

  // An abandoned writer removes its temporary file.
  {
    auto w2 = (*layout)->NewBlobWriter();
    ASSERT_TRUE(w2.ok());
    ASSERT_TRUE((*w2)->Write("partial").ok());
  }
  for (const auto& name : ListDir(root_ + "/l")) {
    EXPECT_EQ(name.find(".lazysnap-tmp"), std::string::npos) << name;
  }
  EXPECT_TRUE(ListDir(root_ + "/l/blobs/sha256").empty());

  // Writing a blob that is already there succeeds and keeps one file.
  for (int i = 0; i < 2; ++i) {
    auto w3 = (*layout)->NewBlobWriter();
    ASSERT_TRUE(w3.ok());
    ASSERT_TRUE((*w3)->Write("same").ok());
    auto d = (*w3)->Commit(Sha256::Of("same"));
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->size, 4);
  }
  EXPECT_EQ(ListDir(root_ + "/l/blobs/sha256"),
            std::vector<std::string>{Sha256::Of("same").Hex()});
  EXPECT_EQ(*ReadFileToString((*layout)->BlobPath(Sha256::Of("same"))), "same");
}

TEST_F(OciLayoutTest, OpensReadOnlyLayoutsWithoutWriting) {
  std::string dir = root_ + "/ro";
  ASSERT_TRUE(OciLayout::OpenOrCreate(dir).ok());
  ASSERT_EQ(std::system(("rm -rf '" + dir + "/blobs' && chmod a-w '" + dir + "'").c_str()), 0);
  auto layout = OciLayout::Open(dir);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_TRUE((*layout)->ReadIndex().ok());
  if (::geteuid() != 0) EXPECT_FALSE((*layout)->WriteBlob("x", "data").ok());
  ASSERT_EQ(std::system(("chmod u+w '" + dir + "'").c_str()), 0);
  // Blob writes create blobs/sha256 when a layout lacks it.
  EXPECT_TRUE((*layout)->WriteBlob("x", "data").ok());
}

TEST_F(OciLayoutTest, OpenRejectsNonLayouts) {
  EXPECT_TRUE(absl::IsNotFound(OciLayout::Open(root_).status()));
  ASSERT_TRUE(WriteFileAtomically(root_ + "/oci-layout", R"({"imageLayoutVersion":"2.0"})").ok());
  auto s = OciLayout::Open(root_).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("unsupported imageLayoutVersion"));
  ASSERT_TRUE(WriteFileAtomically(root_ + "/oci-layout", std::string(5000, ' ')).ok());
  s = OciLayout::Open(root_).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("exceeds the limit"));
  ASSERT_TRUE(WriteFileAtomically(root_ + "/oci-layout", "{").ok());
  EXPECT_EQ(OciLayout::Open(root_).status().code(), absl::StatusCode::kInvalidArgument);
  // OpenOrCreate does not overwrite something that is not an empty directory.
  EXPECT_FALSE(OciLayout::OpenOrCreate(root_).ok());
}

}  // namespace
}  // namespace lazysnap

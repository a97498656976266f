// LayerView without FUSE: inode numbering, lookups (whiteouts, hidden names), readdir
// positions that resume anywhere, xattrs with the opaque marker.
#include "fusefs/layer_view.h"

#include <gtest/gtest.h>

#include "fusefs/testing.h"

namespace lazysnap {
namespace {

using namespace fusefs_testing;

class LayerViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Member x = File("d/x", "data");
    x.xattrs["user.a"] = "1";
    x.xattrs["trusted.overlay.opaque"] = "n";  // on a file: just an xattr
    auto blob = BuildLayer({Dir("d"), x, Link("d/hard", "d/x", '1'), File("d/.wh.gone", ""),
                            File("d/.wh..wh..opq", ""), File("d/z", "z"), Dir("e")},
                           LayerFormat::kEstargz);
    ASSERT_TRUE(blob.ok()) << blob.status();
    MemoryBlobSource mem(std::move(*blob));
    auto layer = OpenLayer(mem, {});
    ASSERT_TRUE(layer.ok()) << layer.status();
    layer_ = std::move(*layer);
  }
  Ino L(const LayerView& v, Ino dir, std::string_view name) {
    auto r = v.Lookup(dir, name);
    return r.ok() && r->has_value() ? **r : 0;
  }
  std::unique_ptr<SeekableLayer> layer_;
};

TEST_F(LayerViewTest, InodesAndLookups) {
  LayerView v(&layer_->index);
  Ino d = L(v, kRootIno, "d");
  ASSERT_NE(d, 0u);
  EXPECT_EQ(d, Ino{layer_->index.LookupPath("d")} + 1);
  EXPECT_EQ(L(v, d, "hard"), L(v, d, "x"));  // one inode
  EXPECT_EQ(v.Stat(L(v, d, "x")).st_nlink, 2u);
  Ino gone = L(v, d, "gone");
  ASSERT_NE(gone, 0u);
  EXPECT_TRUE(S_ISCHR(v.Stat(gone).st_mode));
  EXPECT_EQ(v.Stat(gone).st_rdev, 0u);
  EXPECT_EQ(L(v, d, ".wh.gone"), 0u);
  EXPECT_EQ(L(v, d, ".wh..wh..opq"), 0u);
  EXPECT_EQ(L(v, kRootIno, ".no.prefetch.landmark"), 0u);
  EXPECT_EQ(L(v, d, "missing"), 0u);
  EXPECT_TRUE(absl::IsFailedPrecondition(v.Lookup(L(v, d, "x"), "y").status()));
  EXPECT_TRUE(absl::IsNotFound(v.Lookup(999999, "y").status()));
  EXPECT_FALSE(v.EntryOf(0).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(v.Readlink(L(v, d, "x")).status()));
}

TEST_F(LayerViewTest, ReadDirResumesAtAnyPosition) {
  LayerView v(&layer_->index);
  Ino d = L(v, kRootIno, "d");
  std::vector<std::pair<std::string, uint64_t>> all;
  v.ReadDir(d, 0, [&](std::string_view n, Ino ino, uint64_t next) {
    all.push_back({std::string(n), next});
    EXPECT_EQ(ino, n == "." ? d : n == ".." ? kRootIno : L(v, d, n)) << n;
    return true;
  });
  std::vector<std::string> names;
  for (auto& [n, next] : all) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{".", "..", "gone", "hard", "x", "z"}));
  for (size_t i = 0; i < all.size(); i++) {  // resuming after entry i gives the rest
    std::vector<std::string> rest;
    v.ReadDir(d, all[i].second, [&](std::string_view n, Ino, uint64_t) {
      rest.emplace_back(n);
      return true;
    });
    EXPECT_EQ(rest, std::vector<std::string>(names.begin() + i + 1, names.end())) << i;
  }
}

TEST_F(LayerViewTest, XattrsAndOpaqueMarker) {
  LayerView both(&layer_->index, OpaqueXattr::kBoth);
  Ino d = L(both, kRootIno, "d");
  EXPECT_EQ(both.GetXattr(d, "trusted.overlay.opaque"), "y");
  EXPECT_EQ(both.GetXattr(d, "user.overlay.opaque"), "y");
  EXPECT_EQ(both.ListXattrs(d), std::string("trusted.overlay.opaque\0user.overlay.opaque\0", 43));
  Ino x = L(both, d, "x");
  EXPECT_EQ(both.GetXattr(x, "user.a"), "1");
  EXPECT_EQ(both.GetXattr(x, "trusted.overlay.opaque"), "n");
  EXPECT_EQ(both.GetXattr(x, "user.b"), std::nullopt);
  EXPECT_EQ(both.GetXattr(L(both, kRootIno, "e"), "trusted.overlay.opaque"), std::nullopt);
  LayerView trusted(&layer_->index);
  EXPECT_EQ(trusted.GetXattr(d, "user.overlay.opaque"), std::nullopt);
  EXPECT_EQ(trusted.ListXattrs(d), std::string("trusted.overlay.opaque\0", 23));
}

}  // namespace
}  // namespace lazysnap

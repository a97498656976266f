#include "cmd/lazysnap/progress.h"

#include <cstdio>
#include <string>

#include "gtest/gtest.h"

namespace lazysnap::cli {
namespace {

TEST(HumanBytes, Units) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(10u << 20), "10.0 MiB");
  EXPECT_EQ(HumanBytes(3ull << 30), "3.0 GiB");
}

LayerProgress Layer(size_t id, size_t count, uint64_t read, uint64_t size, bool done) {
  LayerProgress p;
  p.id = id;
  p.count = count;
  p.source_digest = Sha256::Of("x");
  p.source_size = size;
  p.source_read = read;
  p.uncompressed = read * 2;
  p.done = done;
  return p;
}

TEST(ProgressLine, ShowsStateAndPercentage) {
  std::string hex = Sha256::Of("x").Hex().substr(0, 12);
  EXPECT_EQ(ProgressLine(Layer(0, 3, 0, 100, false)), "[1/3] " + hex + "  waiting");
  EXPECT_EQ(ProgressLine(Layer(1, 3, 512, 2048, false)),
            "[2/3] " + hex + "   25.0%  512 B / 2.0 KiB (1.0 KiB uncompressed)");
  EXPECT_EQ(ProgressLine(Layer(1, 3, 2048, 2048, false)),
            "[2/3] " + hex + "  finishing 2.0 KiB (4.0 KiB uncompressed)");
  EXPECT_EQ(ProgressLine(Layer(2, 3, 2048, 2048, true)),
            "[3/3] " + hex + "  done      2.0 KiB (4.0 KiB uncompressed)");
}

TEST(ProgressDisplay, RedrawsInPlace) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* out = open_memstream(&buf, &len);
  ASSERT_NE(out, nullptr);
  {
    ProgressDisplay display(out);
    display.Update(Layer(0, 2, 10, 100, false));
    display.Update(Layer(0, 2, 100, 100, true));  // done: always redrawn
    display.Finish();
  }
  std::fclose(out);
  std::string text(buf, len);
  free(buf);
  // Every redraw after the first moves the cursor back up over the two lines drawn.
  EXPECT_NE(text.find("\x1b[2A"), std::string::npos);
  EXPECT_NE(text.find("done"), std::string::npos);
  EXPECT_EQ(text.substr(0, 4), "\r\x1b[J");
}

}  // namespace
}  // namespace lazysnap::cli

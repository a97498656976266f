#include "base/errors.h"

#include <cerrno>

#include <gtest/gtest.h>

namespace lazysnap {
namespace {

TEST(AnnotateTest, PrefixesTheMessageAndKeepsTheCode) {
  absl::Status s = Annotate(absl::NotFoundError("no such blob"), "layer sha256:ab");
  EXPECT_TRUE(absl::IsNotFound(s));
  EXPECT_EQ(s.message(), "layer sha256:ab: no such blob");
  s = Annotate(Annotate(absl::DataLossError("bad digest"), "chunk 3"), "layer x");
  EXPECT_TRUE(absl::IsDataLoss(s));
  EXPECT_EQ(s.message(), "layer x: chunk 3: bad digest");
}

TEST(AnnotateTest, OkStaysOk) {
  absl::Status s = Annotate(absl::OkStatus(), "anything");
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.message(), "");
}

TEST(ErrnoToStatusTest, CodeAndMessage) {
  absl::Status s = ErrnoToStatus(ENOENT, "open /x");
  EXPECT_TRUE(absl::IsNotFound(s));
  EXPECT_EQ(s.message().substr(0, 9), "open /x: ");
  EXPECT_EQ(StatusToErrno(s), ENOENT);
}

}  // namespace
}  // namespace lazysnap

#include "format/toc.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/strings.h"

namespace lazysnap {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t kToc = 1 << 20;  // TOC offset used by most tests
const std::string kD1 = Sha256::Of("1").ToString();
const std::string kD2 = Sha256::Of("2").ToString();

absl::StatusOr<LayerIndex> Parse(std::string_view entries,
                                 LayerFormat format = LayerFormat::kEstargz,
                                 LayerLimits limits = {}) {
  return ParseToc(StrCat("{\"version\":1,\"entries\":[", entries, "]}"), format, kToc,
                  kToc + 100, limits);
}

std::vector<std::string> ChildNames(const LayerIndex& idx, EntryId dir) {
  std::vector<std::string> out;
  for (EntryId c : idx.ChildrenOf(dir)) out.emplace_back(idx.name(c));
  return out;
}

void ExpectError(std::string_view entries, std::string_view message,
                 LayerFormat format = LayerFormat::kEstargz, LayerLimits limits = {}) {
  auto idx = Parse(entries, format, limits);
  ASSERT_FALSE(idx.ok()) << entries;
  EXPECT_TRUE(absl::IsInvalidArgument(idx.status())) << idx.status();
  EXPECT_THAT(idx.status().message(), HasSubstr(message)) << entries;
}

TEST(ParseToc, EstargzTreeWithChunksLinksAndLandmark) {
  auto idx = Parse(StrCat(
      R"({"name":"small","type":"reg","size":3,"mode":384,"offset":79,"chunkDigest":")", kD1,
      R"("},)"
      R"({"name":".prefetch.landmark","type":"reg","size":1,"offset":169,"chunkDigest":")", kD1,
      R"("},{"name":"dir/","type":"dir","mode":493,"uid":1000,"gid":1001,)"
      R"("modtime":"2021-03-04T05:06:07Z"},)"
      R"({"name":"dir/file.txt","type":"reg","size":12000,"mode":420,"offset":283,)"
      R"("chunkSize":4096,"chunkDigest":")", kD1, R"("},)"
      R"({"name":"dir/file.txt","type":"chunk","offset":344,"chunkOffset":4096,"chunkSize":4096,)"
      R"("chunkDigest":")", kD2, R"("},)"
      R"({"name":"dir/file.txt","type":"chunk","offset":405,"chunkOffset":8192,"chunkDigest":")",
      kD2, R"("},)"
      R"({"name":"link","type":"symlink","linkName":"dir/file.txt"},)"
      R"({"name":"hard","type":"hardlink","linkName":"small"})"));
  ASSERT_TRUE(idx.ok()) << idx.status();
  EXPECT_EQ(idx->format(), LayerFormat::kEstargz);
  EXPECT_EQ(idx->size(), 7u);
  EXPECT_TRUE(S_ISDIR(idx->entry(kRootEntry).mode));
  EXPECT_THAT(ChildNames(*idx, kRootEntry),
              ElementsAre(".prefetch.landmark", "dir", "hard", "link", "small"));
  EXPECT_EQ(idx->entry(kRootEntry).nlink, 3u);

  EntryId dir = idx->LookupPath("dir");
  ASSERT_NE(dir, kNoEntry);
  const Entry& d = idx->entry(dir);
  EXPECT_EQ(d.mode, S_IFDIR | 0755u);
  EXPECT_EQ(idx->attrs(dir).uid, 1000u);
  EXPECT_EQ(idx->attrs(dir).gid, 1001u);
  EXPECT_EQ(idx->mtime(dir).tv_sec, 1614834367);
  EXPECT_EQ(d.parent, kRootEntry);

  EntryId file = idx->LookupPath("dir/file.txt");
  ASSERT_NE(file, kNoEntry);
  EXPECT_EQ(idx->Path(file), "dir/file.txt");
  EXPECT_EQ(idx->entry(file).size, 12000u);
  auto chunks = idx->ChunksOf(file);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].compressed_offset, 283u);
  EXPECT_EQ(chunks[0].compressed_size, 344u - 283u);
  EXPECT_EQ(chunks[1].compressed_size, 405u - 344u);
  EXPECT_EQ(chunks[2].compressed_size, kToc - 405u);  // last data: up to the TOC
  EXPECT_EQ(chunks[2].file_offset, 8192u);
  EXPECT_EQ(chunks[2].size, 12000u - 8192u);
  EXPECT_EQ(chunks[1].digest, ChunkDigest::Of(idx->digest_key(), *Sha256::Parse(kD2)));
  EXPECT_NE(chunks[1].digest, ChunkDigest::Of(DigestKey(), *Sha256::Parse(kD2)));  // keyed
  EXPECT_TRUE(chunks[1].has_digest);
  EXPECT_EQ(chunks[0].entry, file);
  EXPECT_EQ(idx->ChunkAt(file, 5000), idx->entry(file).chunks_begin + 1);
  EXPECT_EQ(idx->ChunkAt(file, 12000), idx->entry(file).chunks_begin + 3);

  EntryId small = idx->LookupPath("small"), hard = idx->LookupPath("hard");
  EXPECT_EQ(idx->ChunksOf(small)[0].compressed_size, 169u - 79u);
  EXPECT_EQ(idx->entry(hard).inode, small);
  EXPECT_EQ(idx->entry(small).inode, small);
  EXPECT_EQ(idx->entry(hard).nlink, 2u);
  EXPECT_EQ(idx->entry(small).nlink, 2u);
  EXPECT_EQ(idx->entry(hard).mode, S_IFREG | 0600u);
  EXPECT_EQ(idx->entry(hard).size, 3u);

  EntryId link = idx->LookupPath("link");
  EXPECT_EQ(idx->entry(link).mode & S_IFMT, static_cast<uint32_t>(S_IFLNK));
  EXPECT_EQ(idx->link(link), "dir/file.txt");
  EXPECT_EQ(idx->entry(link).size, 12u);

  EXPECT_EQ(idx->prefetch_landmark_offset(), 169u);
  EXPECT_FALSE(idx->has_no_prefetch_landmark());
  EXPECT_EQ(idx->total_file_bytes(), 3u + 1u + 12000u);
  EXPECT_EQ(idx->toc_offset(), kToc);
}

TEST(ParseToc, ZstdChunkedDialect) {
  auto idx = Parse(StrCat(
      R"({"type":"dir","name":"./","mode":493},)"
      R"({"type":"reg","name":"./a","mode":420,"size":5,"modtime":"2023-01-02T03:04:05.123456789Z",)"
      R"("accesstime":"2023-01-02T03:04:05Z","digest":")", kD1, R"(","offset":100,"endOffset":150},)"
      R"({"type":"reg","name":"./big","size":300,"digest":")", kD2, R"(","offset":200,"endOffset":400,)"
      R"("chunkSize":100,"chunkDigest":")", kD1, R"("},)"
      R"({"type":"chunk","name":"./big","offset":260,"chunkOffset":100,"chunkSize":100,)"
      R"("chunkDigest":")", kD2, R"(","chunkType":"zeros"},)"
      R"({"type":"chunk","name":"./big","offset":300,"chunkOffset":200,"chunkSize":100,)"
      R"("chunkDigest":")", kD2, R"("},)"
      R"({"type":"reg","name":"./empty","size":0},)"
      R"({"type":"char","name":"./dev/null","devMajor":1,"devMinor":3,"mode":438},)"
      R"({"type":"fifo","name":"./p"},)"
      R"({"type":"reg","name":"./x","size":1,"offset":500,"endOffset":510,"digest":")", kD1,
      R"(","xattrs":{"user.k":"dmFsdWU=","security.capability":"AAEC"}})"),
      LayerFormat::kZstdChunked);
  ASSERT_TRUE(idx.ok()) << idx.status();
  EXPECT_EQ(idx->format(), LayerFormat::kZstdChunked);
  EntryId a = idx->LookupPath("a");
  ASSERT_NE(a, kNoEntry);
  EXPECT_EQ(idx->mtime(a).tv_sec, 1672628645);
  EXPECT_EQ(idx->mtime(a).tv_nsec, 123456789);
  auto ac = idx->ChunksOf(a);
  ASSERT_EQ(ac.size(), 1u);
  EXPECT_EQ(ac[0].compressed_size, 50u);  // endOffset - offset
  EXPECT_TRUE(ac[0].has_digest);          // the file digest stands in for a single chunk
  EXPECT_EQ(ac[0].digest, ChunkDigest::Of(idx->digest_key(), *Sha256::Parse(kD1)));

  auto bc = idx->ChunksOf(idx->LookupPath("big"));
  ASSERT_EQ(bc.size(), 3u);
  EXPECT_EQ(bc[0].compressed_size, 60u);
  EXPECT_FALSE(bc[0].zeros);
  EXPECT_TRUE(bc[1].zeros);
  EXPECT_EQ(bc[1].compressed_size, 40u);
  EXPECT_EQ(bc[2].compressed_size, 100u);  // up to the file's endOffset

  EXPECT_EQ(idx->entry(idx->LookupPath("empty")).chunks_count, 0u);
  const Entry& null = idx->entry(idx->LookupPath("dev/null"));
  EXPECT_EQ(null.mode, S_IFCHR | 0666u);
  EXPECT_EQ(null.dev_major, 1u);
  EXPECT_EQ(null.dev_minor, 3u);
  EXPECT_EQ(idx->entry(idx->LookupPath("p")).mode & S_IFMT, static_cast<uint32_t>(S_IFIFO));

  const EntryId x = idx->LookupPath("x");
  ASSERT_EQ(idx->XattrsOf(x).size(), 2u);
  std::map<std::string, std::string> xattrs;
  for (const Xattr& xa : idx->XattrsOf(x)) {
    xattrs[std::string(idx->str(xa.name))] = std::string(idx->str(xa.value));
  }
  EXPECT_EQ(xattrs["user.k"], "value");
  EXPECT_EQ(xattrs["security.capability"], std::string("\0\1\2", 3));
}

TEST(ParseToc, ImplicitParentsSortedChildrenAndNlink) {
  auto idx = Parse(R"({"name":"z/y/x","type":"symlink","linkName":"t"},)"
                   R"({"name":"z/b","type":"dir"},{"name":"z/a","type":"fifo"},)"
                   R"({"name":"/abs/./f","type":"fifo"},{"name":"z/b/","type":"dir","mode":448})");
  ASSERT_TRUE(idx.ok()) << idx.status();
  EXPECT_THAT(ChildNames(*idx, kRootEntry), ElementsAre("abs", "z"));
  EntryId z = idx->LookupPath("z");
  EXPECT_THAT(ChildNames(*idx, z), ElementsAre("a", "b", "y"));
  EXPECT_EQ(idx->entry(z).nlink, 4u);  // 2 + b + y
  EXPECT_EQ(idx->entry(z).mode, S_IFDIR | 0755u);
  EXPECT_EQ(idx->entry(idx->LookupPath("z/b")).mode, S_IFDIR | 0700u);  // repeat: later wins
  EXPECT_NE(idx->LookupPath("abs/f"), kNoEntry);
  EXPECT_NE(idx->LookupPath("z/y/x"), kNoEntry);
  // Ids: the root is 0 and every entry's parent is a directory listing it.
  for (EntryId id = 1; id < idx->size(); ++id) {
    EntryId p = idx->entry(id).parent;
    EXPECT_EQ(idx->Lookup(p, idx->name(id)), id);
  }
}

TEST(ParseToc, SanitizesNames) {
  ExpectError(R"({"name":"a/../../etc/passwd","type":"fifo"})", "\"..\"");
  ExpectError(R"({"name":"..","type":"dir"})", "\"..\"");
  ExpectError(R"({"name":"a\u0000b","type":"fifo"})", "NUL");
  ExpectError(StrCat(R"({"name":")", std::string(300, 'n'), R"(","type":"fifo"})"), "too long");
  LayerLimits shallow;
  shallow.max_path_depth = 3;
  ExpectError(R"({"name":"a/b/c/d","type":"fifo"})", "too deep", LayerFormat::kEstargz, shallow);
  ExpectError(R"({"name":"s","type":"symlink","linkName":"a\u0000"})", "NUL");
  ExpectError(R"({"name":"s","type":"symlink"})", "without a target");
}

TEST(ParseToc, RejectsConflictsAndBadLinks) {
  ExpectError(R"({"name":"a","type":"fifo"},{"name":"a","type":"dir"})", "different type");
  ExpectError(R"({"name":"a","type":"fifo"},{"name":"./a","type":"fifo"})", "duplicate");
  ExpectError(R"({"name":"h","type":"hardlink","linkName":"missing"})", "not found");
  ExpectError(R"({"name":"d","type":"dir"},{"name":"h","type":"hardlink","linkName":"d"})",
              "directory");
  ExpectError(R"({"name":"h","type":"hardlink","linkName":"g"},)"
              R"({"name":"g","type":"hardlink","linkName":"h"})",
              "loop");
  ExpectError(R"({"name":"h","type":"hardlink","linkName":"/"})", "root");
  ExpectError(R"({"name":"f","type":"fifo"},{"name":"f/x","type":"fifo"})", "not a directory");
  ExpectError(R"({"name":"/","type":"fifo"})", "root is not a directory");
  ExpectError(R"({"name":"x","type":"socket"})", "unknown type");
}

TEST(ParseToc, HardLinkChainsResolveToTheFile) {
  auto idx = Parse(StrCat(R"({"name":"h2","type":"hardlink","linkName":"h1"},)"
                          R"({"name":"h1","type":"hardlink","linkName":"f"},)"
                          R"({"name":"f","type":"reg","size":1,"offset":10,"chunkDigest":")",
                          kD1, R"("})"));
  ASSERT_TRUE(idx.ok()) << idx.status();
  EntryId f = idx->LookupPath("f");
  EXPECT_EQ(idx->entry(idx->LookupPath("h2")).inode, f);
  EXPECT_EQ(idx->entry(idx->LookupPath("h1")).inode, f);
  EXPECT_EQ(idx->entry(f).nlink, 3u);
  EXPECT_EQ(idx->ChunksOf(idx->LookupPath("h2"))[0].entry, f);
}

TEST(ParseToc, LongHardLinkChainsResolveInLinearTime) {
  // h0 -> h1 -> ... -> h{n-1} -> f, listed head first: each link is resolved once.
  constexpr int kLinks = 50000;
  std::string entries;
  for (int i = 0; i < kLinks; ++i) {
    StrAppend(&entries, R"({"name":"h)", i, R"(","type":"hardlink","linkName":")",
              i + 1 < kLinks ? StrCat("h", i + 1) : std::string("f"), R"("},)");
  }
  StrAppend(&entries, R"({"name":"f","type":"fifo"})");
  auto idx = Parse(entries);
  ASSERT_TRUE(idx.ok()) << idx.status();
  EntryId f = idx->LookupPath("f");
  EXPECT_EQ(idx->entry(idx->LookupPath("h0")).inode, f);
  EXPECT_EQ(idx->entry(f).nlink, kLinks + 1u);
}

TEST(ParseToc, RejectsChunksThatDoNotTile) {
  const std::string reg = R"({"name":"f","type":"reg","size":10,"offset":10,"chunkSize":4})";
  ExpectError(reg, "cover 4 of 10");
  ExpectError(reg + R"(,{"name":"f","type":"chunk","offset":20,"chunkOffset":5,"chunkSize":5})",
              "do not tile");
  ExpectError(reg + R"(,{"name":"f","type":"chunk","offset":20,"chunkOffset":3})", "do not tile");
  ExpectError(reg + R"(,{"name":"f","type":"chunk","offset":20,"chunkOffset":4,"chunkSize":9})",
              "past the end");
  ExpectError(R"({"name":"f","type":"reg","size":10})", "without an offset");
  ExpectError(R"({"name":"g","type":"chunk","offset":20,"chunkOffset":4})", "does not follow");
  ExpectError(reg + R"(,{"name":"g","type":"chunk","offset":20,"chunkOffset":4})",
              "does not follow");
  ExpectError(R"({"name":"f","type":"reg","size":10,"offset":-1})", "negative");
}

TEST(ParseToc, RejectsOffsetsBeyondTheToc) {
  ExpectError(StrCat(R"({"name":"f","type":"reg","size":1,"offset":)", kToc, "}"), "beyond");
  ExpectError(R"({"name":"f","type":"reg","size":1,"offset":10,"endOffset":99999999})",
              "into the TOC", LayerFormat::kZstdChunked);
  auto idx = ParseToc(R"({"entries":[]})", LayerFormat::kEstargz, 500, 100, {});
  EXPECT_FALSE(idx.ok());
}

TEST(ParseToc, EnforcesLimits) {
  LayerLimits limits;
  limits.max_entries = 2;
  ExpectError(R"({"name":"a","type":"fifo"},{"name":"b","type":"fifo"},{"name":"c","type":"fifo"})",
              "more than 2 entries", LayerFormat::kEstargz, limits);
  limits.max_entries = 5;  // 2 entries, but 6 nodes with the root and the implied directories
  ExpectError(R"({"name":"a/b/c/d","type":"fifo"},{"name":"x/y","type":"fifo"})",
              "implicit directories", LayerFormat::kEstargz, limits);
  limits = {};
  limits.max_file_size = 100;
  ExpectError(R"({"name":"f","type":"reg","size":101,"offset":1})", "size", LayerFormat::kEstargz,
              limits);
  limits = {};
  limits.max_chunk_size = 8;
  ExpectError(R"({"name":"f","type":"reg","size":10,"offset":10})", "above the limit",
              LayerFormat::kEstargz, limits);
  limits = {};
  limits.max_toc_bytes = 10;
  ExpectError(R"({"name":"a","type":"fifo"})", "above the limit", LayerFormat::kEstargz, limits);
  ExpectError(R"({"name":"a","type":"fifo","uid":-1})", "uid");
  ExpectError(R"({"name":"a","type":"fifo","uid":4294967296})", "uid");
}

TEST(ParseToc, RejectsMalformedJsonAndFields) {
  for (std::string_view bad : {"", "[]", "{", R"({"entries":{}})", R"({"entries":[1]})",
                               R"({"version":2,"entries":[]})", R"({"version":1})",
                               R"({"entries":[]} trailing)"}) {
    auto idx = ParseToc(bad, LayerFormat::kEstargz, kToc, kToc + 100, {});
    EXPECT_TRUE(absl::IsInvalidArgument(idx.status())) << bad << " " << idx.status();
  }
  ExpectError(R"({"name":"a","type":"fifo","mode":"755"})", "mode");
  ExpectError(R"({"name":"a","type":"fifo","modtime":"yesterday"})", "modtime");
  ExpectError(R"({"name":"a","type":"fifo","xattrs":{"user.a":"!!"}})", "base64");
  ExpectError(R"({"name":"f","type":"reg","size":1,"offset":9,"chunkDigest":"md5:00"})",
              "chunkDigest");
  ExpectError(R"({"name":"f","type":"reg","size":1,"offset":9,"chunkType":"holes"})",
              "chunkType");
}

TEST(ParseToc, FilesSharingAMemberShareItsExtent) {
  auto idx = Parse(R"({"name":"a","type":"reg","size":10,"offset":100},)"
                   R"({"name":"b","type":"reg","size":20,"offset":100,"innerOffset":522},)"
                   R"({"name":"c","type":"reg","size":5,"offset":300})");
  ASSERT_TRUE(idx.ok()) << idx.status();
  const Chunk& a = idx->ChunksOf(idx->LookupPath("a"))[0];
  const Chunk& b = idx->ChunksOf(idx->LookupPath("b"))[0];
  EXPECT_EQ(a.compressed_offset, 100u);
  EXPECT_EQ(b.compressed_offset, 100u);
  EXPECT_EQ(a.compressed_size, 200u);
  EXPECT_EQ(b.compressed_size, 200u);
  EXPECT_EQ(a.inner_offset, 0u);
  EXPECT_EQ(b.inner_offset, 522u);
  EXPECT_FALSE(a.has_digest);  // no digest in the TOC: served unverified
  ExpectError(R"({"name":"a","type":"reg","size":1,"offset":100,"innerOffset":1073741824})",
              "innerOffset");
}

TEST(ParseToc, FileDigestStandsInOnlyForASingleChunk) {
  auto idx = Parse(StrCat(
      R"({"name":"one","type":"reg","size":10,"offset":10,"digest":")", kD1, R"("},)"
      R"({"name":"two","type":"reg","size":10,"offset":20,"chunkSize":4,"digest":")", kD1, R"("},)"
      R"({"name":"two","type":"chunk","offset":30,"chunkOffset":4})"));
  ASSERT_TRUE(idx.ok()) << idx.status();
  auto one = idx->ChunksOf(idx->LookupPath("one"));
  ASSERT_EQ(one.size(), 1u);
  EXPECT_TRUE(one[0].has_digest);
  EXPECT_EQ(one[0].digest, ChunkDigest::Of(idx->digest_key(), *Sha256::Parse(kD1)));
  auto two = idx->ChunksOf(idx->LookupPath("two"));
  ASSERT_EQ(two.size(), 2u);
  EXPECT_FALSE(two[0].has_digest);  // the file's digest is not the first chunk's
  EXPECT_FALSE(two[1].has_digest);
  ExpectError(R"({"name":"f","type":"reg","size":1,"offset":9,"digest":"sha256:zz"})",
              "bad digest");
}

TEST(ParseToc, NoPrefetchLandmark) {
  auto idx = Parse(R"({"name":".no.prefetch.landmark","type":"reg","size":1,"offset":5})");
  ASSERT_TRUE(idx.ok()) << idx.status();
  EXPECT_TRUE(idx->has_no_prefetch_landmark());
  EXPECT_FALSE(idx->prefetch_landmark_offset().has_value());
  EXPECT_NE(idx->LookupPath(".no.prefetch.landmark"), kNoEntry);  // still a real file
}

// The compact layout (format/index.md): what one type keeps in the shared union is invisible to
// the others, owners and xattr sets are interned, names end where the next one begins.
TEST(ParseToc, CompactLayoutKeepsEveryTypesFields) {
  auto idx = Parse(StrCat(
      R"({"name":"a","type":"reg","size":5,"uid":7,"gid":8,"offset":79,"chunkDigest":")", kD1,
      R"("},{"name":"b","type":"reg","size":0,"uid":7,"gid":8},)"
      R"({"name":"c","type":"reg","size":0,"uid":7,"gid":9,"xattrs":{"user.k":"dg=="}},)"
      R"({"name":"d","type":"reg","size":0,"uid":7,"gid":9,"xattrs":{"user.k":"dg=="}},)"
      R"({"name":"dev","type":"block","devMajor":259,"devMinor":65537},)"
      R"({"name":".prefetch.landmark","type":"dir"},)"
      R"({"name":"s","type":"symlink","linkName":"a-rather-long-target"},)"
      R"({"name":"h","type":"hardlink","linkName":"dev"})"));
  ASSERT_TRUE(idx.ok()) << idx.status();
  EXPECT_EQ(sizeof(Entry), 40u);
  const EntryId a = idx->LookupPath("a"), b = idx->LookupPath("b"), c = idx->LookupPath("c"),
                d = idx->LookupPath("d"), dev = idx->LookupPath("dev"), s = idx->LookupPath("s"),
                h = idx->LookupPath("h"), lm = idx->LookupPath(".prefetch.landmark");
  EXPECT_EQ(idx->entry(a).attrs, idx->entry(b).attrs);
  EXPECT_EQ(idx->entry(c).attrs, idx->entry(d).attrs);
  EXPECT_NE(idx->entry(a).attrs, idx->entry(c).attrs);
  EXPECT_EQ(idx->attrs(c).gid, 9u);
  ASSERT_EQ(idx->XattrsOf(d).size(), 1u);
  EXPECT_EQ(idx->str(idx->XattrsOf(d)[0].value), "v");
  EXPECT_TRUE(idx->XattrsOf(a).empty());
  EXPECT_EQ(idx->xattrs().size(), 1u);  // one set, stored once
  EXPECT_EQ(idx->entry(dev).dev_major, 259u);
  EXPECT_EQ(idx->entry(dev).dev_minor, 65537u);
  EXPECT_EQ(idx->entry(h).inode, dev);
  EXPECT_EQ(idx->entry(h).dev_minor, 65537u);
  EXPECT_EQ(idx->entry(dev).nlink, 2u);
  EXPECT_EQ(idx->link(s), "a-rather-long-target");
  EXPECT_EQ(idx->link(a), "");
  EXPECT_EQ(idx->ChunksOf(a).size(), 1u);
  // Other types' storage never reads as chunks or children.
  EXPECT_TRUE(idx->ChunksOf(dev).empty());
  EXPECT_TRUE(idx->ChunksOf(s).empty());
  EXPECT_TRUE(idx->ChunksOf(kRootEntry).empty());
  EXPECT_TRUE(idx->ChildrenOf(dev).empty());
  EXPECT_TRUE(idx->ChildrenOf(s).empty());
  EXPECT_EQ(idx->ChunkAt(dev, 0), idx->chunks().size());
  // A directory named like the landmark is not a landmark.
  EXPECT_TRUE(S_ISDIR(idx->entry(lm).mode));
  EXPECT_FALSE(idx->prefetch_landmark_offset().has_value());
  for (EntryId id = 1; id < idx->size(); ++id) {
    EXPECT_EQ(idx->Path(id), idx->name(id));
    EXPECT_EQ(idx->entry(id).parent, kRootEntry);
  }
  EXPECT_EQ(idx->name(kRootEntry), "");
}

TEST(ParseToc, NlinkOfHugeDirectoriesIsOneAsOnExt4) {
  std::string entries;
  for (int i = 0; i < 65534; ++i) {
    StrAppend(&entries, i ? "," : "", R"({"name":"d/)", i, R"(","type":"dir"})");
  }
  StrAppend(&entries, R"(,{"name":"e/x","type":"dir"})");
  auto idx = Parse(entries);
  ASSERT_TRUE(idx.ok()) << idx.status();
  EXPECT_EQ(idx->entry(idx->LookupPath("d")).nlink, 1u);  // 2 + 65534 does not fit
  EXPECT_EQ(idx->entry(idx->LookupPath("e")).nlink, 3u);
  EXPECT_EQ(idx->ChildrenOf(idx->LookupPath("d")).size(), 65534u);
  EXPECT_NE(idx->LookupPath("d/65533"), kNoEntry);
}

TEST(ParseRfc3339, Forms) {
  int64_t s;
  uint32_t ns;
  ASSERT_TRUE(ParseRfc3339("1970-01-01T00:00:00Z", &s, &ns));
  EXPECT_EQ(s, 0);
  ASSERT_TRUE(ParseRfc3339("2000-02-29T12:00:00.5+01:00", &s, &ns));
  EXPECT_EQ(s, 951822000);
  EXPECT_EQ(ns, 500000000u);
  ASSERT_TRUE(ParseRfc3339("0001-01-01T00:00:00Z", &s, &ns));
  EXPECT_EQ(s, -62135596800);
  EXPECT_FALSE(ParseRfc3339("2000-13-01T00:00:00Z", &s, &ns));
  EXPECT_FALSE(ParseRfc3339("2000-01-01 00:00:00Z", &s, &ns));
  EXPECT_FALSE(ParseRfc3339("2000-01-01T00:00:00", &s, &ns));
  EXPECT_FALSE(ParseRfc3339("2000-01-01T00:00:00.Z", &s, &ns));
  EXPECT_FALSE(ParseRfc3339("2000-01-01T00:00:00Zjunk", &s, &ns));
}

}  // namespace
}  // namespace lazysnap

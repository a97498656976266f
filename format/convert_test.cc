#include "format/convert.h"

#include <zlib.h>
#include <zstd.h>

#include <map>
#include <string>
#include <vector>

#include "base/blob_source.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "format/decompress.h"
#include "format/estargz.h"
#include "format/layer.h"
#include "format/tar.h"
#include "format/zstd_chunked.h"

namespace lazysnap {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using json = nlohmann::json;

constexpr uint32_t kChunk = 8192;

struct Member {
  TarEntry entry;
  std::string data;
};

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>((x >> 16) % 7 == 0 ? 'a' + (x >> 20) % 26 : 'x');
  }
  return s;
}

TarEntry Entry(std::string name, char type = '0') {
  TarEntry e;
  e.name = std::move(name);
  e.typeflag = type;
  e.mode = type == '5' ? 0755 : 0644;
  e.uid = 1000;
  e.gid = 1000;
  e.uname = "user";
  e.gname = "group";
  e.mtime_sec = 1700000000;
  return e;
}

std::string MakeTar(const std::vector<Member>& members) {
  std::string out;
  for (const Member& m : members) {
    TarEntry e = m.entry;
    e.size = m.data.size();
    out += EncodeTarHeader(e);
    out += m.data;
    out.append(TarPaddingFor(m.data.size()), '\0');
  }
  return out + TarTrailer();
}

std::vector<Member> SampleMembers() {
  std::vector<Member> v;
  v.push_back({Entry("./", '5'), ""});
  v.push_back({Entry("./etc/", '5'), ""});
  v.push_back({Entry("./etc/empty"), ""});
  v.push_back({Entry("./etc/small"), "hello\n"});
  v.push_back({Entry("./etc/exact"), Pattern(kChunk, 1)});
  v.push_back({Entry("./etc/plus1"), Pattern(kChunk + 1, 2)});
  v.push_back({Entry("./etc/big"), Pattern(3 * kChunk + 100, 3)});
  TarEntry ln = Entry("./etc/link", '2');
  ln.linkname = "small";
  v.push_back({ln, ""});
  TarEntry hl = Entry("./etc/hard", '1');
  hl.linkname = "./etc/small";
  v.push_back({hl, ""});
  TarEntry x = Entry("./etc/xattr");
  x.xattrs["user.k"] = std::string("v\0<&>", 5);
  v.push_back({x, "x"});
  v.push_back({Entry("./" + std::string(150, 'd') + "/" + std::string(120, 'f')), "long"});
  TarEntry fifo = Entry("./etc/fifo", '6');
  v.push_back({fifo, ""});
  return v;
}

absl::StatusOr<ConvertResult> Convert(const std::string& input, ConvertOptions o,
                                      std::string* blob) {
  StringInputStream in(input);
  StringOutputStream out;
  auto r = ConvertLayer(in, out, o);
  *blob = std::move(out.data());
  return r;
}

std::string Decompress(const std::string& data) {
  StringInputStream in(data);
  auto s = NewDecompressingStream(&in);
  EXPECT_TRUE(s.ok());
  std::string out;
  char buf[65536];
  for (;;) {
    auto n = (*s)->Read(absl::MakeSpan(buf));
    EXPECT_TRUE(n.ok()) << n.status();
    if (!n.ok() || *n == 0) return out;
    out.append(buf, *n);
  }
}

std::vector<Member> ReadTar(const std::string& tar) {
  StringInputStream in(tar);
  TarReader r(&in);
  std::vector<Member> out;
  for (;;) {
    auto e = r.Next();
    EXPECT_TRUE(e.ok()) << e.status();
    if (!e.ok() || !e->has_value()) return out;
    Member m{**e, ""};
    char buf[4096];
    for (;;) {
      auto n = r.ReadData(absl::MakeSpan(buf));
      EXPECT_TRUE(n.ok()) << n.status();
      if (!n.ok() || *n == 0) break;
      m.data.append(buf, *n);
    }
    out.push_back(std::move(m));
  }
}

// Inflates the gzip member starting at `blob[offset]`, returning up to `n` bytes.
std::string GunzipAt(const std::string& blob, uint64_t offset, size_t n) {
  std::string out(n, '\0');
  EXPECT_TRUE(GunzipRange(std::string_view(blob).substr(offset), 0, absl::MakeSpan(out)).ok());
  return out;
}

std::vector<std::string> Names(const std::vector<Member>& members) {
  std::vector<std::string> out;
  for (const Member& m : members) out.push_back(m.entry.name);
  return out;
}

TEST(ConvertEstargzTest, OutputIsATarGzWithTheSameMembers) {
  std::vector<Member> in = SampleMembers();
  ConvertOptions o;
  o.chunk_size = kChunk;
  std::string blob;
  auto r = Convert(MakeTar(in), o, &blob);
  ASSERT_TRUE(r.ok()) << r.status();
  std::string tar = Decompress(blob);
  std::vector<Member> out = ReadTar(tar);
  ASSERT_EQ(out.size(), in.size() + 2);
  EXPECT_EQ(out.front().entry.name, ".no.prefetch.landmark");
  EXPECT_EQ(out.front().data, "\x0f");
  EXPECT_EQ(out.back().entry.name, "stargz.index.json");
  for (size_t i = 0; i < in.size(); ++i) {
    const Member& a = in[i];
    const Member& b = out[i + 1];
    EXPECT_EQ(a.entry.name, b.entry.name);
    EXPECT_EQ(a.entry.typeflag, b.entry.typeflag);
    EXPECT_EQ(a.entry.linkname, b.entry.linkname);
    EXPECT_EQ(a.entry.mode, b.entry.mode);
    EXPECT_EQ(a.entry.xattrs, b.entry.xattrs);
    EXPECT_EQ(a.data, b.data) << a.entry.name;
  }

  EXPECT_EQ(r->diff_id, Sha256::Of(tar));
  EXPECT_EQ(r->uncompressed_size, tar.size());
  EXPECT_EQ(r->blob_digest, Sha256::Of(blob));
  EXPECT_EQ(r->blob_size, blob.size());
  EXPECT_EQ(r->media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
  EXPECT_EQ(r->annotations.at(kEstargzTocDigestAnnotation), r->toc_digest.ToString());
  EXPECT_EQ(r->annotations.at(kEstargzUncompressedSizeAnnotation), std::to_string(tar.size()));
  EXPECT_EQ(Sha256::Of(out.back().data), r->toc_digest);
  // The hint lazysnapd sizes its first read with: the TOC member and the footer, exactly.
  auto footer = ParseEstargzFooter(blob);
  ASSERT_TRUE(footer.ok()) << footer.status();
  EXPECT_EQ(r->annotations.at(kLazysnapTocTailSizeAnnotation),
            std::to_string(blob.size() - footer->toc_offset));
}

TEST(ConvertEstargzTest, TocDescribesEveryChunk) {
  std::vector<Member> in = SampleMembers();
  ConvertOptions o;
  o.chunk_size = kChunk;
  std::string blob;
  auto r = Convert(MakeTar(in), o, &blob);
  ASSERT_TRUE(r.ok()) << r.status();

  // Footer → TOC member → TOC JSON.
  auto footer = ParseEstargzFooter(std::string_view(blob).substr(blob.size() - 51));
  ASSERT_TRUE(footer.ok()) << footer.status();
  EXPECT_EQ(blob.substr(blob.size() - 51), EncodeEstargzFooter(footer->toc_offset));
  std::string toc_tar = Decompress(blob.substr(footer->toc_offset, blob.size() - 51 - footer->toc_offset));
  std::vector<Member> toc_members = ReadTar(toc_tar);
  ASSERT_EQ(toc_members.size(), 1u);
  json toc = json::parse(toc_members[0].data);
  EXPECT_EQ(toc["version"], 1);

  std::map<std::string, std::string> contents;
  for (const Member& m : in) contents[m.entry.name] = m.data;
  contents[".no.prefetch.landmark"] = "\x0f";
  std::map<std::string, int> chunks_of;
  std::string current;
  uint64_t expect_next = 0;
  for (const json& e : toc["entries"]) {
    std::string name = e["name"];
    std::string type = e["type"];
    if (type == "reg" || type == "chunk") {
      const std::string& data = contents.at(name);
      if (type == "reg") {
        EXPECT_EQ(e["digest"], Sha256::Of(data).ToString()) << name;
        EXPECT_EQ(e.value("size", 0u), data.size());
        expect_next = 0;
      }
      if (data.empty()) {
        EXPECT_FALSE(e.contains("offset")) << name;
        EXPECT_FALSE(e.contains("chunkDigest")) << name;
        continue;
      }
      uint64_t off = e.value("chunkOffset", 0ull);
      EXPECT_EQ(off, expect_next) << name;
      uint64_t size = e.value("chunkSize", 0ull);
      if (size == 0) size = data.size() - off;  // 0: to the end of the file
      EXPECT_EQ(size, std::min<uint64_t>(kChunk, data.size() - off)) << name;
      // A chunk exactly chunk_size long records chunkSize, a shorter last one does not.
      EXPECT_EQ(e.contains("chunkSize"), size == kChunk) << name;
      std::string chunk = data.substr(off, size);
      EXPECT_EQ(e["chunkDigest"], Sha256::Of(chunk).ToString()) << name;
      EXPECT_EQ(GunzipAt(blob, e["offset"], size), chunk) << name << "@" << off;
      expect_next = off + size;
      chunks_of[name]++;
    } else if (name == "./etc/link") {
      EXPECT_EQ(type, "symlink");
      EXPECT_EQ(e["linkName"], "small");
    } else if (name == "./etc/hard") {
      EXPECT_EQ(type, "hardlink");
      EXPECT_EQ(e["linkName"], "./etc/small");
    }
    if (name == "./etc/xattr" && type == "reg") {
      EXPECT_EQ(e["xattrs"]["user.k"], "dgA8Jj4=");  // base64 of "v\0<&>"
    }
    if (name == "./etc/small") {
      EXPECT_EQ(e["mode"], 0644);
      EXPECT_EQ(e["uid"], 1000);
      EXPECT_EQ(e["modtime"], "2023-11-14T22:13:20Z");
    }
  }
  EXPECT_EQ(chunks_of["./etc/exact"], 1);
  EXPECT_EQ(chunks_of["./etc/plus1"], 2);
  EXPECT_EQ(chunks_of["./etc/big"], 4);
  EXPECT_EQ(chunks_of.count("./etc/empty"), 0u);
  // userName is written for the first entry of a uid only (as the Go writer does).
  int unames = 0;
  for (const json& e : toc["entries"]) unames += e.contains("userName");
  EXPECT_EQ(unames, 1);
}

TEST(ConvertEstargzTest, PrioritizedFilesComeFirstThenLandmark) {
  std::vector<Member> in = SampleMembers();
  ConvertOptions o;
  o.chunk_size = kChunk;
  o.prioritized_files = {"/etc/big", "etc/hard", "/not/there"};
  std::string blob;
  auto r = Convert(MakeTar(in), o, &blob);
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<std::string> names = Names(ReadTar(Decompress(blob)));
  ASSERT_GE(names.size(), 7u);
  // Parents first (root, etc), then big; the hard link's target before the link.
  EXPECT_THAT(std::vector<std::string>(names.begin(), names.begin() + 7),
              ElementsAre("./", "./etc/", "./etc/big", "./etc/small", "./etc/hard",
                          ".prefetch.landmark", "./etc/empty"));
  EXPECT_THAT(r->missed_prioritized_files, ElementsAre("/not/there"));
  EXPECT_EQ(names.back(), "stargz.index.json");
}

TEST(ConvertEstargzTest, LaterDuplicateWinsAndOldLandmarksAndTocAreDropped) {
  std::vector<Member> in = {{Entry("a"), "first"},
                            {Entry("b"), "b"},
                            {Entry(".prefetch.landmark"), "\x0f"},
                            {Entry("stargz.index.json"), "{}"},
                            {Entry("./a"), "second"}};
  ConvertOptions o;
  std::string blob;
  auto r = Convert(MakeTar(in), o, &blob);
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<Member> out = ReadTar(Decompress(blob));
  EXPECT_THAT(Names(out), ElementsAre(".no.prefetch.landmark", "b", "./a", "stargz.index.json"));
  EXPECT_EQ(out[2].data, "second");
}

TEST(ConvertEstargzTest, ConvertingItsOwnOutputAgainGivesTheSameLayer) {
  ConvertOptions o;
  o.chunk_size = kChunk;
  std::string once, twice, via_zstd;
  ASSERT_TRUE(Convert(MakeTar(SampleMembers()), o, &once).ok());
  auto r = Convert(once, o, &twice);  // landmark and TOC of the input are replaced
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(once, twice);
  ConvertOptions z = o;
  z.format = LayerFormat::kZstdChunked;
  std::string zst;
  ASSERT_TRUE(Convert(MakeTar(SampleMembers()), z, &zst).ok());
  ASSERT_TRUE(Convert(zst, o, &via_zstd).ok());
  EXPECT_EQ(once, via_zstd);
}

TEST(ConvertTest, DeterministicWhateverTheThreads) {
  std::string input = MakeTar(SampleMembers());
  for (LayerFormat f : {LayerFormat::kEstargz, LayerFormat::kZstdChunked}) {
    ConvertOptions o;
    o.format = f;
    o.chunk_size = kChunk;
    o.threads = 1;
    std::string a, b, c;
    ASSERT_TRUE(Convert(input, o, &a).ok());
    o.threads = 3;
    ASSERT_TRUE(Convert(input, o, &b).ok());
    ASSERT_TRUE(Convert(input, o, &c).ok());
    EXPECT_EQ(a, b);
    EXPECT_EQ(b, c);
  }
}

TEST(ConvertTest, CompressedInputsGiveTheSameOutput) {
  std::string input = MakeTar(SampleMembers());
  std::string gz(compressBound(input.size()) + 64, '\0');
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  zs.next_in = reinterpret_cast<Bytef*>(input.data());
  zs.avail_in = input.size();
  zs.next_out = reinterpret_cast<Bytef*>(gz.data());
  zs.avail_out = gz.size();
  ASSERT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  gz.resize(zs.total_out);
  deflateEnd(&zs);
  std::string zst(ZSTD_compressBound(input.size()), '\0');
  zst.resize(ZSTD_compress(zst.data(), zst.size(), input.data(), input.size(), 3));
  ConvertOptions o;
  std::string a, b, c;
  ASSERT_TRUE(Convert(input, o, &a).ok());
  ASSERT_TRUE(Convert(gz, o, &b).ok());
  ASSERT_TRUE(Convert(zst, o, &c).ok());
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
}

TEST(ConvertTest, CorruptInputIsAClearError) {
  std::string input = MakeTar(SampleMembers());
  ConvertOptions o;
  std::string blob;
  std::string bad = input;
  bad[1024 + 100] ^= 0x40;  // a header byte: checksum mismatch
  auto r = Convert(bad, o, &blob);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(r.status().message(), ::testing::HasSubstr("checksum"));

  r = Convert(input.substr(0, input.size() / 2 + 7), o, &blob);
  EXPECT_FALSE(r.ok());

  r = Convert(std::string("\x1f\x8b\x08garbage-not-gzip", 19), o, &blob);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);

  r = Convert(MakeTar({{Entry("../escape"), "x"}}), o, &blob);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);

  o.chunk_size = 100;
  EXPECT_EQ(Convert(input, o, &blob).status().code(), absl::StatusCode::kInvalidArgument);
  o.chunk_size = kChunk;
  o.level = 13;  // gzip levels are 1..12
  EXPECT_EQ(Convert(input, o, &blob).status().code(), absl::StatusCode::kInvalidArgument);
  o.format = LayerFormat::kZstdChunked;
  o.level = 20;  // zstd levels are 1..19
  EXPECT_EQ(Convert(input, o, &blob).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ConvertZstdChunkedTest, TarStreamKeptByteForByte) {
  std::string input = MakeTar(SampleMembers());
  input.append(10240 - input.size() % 10240, '\0');  // record padding, as GNU tar writes
  ConvertOptions o;
  o.format = LayerFormat::kZstdChunked;
  o.chunk_size = kChunk;
  std::string blob;
  auto r = Convert(input, o, &blob);
  ASSERT_TRUE(r.ok()) << r.status();
  std::string tar = Decompress(blob);
  EXPECT_EQ(tar, input);
  EXPECT_EQ(r->diff_id, Sha256::Of(input));
  EXPECT_EQ(r->uncompressed_size, input.size());
  EXPECT_EQ(r->media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
  EXPECT_EQ(r->annotations.at(kEstargzTocDigestAnnotation), r->toc_digest.ToString());
  EXPECT_EQ(r->annotations.at(kEstargzUncompressedSizeAnnotation), std::to_string(input.size()));

  // Annotations and footer agree, and the manifest is where they say.
  MemoryBlobSource src(blob);
  OpenOptions oo;
  auto loc = LocateZstdChunked(src, oo);
  ASSERT_TRUE(loc.ok()) << loc.status();
  auto from_annotations = ZstdChunkedLocationFromAnnotations(r->annotations);
  ASSERT_TRUE(from_annotations.ok()) << from_annotations.status();
  EXPECT_EQ(from_annotations->manifest_offset, loc->manifest_offset);
  EXPECT_EQ(from_annotations->tar_split_offset, loc->tar_split_offset);
  EXPECT_EQ(from_annotations->tar_split_length, loc->tar_split_length);
  EXPECT_EQ(r->annotations.at(kLazysnapTocTailSizeAnnotation),
            std::to_string(blob.size() - (loc->manifest_offset - kZstdSkippableHeaderSize)));
  oo.annotations = r->annotations;
  auto raw = ReadZstdChunkedToc(src, oo);
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ(Sha256::Of(raw->json), r->toc_digest);
  json toc = json::parse(raw->json);

  // The tar-split rebuilds the tar stream exactly, with the file contents from the TOC.
  std::map<std::string, std::string> contents;
  for (const Member& m : SampleMembers()) contents[m.entry.name] = m.data;
  auto ts = ReadZstdChunkedTarSplit(src, *loc, Sha256::Parse(std::string(toc["tarSplitDigest"])).value(),
                                    1 << 30);
  ASSERT_TRUE(ts.ok()) << ts.status();
  std::string rebuilt;
  ASSERT_TRUE(ForEachTarSplitEntry(*ts, [&](const TarSplitEntry& e) {
                if (e.type == TarSplitEntry::kSegment) {
                  rebuilt += e.payload;
                } else {
                  rebuilt += contents.at(e.name);
                }
                return absl::OkStatus();
              }).ok());
  EXPECT_EQ(rebuilt, input);

  // Every chunk's frame decodes to its bytes; single-chunk files have no chunk fields.
  int chunk_entries = 0;
  for (const json& e : toc["entries"]) {
    std::string name = e["name"];
    if (e["type"] == "chunk") ++chunk_entries;
    if (e["type"] == "reg" && contents.at(name).empty()) {
      EXPECT_FALSE(e.contains("digest"));
      EXPECT_FALSE(e.contains("offset"));
    }
    if (e["type"] == "reg" && !contents.at(name).empty()) {
      EXPECT_EQ(e["digest"], Sha256::Of(contents.at(name)).ToString());
      EXPECT_GT(e["endOffset"].get<uint64_t>(), e["offset"].get<uint64_t>());
      EXPECT_EQ(e.contains("chunkDigest"), contents.at(name).size() > kChunk) << name;
    }
  }
  EXPECT_EQ(chunk_entries, 1 + 3);  // plus1: 1 more chunk, big: 3 more
}

// Reads every regular file back through the reader side (format/layer.h).
void ExpectReadableThroughOpenLayer(LayerFormat f, const std::vector<std::string>& prioritized) {
  std::vector<Member> in = SampleMembers();
  ConvertOptions o;
  o.format = f;
  o.chunk_size = kChunk;
  o.prioritized_files = prioritized;
  std::string blob;
  auto r = Convert(MakeTar(in), o, &blob);
  ASSERT_TRUE(r.ok()) << r.status();
  MemoryBlobSource src(blob);
  OpenOptions oo;
  oo.annotations = r->annotations;
  oo.expected_toc_digest = r->toc_digest;
  auto layer = OpenLayer(src, oo);
  ASSERT_TRUE(layer.ok()) << layer.status();
  for (const Member& m : in) {
    std::string path = *CleanEntryName(m.entry.name);
    EntryId id = (*layer)->index.LookupPath(path);
    ASSERT_NE(id, kNoEntry) << path;
    if (m.entry.typeflag != '0') continue;
    auto data = ReadFile(src, **layer, id);
    ASSERT_TRUE(data.ok()) << path << ": " << data.status();
    EXPECT_EQ(*data, m.data) << path;
  }
  if (f == LayerFormat::kEstargz && !prioritized.empty()) {
    EXPECT_TRUE((*layer)->index.prefetch_landmark_offset().has_value());
  }
}

TEST(ConvertTest, EveryFileReadsBackThroughOpenLayer) {
  ExpectReadableThroughOpenLayer(LayerFormat::kEstargz, {});
  ExpectReadableThroughOpenLayer(LayerFormat::kEstargz, {"etc/big"});
  ExpectReadableThroughOpenLayer(LayerFormat::kZstdChunked, {});
  ExpectReadableThroughOpenLayer(LayerFormat::kZstdChunked, {"etc/plus1"});
}

TEST(ConvertTest, ProgressRisesToTheUncompressedSize) {
  std::vector<Member> in;
  for (int i = 0; i < 6; ++i) in.push_back({Entry("f" + std::to_string(i)), Pattern(5 << 20, i)});
  ConvertOptions o;
  std::vector<uint64_t> seen;
  o.progress = [&](uint64_t n) { seen.push_back(n); };
  std::string blob;
  auto r = Convert(MakeTar(in), o, &blob);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_GE(seen.size(), 2u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(seen.back(), r->uncompressed_size);
}

TEST(ConvertTest, EmptyLayer) {
  for (LayerFormat f : {LayerFormat::kEstargz, LayerFormat::kZstdChunked}) {
    ConvertOptions o;
    o.format = f;
    std::string blob;
    auto r = Convert(TarTrailer(), o, &blob);
    ASSERT_TRUE(r.ok()) << r.status();
    MemoryBlobSource src(blob);
    OpenOptions oo;
    oo.annotations = r->annotations;
    EXPECT_TRUE(OpenLayer(src, oo).ok());
  }
}

}  // namespace
}  // namespace lazysnap

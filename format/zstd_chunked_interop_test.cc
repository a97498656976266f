// zstd:chunked interoperability with containers/storage, driven by
// test/interop/zstd_chunked/run.sh through environment variables; each test skips when its
// variables are unset, so the binary is harmless in the ordinary unit-test run.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "base/blob_source.h"
#include "base/stream.h"
#include "format/convert.h"
#include "format/layer.h"
#include "format/zstd_chunked.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace lazysnap {
namespace {

bool FindChecksumForTest(const std::map<std::string, std::string>& a) {
  return a.count("io.github.containers.zstd-chunked.manifest-checksum") > 0 ||
         a.count("io.containers.zstd-chunked.manifest-checksum") > 0;
}

// ---------------------------------------------------------------------------------------
// Interop with containers/storage (test/interop/zstd_chunked/run.sh sets these variables):
//   LAZYSNAP_INTEROP_ZSTD_CHUNKED_BLOB         a layer written by containers/storage
//   LAZYSNAP_INTEROP_ZSTD_CHUNKED_ANNOTATIONS  JSON object: the descriptor annotations it made
//   LAZYSNAP_INTEROP_ZSTD_CHUNKED_ROOT         the original tar, extracted
// Every regular file is rebuilt from its chunks, each chunk verified, and compared with the
// original.

std::string ReadLocalFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string CleanName(std::string name) {
  while (name.rfind("./", 0) == 0) name.erase(0, 2);
  while (!name.empty() && name.front() == '/') name.erase(0, 1);
  while (!name.empty() && name.back() == '/') name.pop_back();
  return name;
}

TEST(ZstdChunkedInterop, ReadsContainersStorageLayer) {
  const char* blob_path = std::getenv("LAZYSNAP_INTEROP_ZSTD_CHUNKED_BLOB");
  const char* ann_path = std::getenv("LAZYSNAP_INTEROP_ZSTD_CHUNKED_ANNOTATIONS");
  const char* root_env = std::getenv("LAZYSNAP_INTEROP_ZSTD_CHUNKED_ROOT");
  if (blob_path == nullptr || ann_path == nullptr || root_env == nullptr) {
    GTEST_SKIP() << "run test/interop/zstd_chunked/run.sh";
  }
  const std::filesystem::path root(root_env);
  auto blob = FileBlobSource::Open(blob_path);
  ASSERT_TRUE(blob.ok()) << blob.status();
  nlohmann::json ann = nlohmann::json::parse(ReadLocalFile(ann_path));
  OpenOptions with;
  for (auto& [k, v] : ann.items()) with.annotations[k] = v.get<std::string>();
  ASSERT_TRUE(FindChecksumForTest(with.annotations)) << "writer made no manifest-checksum";

  // Found by the annotations (checksum verified) and by the footer alone: same TOC.
  auto toc = ReadZstdChunkedToc(**blob, with);
  ASSERT_TRUE(toc.ok()) << toc.status();
  auto by_footer = ReadZstdChunkedToc(**blob, OpenOptions());
  ASSERT_TRUE(by_footer.ok()) << by_footer.status();
  EXPECT_EQ(toc->json, by_footer->json);
  EXPECT_EQ(toc->toc_offset, by_footer->toc_offset);

  nlohmann::json j = nlohmann::json::parse(toc->json);
  const auto& entries = j.at("entries");
  size_t regular = 0, chunks_checked = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    const std::string type = e.at("type");
    const std::string name = CleanName(e.at("name"));
    SCOPED_TRACE(name);
    const std::filesystem::path local = root / name;
    if (type == "dir") {
      EXPECT_TRUE(std::filesystem::is_directory(std::filesystem::symlink_status(local)));
      continue;
    }
    if (type == "symlink") {
      EXPECT_EQ(std::filesystem::read_symlink(local).string(), e.value("linkName", ""));
      continue;
    }
    if (type == "hardlink") {
      ++regular;
      EXPECT_TRUE(ReadLocalFile(local) ==
                  ReadLocalFile(root / CleanName(e.value("linkName", ""))));
      continue;
    }
    if (type != "reg") continue;
    ++regular;
    // The file's chunks: this entry, then any "chunk" entries right after it.
    struct Piece {
      uint64_t offset, end, size;
      std::string digest;
      bool zeros;
    };
    std::vector<Piece> pieces;
    const uint64_t size = e.value("size", uint64_t{0});
    if (!e.contains("chunkSize")) {
      pieces.push_back({e.value("offset", uint64_t{0}), e.value("endOffset", uint64_t{0}), size,
                        e.value("digest", ""), false});
    } else {
      pieces.push_back({e.value("offset", uint64_t{0}), 0, e.at("chunkSize"),
                        e.value("chunkDigest", ""), e.value("chunkType", "") == "zeros"});
      while (i + 1 < entries.size() && entries[i + 1].at("type") == "chunk") {
        const auto& c = entries[++i];
        pieces.back().end = c.at("offset");
        pieces.push_back({c.at("offset"), 0, c.at("chunkSize"), c.value("chunkDigest", ""),
                          c.value("chunkType", "") == "zeros"});
      }
      pieces.back().end = e.value("endOffset", uint64_t{0});
    }
    std::string data;
    for (const Piece& p : pieces) {
      if (size == 0) break;
      ASSERT_LE(p.offset, p.end);
      auto compressed = ReadRange(**blob, p.offset, p.end - p.offset);
      ASSERT_TRUE(compressed.ok()) << compressed.status();
      auto plain = DecompressZstdExact(*compressed, p.size, name);
      ASSERT_TRUE(plain.ok()) << plain.status();
      if (p.zeros) {
        EXPECT_EQ(*plain, std::string(p.size, '\0'));
      }
      ASSERT_FALSE(p.digest.empty());
      EXPECT_EQ(Sha256::Of(*plain).ToString(), p.digest);
      data += *plain;
      ++chunks_checked;
    }
    EXPECT_EQ(data.size(), size);
    const std::string original = ReadLocalFile(local);
    EXPECT_TRUE(data == original) << "content differs from the original: " << data.size()
                                  << " bytes vs " << original.size();
  }
  // Every regular file of the original is in the TOC.
  size_t local_regular = 0;
  for (const auto& f : std::filesystem::recursive_directory_iterator(root)) {
    if (f.is_regular_file() && !f.is_symlink()) ++local_regular;
  }
  EXPECT_EQ(regular, local_regular);
  EXPECT_GT(chunks_checked, 0u);

  // And through the reader the snapshotter uses: OpenLayer (format detection, TOC parsing into
  // a LayerIndex) and ReadFile (chunk reads, each verified) give every file as in the original.
  auto layer = OpenLayer(**blob, with);
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ((*layer)->index.format(), LayerFormat::kZstdChunked);
  size_t read_through_layer = 0;
  for (EntryId id = 0; id < (*layer)->index.size(); ++id) {
    const Entry& e = (*layer)->index.entry(id);
    const std::string path = (*layer)->index.Path(id);
    SCOPED_TRACE(path);
    const std::filesystem::path local = root / path;
    if (S_ISREG(e.mode)) {
      auto data = ReadFile(**blob, **layer, id);
      ASSERT_TRUE(data.ok()) << data.status();
      const std::string original = ReadLocalFile(local);
      EXPECT_TRUE(*data == original) << "OpenLayer/ReadFile: content differs, " << data->size()
                                     << " bytes vs " << original.size();
      ++read_through_layer;
    } else if (S_ISLNK(e.mode)) {
      EXPECT_EQ(std::filesystem::read_symlink(local).string(),
                (*layer)->index.link(id));
    } else if (S_ISDIR(e.mode)) {
      EXPECT_TRUE(std::filesystem::is_directory(std::filesystem::symlink_status(local)));
    }
    if (id == kRootEntry) continue;  // may be synthesized
    struct stat st;
    ASSERT_EQ(lstat(local.c_str(), &st), 0);
    EXPECT_EQ(e.mode & S_IFMT, st.st_mode & S_IFMT);
    if (!S_ISLNK(e.mode)) {
      EXPECT_EQ(e.mode & 07777, st.st_mode & 07777);
    }
    EXPECT_EQ((*layer)->index.attrs(id).uid, st.st_uid);
    EXPECT_EQ((*layer)->index.attrs(id).gid, st.st_gid);
    if (!S_ISDIR(e.mode)) {
      EXPECT_EQ((*layer)->index.mtime(id).tv_sec, st.st_mtim.tv_sec);
    }
    if (S_ISCHR(e.mode) || S_ISBLK(e.mode)) {
      EXPECT_EQ(e.dev_major, major(st.st_rdev));
      EXPECT_EQ(e.dev_minor, minor(st.st_rdev));
    }
    if (S_ISREG(e.mode) || S_ISDIR(e.mode)) {
      std::map<std::string, std::string> want, got;
      std::string names(65536, '\0');
      ssize_t n = llistxattr(local.c_str(), names.data(), names.size());
      ASSERT_GE(n, 0);
      for (size_t at = 0; at < static_cast<size_t>(n); at += strlen(names.data() + at) + 1) {
        std::string name(names.data() + at);
        std::string value(65536, '\0');
        ssize_t vn = lgetxattr(local.c_str(), name.c_str(), value.data(), value.size());
        ASSERT_GE(vn, 0) << name;
        want[name] = value.substr(0, vn);
      }
      for (const Xattr& x : (*layer)->index.XattrsOf(id)) {
        got[std::string((*layer)->index.str(x.name))] = std::string((*layer)->index.str(x.value));
      }
      EXPECT_EQ(got, want);
    }
  }
  EXPECT_EQ(read_through_layer, local_regular);
  std::cout << "interop: " << entries.size() << " TOC entries, " << regular
            << " regular files, " << chunks_checked << " chunks verified\n";
}

// The other direction (run.sh, then containers/storage's reader checks the result):
//   LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_TAR          input tar
//   LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_OUT          where lazysnap writes the zstd:chunked layer
//   LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_ANNOTATIONS  where its descriptor annotations go (JSON)
TEST(ZstdChunkedInterop, WritesLayerForContainersStorage) {
  const char* tar = std::getenv("LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_TAR");
  const char* out_path = std::getenv("LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_OUT");
  const char* ann_path = std::getenv("LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_ANNOTATIONS");
  if (tar == nullptr || out_path == nullptr || ann_path == nullptr) {
    GTEST_SKIP() << "run test/interop/zstd_chunked/run.sh";
  }
  auto in = FileInputStream::Open(tar);
  ASSERT_TRUE(in.ok()) << in.status();
  auto out = FileOutputStream::Create(out_path);
  ASSERT_TRUE(out.ok()) << out.status();
  ConvertOptions options;
  options.format = LayerFormat::kZstdChunked;
  options.chunk_size = 64 << 10;  // several chunks per large file
  auto r = ConvertLayer(**in, **out, options);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE((*out)->Close().ok());
  nlohmann::json ann = nlohmann::json::object();
  for (const auto& [k, v] : r->annotations) ann[k] = v;
  ASSERT_TRUE(WriteFileAtomically(ann_path, ann.dump(2) + "\n").ok());

  // lazysnap finds its own TOC both ways.
  auto blob = FileBlobSource::Open(out_path);
  ASSERT_TRUE(blob.ok()) << blob.status();
  OpenOptions with;
  with.annotations = r->annotations;
  auto toc = ReadZstdChunkedToc(**blob, with);
  ASSERT_TRUE(toc.ok()) << toc.status();
  auto by_footer = ReadZstdChunkedToc(**blob, OpenOptions());
  ASSERT_TRUE(by_footer.ok()) << by_footer.status();
  EXPECT_EQ(toc->json, by_footer->json);
  EXPECT_EQ(Sha256::Of(toc->json), r->toc_digest);
}

}  // namespace
}  // namespace lazysnap

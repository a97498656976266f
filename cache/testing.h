// Test helpers for cache/: a temporary directory, a decoder for "uncompressed" test layers, a
// blob source that counts and can corrupt or fail reads, and a builder of synthetic layers.
// Header-only; for tests and benchmarks only.
#ifndef LAZYSNAP_CACHE_TESTING_H_
#define LAZYSNAP_CACHE_TESTING_H_

#include <stdlib.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "base/blob_source.h"
#include "base/digest.h"
#include "base/strings.h"
#include "cache/chunk_decoder.h"
#include "format/index.h"

namespace lazysnap::cache_testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = getenv("TMPDIR");
    std::string tmpl = StrCat(base && *base ? base : "/tmp", "/lazysnap-cache-XXXXXX");
    path_ = mkdtemp(tmpl.data()) ? tmpl : std::string();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Test layers store chunk data uncompressed in the blob: "decoding" copies
// [inner_offset, inner_offset + size) out of the fetched range, then checks the digest like
// the real decoder does (fingerprints under the all-zero DigestKey). Thread-safe.
class PlainChunkDecoder : public ChunkDecoder {
 public:
  absl::Status Decode(const Chunk& chunk, std::string_view compressed,
                      absl::Span<char> out) override {
    if (compressed.size() != chunk.compressed_size || out.size() != chunk.size ||
        uint64_t{chunk.inner_offset} + chunk.size > compressed.size()) {
      return absl::DataLossError("chunk sizes do not fit");
    }
    std::memcpy(out.data(), compressed.data() + chunk.inner_offset, chunk.size);
    if (ChunkDigest::Of(DigestKey(), Sha256::Of(std::string_view(out.data(), out.size()))) !=
        chunk.digest) {
      return absl::DataLossError("chunk digest mismatch");
    }
    return absl::OkStatus();
  }
};

// Forwards to a MemoryBlobSource, recording every request; a hook may fail or alter a read.
// Thread-safe.
class RecordingBlobSource : public BlobSource {
 public:
  struct Request {
    uint64_t offset;
    uint64_t size;
  };
  // Called after a successful read; may modify `buf` or return an error.
  using Hook = std::function<absl::Status(uint64_t offset, absl::Span<char> buf)>;

  explicit RecordingBlobSource(std::string data) : inner_(std::move(data)) {}
  uint64_t Size() const override { return inner_.Size(); }
  absl::Status ReadAt(uint64_t offset, absl::Span<char> buf) override {
    Hook hook;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back({offset, buf.size()});
      hook = hook_;
    }
    absl::Status s = inner_.ReadAt(offset, buf);
    if (s.ok() && hook) s = hook(offset, buf);
    return s;
  }
  void set_hook(Hook hook) {
    absl::MutexLock lock(&mu_);
    hook_ = std::move(hook);
  }
  std::vector<Request> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  // How many requests covered blob byte `offset`.
  int TimesRead(uint64_t offset) const {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const Request& r : requests_) n += offset >= r.offset && offset < r.offset + r.size;
    return n;
  }
  void clear() {
    absl::MutexLock lock(&mu_);
    requests_.clear();
  }

 private:
  MemoryBlobSource inner_;
  mutable absl::Mutex mu_;
  std::vector<Request> requests_ ABSL_GUARDED_BY(mu_);
  Hook hook_ ABSL_GUARDED_BY(mu_);
};

// A synthetic layer: regular files whose data is split into chunks laid out back to back in
// a blob (optionally with a gap between files), plus the entries and chunk table the cache
// reads. Entry i is file i (no directories: the cache only needs files' chunk ranges).
struct TestLayer {
  std::vector<Entry> files;
  std::vector<Chunk> chunks;
  std::vector<std::string> contents;  // file data, by file
  std::string blob;
};

// Deterministic pseudo-random bytes.
inline std::string PseudoRandom(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x);
  }
  return s;
}

// Files of the given sizes, chunked at `chunk_size`, separated in the blob by `gap` bytes.
inline TestLayer MakeTestLayer(const std::vector<uint64_t>& file_sizes, uint32_t chunk_size,
                               uint64_t gap = 0, uint64_t seed = 1) {
  TestLayer l;
  for (size_t f = 0; f < file_sizes.size(); f++) {
    Entry e;
    e.size = file_sizes[f];
    e.mode = S_IFREG | 0644;
    e.inode = static_cast<EntryId>(f);
    e.chunks_begin = static_cast<uint32_t>(l.chunks.size());
    std::string data = PseudoRandom(file_sizes[f], seed * 1000003 + f);
    for (uint64_t off = 0; off < data.size(); off += chunk_size) {
      Chunk c;
      c.size = static_cast<uint32_t>(std::min<uint64_t>(chunk_size, data.size() - off));
      c.file_offset = off;
      c.compressed_offset = l.blob.size();
      c.compressed_size = c.size;
      c.entry = static_cast<EntryId>(f);
      c.digest = ChunkDigest::Of(DigestKey(), Sha256::Of(std::string_view(data).substr(off, c.size)));
      c.has_digest = true;
      l.blob.append(data, off, c.size);
      l.chunks.push_back(c);
    }
    e.chunks_count = static_cast<uint32_t>(l.chunks.size()) - e.chunks_begin;
    l.blob.append(gap, 'g');
    l.files.push_back(e);
    l.contents.push_back(std::move(data));
  }
  return l;
}

}  // namespace lazysnap::cache_testing

#endif  // LAZYSNAP_CACHE_TESTING_H_

// An OCI image layout directory (image-spec layout.md): `oci-layout`, `index.json` (tags as
// `org.opencontainers.image.ref.name` annotations) and `blobs/sha256/<hex>`. Blobs are written
// to an unnamed temporary file (O_TMPFILE; a named one in the layout where unsupported) and
// linked or renamed into place once complete and verified, so a blob path never holds partial
// content and a killed conversion leaves no debris; blobs read back are verified.
#ifndef LAZYSNAP_FORMAT_OCI_LAYOUT_H_
#define LAZYSNAP_FORMAT_OCI_LAYOUT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/digest.h"
#include "base/stream.h"
#include "format/oci.h"

namespace lazysnap {

// Streams one new blob into a layout. Not thread-safe; use one writer per blob (any number
// of writers of one layout may run concurrently). Destroying an uncommitted writer removes
// its temporary file.
class BlobWriter : public OutputStream {
 public:
  ~BlobWriter() override;
  absl::Status Write(std::string_view data) override;
  // Flushes the data to disk, checks it hashes to `expected` when given (DataLoss if not)
  // and renames it to blobs/sha256/<hex>. Returns a descriptor (digest, size; media type
  // empty). The writer is finished afterwards, whatever the outcome.
  absl::StatusOr<Descriptor> Commit(std::optional<Sha256> expected = std::nullopt);
  uint64_t bytes() const { return bytes_; }

 private:
  friend class OciLayout;
  // `tmp_path` empty: `fd` is an unnamed O_TMPFILE file, linked into place on Commit (so
  // nothing is left behind even if the process dies); else a named temporary file.
  BlobWriter(int fd, std::string tmp_path, std::string blobs_dir)
      : fd_(fd), tmp_path_(std::move(tmp_path)), blobs_dir_(std::move(blobs_dir)) {}
  absl::Status Publish(int fd, const std::string& path);
  int fd_;
  std::string tmp_path_;
  std::string blobs_dir_;
  Sha256Hasher hasher_;
  uint64_t bytes_ = 0;
};

// One layout directory. Reading methods are thread-safe; blob writes from many threads are
// safe; index.json is only changed through UpdateIndex, which also excludes other processes
// that use it (flock on the directory).
class OciLayout {
 public:
  // Opens an existing layout: `oci-layout` must declare imageLayoutVersion 1.0.0.
  // NotFound if `dir` holds no layout, InvalidArgument if it is malformed.
  static absl::StatusOr<std::unique_ptr<OciLayout>> Open(const std::string& dir);
  // Opens `dir` as a layout, first creating it (directory, `oci-layout`, empty `index.json`,
  // `blobs/sha256`) if it does not exist or is an empty directory.
  static absl::StatusOr<std::unique_ptr<OciLayout>> OpenOrCreate(const std::string& dir);

  const std::string& dir() const { return dir_; }
  std::string BlobPath(const Sha256& digest) const;
  bool HasBlob(const Sha256& digest) const;
  // Whether `other` is the same directory (same device and inode).
  bool SameDirectory(const OciLayout& other) const;

  // Reads a whole blob and verifies its digest (and size, when `expected_size` >= 0).
  // InvalidArgument if larger than `max_size`, NotFound if missing, DataLoss if corrupt.
  absl::StatusOr<std::string> ReadBlob(const Sha256& digest, int64_t expected_size,
                                       size_t max_size) const;
  // A stream over a blob that checks its digest (and size, when `expected_size` >= 0) as it
  // reaches the end: the final Read returns DataLoss instead of 0 if the content is wrong.
  absl::StatusOr<std::unique_ptr<InputStream>> OpenBlob(const Sha256& digest,
                                                        int64_t expected_size) const;
  absl::StatusOr<std::unique_ptr<BlobWriter>> NewBlobWriter() const;
  // Writes `data` as a blob (a no-op if present). Returns its descriptor with `media_type`.
  absl::StatusOr<Descriptor> WriteBlob(std::string_view media_type, std::string_view data) const;
  // Copies the blob `d` from `src` (verified) unless this layout already has it.
  absl::Status CopyBlobFrom(const OciLayout& src, const Descriptor& d) const;

  // Parses index.json.
  absl::StatusOr<Index> ReadIndex() const;
  // Reads index.json, lets `fn` change it and writes it back atomically, all under an
  // exclusive lock; nothing is written if `fn` fails.
  absl::Status UpdateIndex(const std::function<absl::Status(Index&)>& fn) const;
  // The index.json entry tagged `tag`; with an empty `tag`, the only entry. NotFound if none.
  absl::StatusOr<Descriptor> Resolve(std::string_view tag) const;

 private:
  explicit OciLayout(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

// Points `tag` at `d` in `index`: removes entries tagged `tag` and appends `d` with the
// ref.name annotation set. InvalidArgument if `tag` is not a valid OCI reference name.
absl::Status SetTag(Index& index, std::string_view tag, Descriptor d);

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_OCI_LAYOUT_H_

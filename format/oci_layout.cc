#include "format/oci_layout.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <regex>
#include <vector>

#include "absl/status/status.h"
#include "base/errors.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace lazysnap {
namespace {

constexpr char kLayoutFile[] = "oci-layout";
constexpr char kLayoutContent[] = R"({"imageLayoutVersion":"1.0.0"})";
constexpr size_t kMaxIndexBytes = 64u << 20;

absl::Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, StrCat("mkdir ", path));
  }
  return absl::OkStatus();
}

bool IsEmptyOrMissingDir(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return errno == ENOENT;
  if (!S_ISDIR(st.st_mode)) return false;
  struct stat layout;
  if (::stat(StrCat(dir, "/", kLayoutFile).c_str(), &layout) == 0) return false;
  // A directory without oci-layout: treat as empty only if it has no index.json either.
  struct stat index;
  return ::stat(StrCat(dir, "/index.json").c_str(), &index) != 0;
}

// Reads a small file of the layout, refusing (InvalidArgument) one larger than `max_bytes`.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoToStatus(errno, StrCat("stat ", path));
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::InvalidArgumentError(StrCat(path, ": ", st.st_size,
                                             " bytes exceeds the limit of ", max_bytes));
  }
  return ReadFileToString(path);
}

// Reads a blob front to back, hashing it; at the end compares with the expected digest/size.
class VerifyingInputStream : public InputStream {
 public:
  VerifyingInputStream(std::unique_ptr<InputStream> in, Sha256 digest, int64_t size,
                       std::string path)
      : in_(std::move(in)), digest_(digest), size_(size), path_(std::move(path)) {}

  absl::StatusOr<size_t> Read(absl::Span<char> buf) override {
    if (done_) return 0;
    ASSIGN_OR_RETURN(size_t n, in_->Read(buf));
    if (n > 0) {
      hasher_.Update(buf.data(), n);
      bytes_ += n;
      if (size_ >= 0 && bytes_ > static_cast<uint64_t>(size_)) {
        return absl::DataLossError(StrCat(path_, ": blob is larger than its descriptor's ", size_,
                                          " bytes"));
      }
      return n;
    }
    done_ = true;
    if (size_ >= 0 && bytes_ != static_cast<uint64_t>(size_)) {
      return absl::DataLossError(StrCat(path_, ": blob has ", bytes_, " bytes, descriptor says ",
                                        size_));
    }
    Sha256 got = hasher_.Finish();
    if (!(got == digest_)) {
      return absl::DataLossError(StrCat(path_, ": content hashes to ", got.ToString(),
                                        ", expected ", digest_.ToString()));
    }
    return 0;
  }

 private:
  std::unique_ptr<InputStream> in_;
  Sha256 digest_;
  int64_t size_;
  std::string path_;
  Sha256Hasher hasher_;
  uint64_t bytes_ = 0;
  bool done_ = false;
};

// Holds an exclusive flock on a directory for its lifetime.
class DirLock {
 public:
  static absl::StatusOr<DirLock> Acquire(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", dir));
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return ErrnoToStatus(e, StrCat("flock ", dir));
    }
    return DirLock(fd);
  }
  DirLock(DirLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  DirLock& operator=(DirLock&&) = delete;
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace

BlobWriter::~BlobWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    if (!tmp_path_.empty()) ::unlink(tmp_path_.c_str());
  }
}

absl::Status BlobWriter::Publish(int fd, const std::string& path) {
  if (!tmp_path_.empty()) {
    if (::rename(tmp_path_.c_str(), path.c_str()) != 0) {
      return ErrnoToStatus(errno, StrCat("rename ", tmp_path_, " to ", path));
    }
    return absl::OkStatus();
  }
  std::string proc = StrCat("/proc/self/fd/", fd);
  if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) != 0 &&
      errno != EEXIST) {  // EEXIST: the same content is already there
    return ErrnoToStatus(errno, StrCat("link blob to ", path));
  }
  return absl::OkStatus();
}

absl::Status BlobWriter::Write(std::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError("blob writer already committed");
  hasher_.Update(data);
  bytes_ += data.size();
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, StrCat("write blob in ", blobs_dir_));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<Descriptor> BlobWriter::Commit(std::optional<Sha256> expected) {
  if (fd_ < 0) return absl::FailedPreconditionError("blob writer already committed");
  int fd = fd_;
  fd_ = -1;
  absl::Status s;
  if (::fsync(fd) != 0) s = ErrnoToStatus(errno, StrCat("fsync blob in ", blobs_dir_));
  Descriptor d;
  d.digest = hasher_.Finish();
  d.size = static_cast<int64_t>(bytes_);
  if (s.ok() && expected && !(*expected == d.digest)) {
    s = absl::DataLossError(StrCat("blob content hashes to ", d.digest.ToString(),
                                   ", expected ", expected->ToString()));
  }
  if (s.ok()) s = Publish(fd, StrCat(blobs_dir_, "/", d.digest.Hex()));
  if (::close(fd) != 0 && s.ok()) s = ErrnoToStatus(errno, StrCat("close blob in ", blobs_dir_));
  if (!s.ok()) {
    if (!tmp_path_.empty()) ::unlink(tmp_path_.c_str());
    return s;
  }
  return d;
}

absl::StatusOr<std::unique_ptr<OciLayout>> OciLayout::Open(const std::string& dir) {
  std::string path = StrCat(dir, "/", kLayoutFile);
  auto content = ReadSmallFile(path, 4096);
  if (!content.ok()) {
    if (absl::IsNotFound(content.status())) {
      return absl::NotFoundError(StrCat(dir, ": not an OCI image layout (no oci-layout file)"));
    }
    return content.status();
  }
  try {
    auto j = nlohmann::json::parse(*content);
    if (!j.is_object() || !j.contains("imageLayoutVersion") ||
        !j["imageLayoutVersion"].is_string()) {
      return absl::InvalidArgumentError(StrCat(path, ": missing imageLayoutVersion"));
    }
    std::string version = j["imageLayoutVersion"].get<std::string>();
    if (version != "1.0.0") {
      return absl::InvalidArgumentError(
          StrCat(path, ": unsupported imageLayoutVersion '", version, "'"));
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(StrCat(path, ": malformed JSON: ", e.what()));
  }
  return std::unique_ptr<OciLayout>(new OciLayout(dir));
}

absl::StatusOr<std::unique_ptr<OciLayout>> OciLayout::OpenOrCreate(const std::string& dir) {
  if (IsEmptyOrMissingDir(dir)) {
    RETURN_IF_ERROR(MakeDir(dir));
    RETURN_IF_ERROR(MakeDir(StrCat(dir, "/blobs")));
    RETURN_IF_ERROR(MakeDir(StrCat(dir, "/blobs/sha256")));
    Index empty;
    empty.media_type = kOciIndexMediaType;
    RETURN_IF_ERROR(WriteFileAtomically(StrCat(dir, "/index.json"), SerializeIndex(empty)));
    RETURN_IF_ERROR(WriteFileAtomically(StrCat(dir, "/", kLayoutFile), kLayoutContent));
  }
  return Open(dir);
}

std::string OciLayout::BlobPath(const Sha256& digest) const {
  return StrCat(dir_, "/blobs/sha256/", digest.Hex());
}

bool OciLayout::HasBlob(const Sha256& digest) const {
  struct stat st;
  return ::stat(BlobPath(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool OciLayout::SameDirectory(const OciLayout& other) const {
  struct stat a, b;
  if (::stat(dir_.c_str(), &a) != 0 || ::stat(other.dir_.c_str(), &b) != 0) return false;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

absl::StatusOr<std::unique_ptr<InputStream>> OciLayout::OpenBlob(const Sha256& digest,
                                                                 int64_t expected_size) const {
  std::string path = BlobPath(digest);
  auto in = FileInputStream::Open(path);
  if (!in.ok()) {
    if (absl::IsNotFound(in.status())) {
      return absl::NotFoundError(StrCat(dir_, ": blob ", digest.ToString(), " not found"));
    }
    return in.status();
  }
  return std::unique_ptr<InputStream>(
      new VerifyingInputStream(*std::move(in), digest, expected_size, path));
}

absl::StatusOr<std::string> OciLayout::ReadBlob(const Sha256& digest, int64_t expected_size,
                                                size_t max_size) const {
  if (expected_size > static_cast<int64_t>(max_size)) {
    return absl::InvalidArgumentError(StrCat("blob ", digest.ToString(), " of ", expected_size,
                                             " bytes exceeds the limit of ", max_size));
  }
  ASSIGN_OR_RETURN(auto in, OpenBlob(digest, expected_size));
  std::string out;
  std::vector<char> buf(1 << 16);
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, in->Read(absl::MakeSpan(buf)));
    if (n == 0) break;
    if (out.size() + n > max_size) {
      return absl::InvalidArgumentError(
          StrCat("blob ", digest.ToString(), " exceeds the limit of ", max_size, " bytes"));
    }
    out.append(buf.data(), n);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<BlobWriter>> OciLayout::NewBlobWriter() const {
  // A layout made by another tool may lack blobs/sha256 until its first sha256 blob.
  RETURN_IF_ERROR(MakeDir(StrCat(dir_, "/blobs")));
  RETURN_IF_ERROR(MakeDir(StrCat(dir_, "/blobs/sha256")));
  std::string blobs = StrCat(dir_, "/blobs/sha256");
  if (::access("/proc/self/fd", X_OK) == 0) {
    int fd = ::open(blobs.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (fd >= 0) return std::unique_ptr<BlobWriter>(new BlobWriter(fd, "", blobs));
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
      return ErrnoToStatus(errno, StrCat("create temporary file in ", blobs));
    }
  }
  std::string tmpl = StrCat(dir_, "/.lazysnap-tmp-XXXXXX");
  std::vector<char> path(tmpl.begin(), tmpl.end());
  path.push_back('\0');
  int fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("create temporary file in ", dir_));
  ::fchmod(fd, 0644);
  return std::unique_ptr<BlobWriter>(new BlobWriter(fd, std::string(path.data()), blobs));
}

absl::StatusOr<Descriptor> OciLayout::WriteBlob(std::string_view media_type,
                                                std::string_view data) const {
  Descriptor d = DescriptorOf(media_type, data);
  if (HasBlob(d.digest)) return d;
  ASSIGN_OR_RETURN(auto w, NewBlobWriter());
  RETURN_IF_ERROR(w->Write(data));
  RETURN_IF_ERROR(w->Commit(d.digest).status());
  return d;
}

absl::Status OciLayout::CopyBlobFrom(const OciLayout& src, const Descriptor& d) const {
  if (HasBlob(d.digest)) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto in, src.OpenBlob(d.digest, d.size));
  ASSIGN_OR_RETURN(auto w, NewBlobWriter());
  std::vector<char> buf(1 << 20);
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, in->Read(absl::MakeSpan(buf)));
    if (n == 0) break;
    RETURN_IF_ERROR(w->Write(std::string_view(buf.data(), n)));
  }
  return w->Commit(d.digest).status();
}

absl::StatusOr<Index> OciLayout::ReadIndex() const {
  std::string path = StrCat(dir_, "/index.json");
  ASSIGN_OR_RETURN(std::string data, ReadSmallFile(path, kMaxIndexBytes));
  OciLimits limits;
  limits.max_json_bytes = kMaxIndexBytes;
  limits.max_descriptors = 1000000;
  auto index = ParseIndex(data, limits);
  if (!index.ok()) {
    return absl::InvalidArgumentError(StrCat(path, ": ", index.status().message()));
  }
  return index;
}

absl::Status OciLayout::UpdateIndex(const std::function<absl::Status(Index&)>& fn) const {
  ASSIGN_OR_RETURN(DirLock lock, DirLock::Acquire(dir_));
  ASSIGN_OR_RETURN(Index index, ReadIndex());
  RETURN_IF_ERROR(fn(index));
  return WriteFileAtomically(StrCat(dir_, "/index.json"), SerializeIndex(index));
}

absl::StatusOr<Descriptor> OciLayout::Resolve(std::string_view tag) const {
  ASSIGN_OR_RETURN(Index index, ReadIndex());
  if (tag.empty()) {
    if (index.manifests.size() == 1) return index.manifests[0];
    return absl::NotFoundError(StrCat(dir_, ": no tag given and the layout holds ",
                                      index.manifests.size(), " images; name one"));
  }
  for (const auto& d : index.manifests) {
    auto it = d.annotations.find(kRefNameAnnotation);
    if (it != d.annotations.end() && it->second == tag) return d;
  }
  return absl::NotFoundError(StrCat(dir_, ": no image tagged '", tag, "'"));
}

absl::Status SetTag(Index& index, std::string_view tag, Descriptor d) {
  // image-spec: ref ::= component ("/" component)*; component ::= alphanum (separator
  // alphanum)*; separator ::= [-._:@+] | "--".
  static const std::regex kRef(
      "[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*");
  if (tag.empty() || tag.size() > 1024 || !std::regex_match(tag.begin(), tag.end(), kRef)) {
    return absl::InvalidArgumentError(StrCat("invalid tag '", tag, "': use letters and digits, ",
                                             "separated by one of -._:@+/"));
  }
  std::vector<Descriptor> kept;
  for (auto& m : index.manifests) {
    auto it = m.annotations.find(kRefNameAnnotation);
    if (it == m.annotations.end() || it->second != tag) kept.push_back(std::move(m));
  }
  d.annotations[std::string(kRefNameAnnotation)] = std::string(tag);
  kept.push_back(std::move(d));
  index.manifests = std::move(kept);
  return absl::OkStatus();
}

}  // namespace lazysnap

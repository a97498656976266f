// SHA-256 digests in the OCI form "sha256:<64 lowercase hex>".
#ifndef LAZYSNAP_BASE_DIGEST_H_
#define LAZYSNAP_BASE_DIGEST_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace lazysnap {

// A raw SHA-256 value. Value type; cheap to copy.
struct Sha256 {
  std::array<uint8_t, 32> bytes{};

  // Parses "sha256:<hex>". Any other algorithm, length or character is InvalidArgument.
  static absl::StatusOr<Sha256> Parse(std::string_view digest);
  // One-shot hash of `data`.
  static Sha256 Of(std::string_view data);

  std::string Hex() const;
  std::string ToString() const { return "sha256:" + Hex(); }  // "sha256:<hex>"
  bool operator==(const Sha256&) const = default;
};

// Incremental SHA-256 (OpenSSL). Not thread-safe; one hasher per stream.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(std::string_view data);
  void Update(const void* data, size_t n) {
    Update(std::string_view(static_cast<const char*>(data), n));
  }
  // Returns the digest of everything updated so far and resets the hasher.
  Sha256 Finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lazysnap

#endif  // LAZYSNAP_BASE_DIGEST_H_

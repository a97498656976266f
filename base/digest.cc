#include "base/digest.h"

#include <openssl/evp.h>

#include "absl/status/status.h"
#include "base/strings.h"

namespace lazysnap {
namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}
}  // namespace

absl::StatusOr<Sha256> Sha256::Parse(std::string_view digest) {
  constexpr std::string_view kPrefix = "sha256:";
  if (digest.substr(0, kPrefix.size()) != kPrefix || digest.size() != kPrefix.size() + 64) {
    return absl::InvalidArgumentError(
        StrCat("not a sha256 digest: \"", digest.substr(0, 80), "\""));
  }
  Sha256 out;
  std::string_view hex = digest.substr(kPrefix.size());
  for (size_t i = 0; i < 32; ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(
          StrCat("bad hex in digest: \"", digest.substr(0, 80), "\""));
    }
    out.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

Sha256 Sha256::Of(std::string_view data) {
  Sha256Hasher h;
  h.Update(data);
  return h.Finish();
}

std::string Sha256::Hex() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(64, '0');
  for (size_t i = 0; i < 32; ++i) {
    s[2 * i] = kHex[bytes[i] >> 4];
    s[2 * i + 1] = kHex[bytes[i] & 15];
  }
  return s;
}

struct Sha256Hasher::Impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256Hasher::Sha256Hasher() : impl_(std::make_unique<Impl>()) {
  EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
}
Sha256Hasher::~Sha256Hasher() = default;

void Sha256Hasher::Update(std::string_view data) {
  EVP_DigestUpdate(impl_->ctx, data.data(), data.size());
}

Sha256 Sha256Hasher::Finish() {
  Sha256 out;
  unsigned int n = 0;
  EVP_DigestFinal_ex(impl_->ctx, out.bytes.data(), &n);
  EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
  return out;
}

}  // namespace lazysnap

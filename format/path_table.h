// PathTable: an open-addressing hash set of uint32 ids keyed by path strings, for building
// an index from a TOC (format/index_builder.cc). It stores 8 bytes per slot (a hash tag and
// the id); the caller maps ids back to keys with a `key_of` function. The hash is seeded per table, so crafted TOCs cannot predict
// collisions. Not thread-safe. Internal to format/.
#ifndef LAZYSNAP_FORMAT_PATH_TABLE_H_
#define LAZYSNAP_FORMAT_PATH_TABLE_H_

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace lazysnap {

class PathTable {
 public:
  static constexpr uint32_t kAbsent = 0xffffffffu;

  PathTable()
      : seed_(static_cast<uint64_t>(
                  std::chrono::steady_clock::now().time_since_epoch().count()) ^
              reinterpret_cast<uintptr_t>(this)) {
    Rehash(64, nullptr);
  }

  // Makes room for `n` keys without rehashing. Only before the first Insert.
  void Reserve(size_t n) {
    if (size_ == 0 && n * 2 > slots_.size()) Rehash(n * 2, nullptr);
  }

  // The id stored for `key`, or kAbsent. `key_of(id)` returns the key of a stored id.
  template <typename KeyOf>
  uint32_t Find(std::string_view key, const KeyOf& key_of) const {
    const uint64_t h = Hash(key);
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id == kAbsent) return kAbsent;
      if (s.tag == tag && key_of(s.id) == key) return s.id;
    }
  }

  // Stores `id` for `key` unless the key is there; returns the id stored for it.
  template <typename KeyOf>
  uint32_t FindOrInsert(std::string_view key, uint32_t id, const KeyOf& key_of) {
    if ((size_ + 1) * 2 > slots_.size()) Rehash(slots_.size() * 2, &key_of);
    const uint64_t h = Hash(key);
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    size_t i = h & mask_;
    for (;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id == kAbsent) break;
      if (s.tag == tag && key_of(s.id) == key) return s.id;
    }
    slots_[i] = Slot{tag, id};
    ++size_;
    return id;
  }

 private:
  struct Slot {
    uint32_t tag = 0;  // high half of the hash
    uint32_t id = kAbsent;
  };

  uint64_t Hash(std::string_view s) const {
    uint64_t h = seed_ ^ (s.size() * 0x9E3779B97F4A7C15ull);
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t w;
      memcpy(&w, s.data() + i, 8);
      h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
      h ^= h >> 29;
    }
    uint64_t w = 0;
    if (i < s.size()) memcpy(&w, s.data() + i, s.size() - i);
    h = (h ^ w) * 0x94d049bb133111ebull;
    h ^= h >> 32;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 29);
  }

  template <typename KeyOf>
  void Rehash(size_t want, const KeyOf* key_of) {
    size_t cap = 64;
    while (cap < want) cap *= 2;
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot());
    mask_ = cap - 1;
    for (const Slot& s : old) {
      if (s.id == kAbsent) continue;
      size_t i = Hash((*key_of)(s.id)) & mask_;
      while (slots_[i].id != kAbsent) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }
  void Rehash(size_t want, std::nullptr_t) {
    auto none = [](uint32_t) { return std::string_view(); };
    Rehash(want, &none);  // the table is empty: key_of is never called
  }

  const uint64_t seed_;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// Parses "sha256:<64 lowercase hex>" (what Sha256::Parse accepts) quickly; false otherwise.
inline bool ParseSha256Fast(std::string_view s, uint8_t out[32]) {
  if (s.size() != 71 || memcmp(s.data(), "sha256:", 7) != 0) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int bad = 0;
  for (size_t i = 0; i < 32; ++i) {
    int hi = nibble(s[7 + 2 * i]), lo = nibble(s[8 + 2 * i]);
    bad |= hi | lo;
    out[i] = static_cast<uint8_t>((hi << 4) | (lo & 15));
  }
  return bad >= 0;
}

}  // namespace lazysnap

#endif  // LAZYSNAP_FORMAT_PATH_TABLE_H_

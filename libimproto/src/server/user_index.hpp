#pragma once

// An index of records by their `id` string for a server's datagram path (not
// installed): a flat open-addressing table of pointers with each id's hash
// stored beside it, so a lookup hashes the id once (8 bytes a step), touches
// one or two adjacent slots and compares bytes only when the hashes match.
// std::unordered_map<std::string, ...> costs about three times as many
// instructions per lookup (libstdc++'s _Hash_bytes, a division by the prime
// bucket count, a node pointer to follow).
//
// The records are owned elsewhere and must not move; ids are never removed
// (a buddy server forgets no user). The hash is seeded per index from
// std::random_device, so which ids collide is not known in advance.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string_view>
#include <vector>

namespace improto::server::detail {

// A seeded multiply-xorshift hash of `s`, read 8 bytes a step.
[[gnu::always_inline]] inline std::uint64_t hash_id(std::string_view s,
                                                   std::uint64_t seed) noexcept {
  constexpr std::uint64_t k = 0x9e3779b97f4a7c15ull;
  auto mix = [](std::uint64_t h) noexcept {
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
  };
  const char* p = s.data();
  std::size_t n = s.size();
  std::uint64_t h = seed ^ (n * k);
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h = mix((h ^ w) * k);
    p += 8;
    n -= 8;
  }
  // The last 1 to 7 bytes, in at most two loads that may overlap.
  std::uint64_t w = 0;
  if (n >= 4) {
    std::uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    w = static_cast<std::uint64_t>(a) << 32 | b;
  } else if (n > 0) {
    w = static_cast<std::uint64_t>(static_cast<unsigned char>(p[0])) << 16 |
        static_cast<std::uint64_t>(static_cast<unsigned char>(p[n / 2])) << 8 |
        static_cast<unsigned char>(p[n - 1]);
  }
  return mix((h ^ w) * k);
}

// a == b for `n` bytes, inlined: ids are short, and a call to memcmp costs
// more than comparing them.
[[gnu::always_inline]] inline bool equal_bytes(const char* a, const char* b,
                                               std::size_t n) noexcept {
  if (n >= 8) {
    std::uint64_t x, y;
    for (std::size_t i = 0; i + 8 <= n; i += 8) {
      std::memcpy(&x, a + i, 8);
      std::memcpy(&y, b + i, 8);
      if (x != y) return false;
    }
    // The last 8 bytes, overlapping what was compared.
    std::memcpy(&x, a + n - 8, 8);
    std::memcpy(&y, b + n - 8, 8);
    return x == y;
  }
  if (n >= 4) {  // two 4-byte loads that may overlap
    std::uint32_t x0, y0, x1, y1;
    std::memcpy(&x0, a, 4);
    std::memcpy(&y0, b, 4);
    std::memcpy(&x1, a + n - 4, 4);
    std::memcpy(&y1, b + n - 4, 4);
    return ((x0 ^ y0) | (x1 ^ y1)) == 0;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

template <class Record>
class user_index {
 public:
  user_index() {
    std::random_device random;
    seed_ = static_cast<std::uint64_t>(random()) << 32 | random();
  }

  // `r` must not be in the index yet (find(r->id) is null).
  void insert(Record* r) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    place({hash_id(r->id, seed_), r});
    ++count_;
  }

  // Inlined: it is most of a datagram's lookup work, and a call would add
  // the saving and restoring of registers around it.
  [[gnu::always_inline]] Record* find(std::string_view id) const noexcept {
    if (slots_.empty()) return nullptr;
    const std::uint64_t h = hash_id(id, seed_);
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = static_cast<std::size_t>(h) & mask;; i = (i + 1) & mask) {
      const slot& s = slots_[i];
      if (!s.record) return nullptr;
      if (s.hash == h && s.record->id.size() == id.size() &&
          equal_bytes(s.record->id.data(), id.data(), id.size())) {
        return s.record;
      }
    }
  }

  std::size_t size() const noexcept { return count_; }

 private:
  struct slot {
    std::uint64_t hash = 0;
    Record* record = nullptr;  // null: empty (there are no removals)
  };

  void place(slot s) noexcept {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = static_cast<std::size_t>(s.hash) & mask;
    while (slots_[i].record) i = (i + 1) & mask;
    slots_[i] = s;
  }

  // At most half full, so that a miss ends at an empty slot soon.
  void grow() {
    std::vector<slot> old(slots_.empty() ? 16 : slots_.size() * 2);
    old.swap(slots_);
    for (const slot& s : old) {
      if (s.record) place(s);
    }
  }

  std::uint64_t seed_ = 0;
  std::vector<slot> slots_;  // a power of two long
  std::size_t count_ = 0;
};

}  // namespace improto::server::detail

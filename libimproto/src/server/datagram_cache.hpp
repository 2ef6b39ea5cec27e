#pragma once

// A cache from a short datagram's bytes to a record, for a server's datagram
// path (not installed). Clients of a soft-state protocol repeat the same
// datagram (protocol 2's status refresh, "SET id 100 port", every TTL
// period); a server that keeps in each record the last datagram that applied
// to it can know a repeat by hashing and comparing the bytes, without
// reading them. The cache only says where to look: the caller compares the
// datagram with what the record keeps, so a collision, an eviction or a
// stale entry costs a miss, never a wrong answer.
//
// Buckets of 4 hashes and records, one cache line each, at least 4 slots per
// record: at most about 0.5 % of the records lose their entry to a full
// bucket (Poisson, 1 record per bucket of 4 at the fullest). The
// hash is seeded per cache from std::random_device, so which datagrams share
// a bucket is not known in advance.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string_view>
#include <vector>

namespace improto::server::detail {

template <class Record>
class datagram_cache {
 public:
  // Datagrams cached: at least 8 bytes (one word), at most max_size.
  static constexpr std::size_t min_size = 8, max_size = 48;

  datagram_cache() {
    std::random_device random;
    seed_ = static_cast<std::uint64_t>(random()) << 32 | random();
    resize(16);
  }

  // Room for `records` (one datagram each). Growing forgets every entry:
  // they come back as the datagrams are seen again.
  void reserve(std::size_t records) {
    if (records * 4 > buckets_.size() * ways) resize(std::bit_ceil(records * 4 / ways + 1));
  }

  // `d` is min_size to max_size bytes. Never 0. Each word is folded in by a
  // full 64 x 64 -> 128-bit product, high half xor low half: a plain product
  // carries a change only upwards, so words that differ in their top bytes
  // alone would collide often. Not user_index.hpp's hash_id: its tail of
  // 1 to 7 bytes and two-step mix cost 38 more instructions per SET
  // (callgrind), where a datagram here always has a whole last word.
  [[gnu::always_inline]] std::uint64_t hash(std::string_view d) const noexcept {
    constexpr std::uint64_t k = 0x9e3779b97f4a7c15ull;
    const char* p = d.data();
    const std::size_t n = d.size();
    std::uint64_t h = seed_ ^ n;
    // Whole words, then the last 8 bytes (overlapping the last word read).
    for (std::size_t i = 0; i + 8 < n; i += 8) h = fold(h ^ load64(p + i), k);
    return fold(h ^ load64(p + n - 8), k) | 1;
  }

  // The record put with hash `h`, or null: a candidate to compare.
  [[gnu::always_inline]] Record* find(std::uint64_t h) const noexcept {
    const bucket& b = buckets_[index(h)];
    for (const slot& s : b.slots) {
      if (s.hash == h) return s.record;
    }
    return nullptr;
  }

  // `r` for hash `h`: in the slot that had `h`, else an empty one, else
  // (the bucket is full) in place of one chosen by the hash.
  void put(std::uint64_t h, Record* r) noexcept {
    bucket& b = buckets_[index(h)];
    slot* empty = nullptr;
    for (slot& s : b.slots) {
      if (s.hash == h) {
        s.record = r;
        return;
      }
      if (s.hash == 0 && !empty) empty = &s;
    }
    if (!empty) empty = &b.slots[(h >> 3) % ways];
    *empty = {h, r};
  }

  // Forgets `r`'s entry for `h`, if it is still there.
  void erase(std::uint64_t h, const Record* r) noexcept {
    for (slot& s : buckets_[index(h)].slots) {
      if (s.hash == h && s.record == r) s = {};
    }
  }

  std::size_t slots() const noexcept { return buckets_.size() * ways; }

 private:
  static constexpr std::size_t ways = 4;
  struct slot {
    std::uint64_t hash = 0;  // 0: empty (hash() is never 0)
    Record* record = nullptr;
  };
  struct alignas(64) bucket {
    slot slots[ways];
  };

  static std::uint64_t fold(std::uint64_t a, std::uint64_t b) noexcept {
#ifdef __SIZEOF_INT128__
    __extension__ typedef unsigned __int128 wide;
    const wide product = static_cast<wide>(a) * b;
    return static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64);
#else
    // Without 128-bit products: shifts carry the high bits down.
    a *= b;
    a ^= a >> 32;
    a *= 0xd6e8feb86659fd93ull;
    return a ^ (a >> 32);
#endif
  }

  static std::uint64_t load64(const char* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }

  // The high bits: the fold leaves every bit mixed (the low one is set).
  std::size_t index(std::uint64_t h) const noexcept { return static_cast<std::size_t>(h >> shift_); }

  void resize(std::size_t buckets) {
    buckets_.assign(buckets, bucket{});
    shift_ = 64 - std::countr_zero(buckets);
  }

  std::uint64_t seed_ = 0;
  std::vector<bucket> buckets_;  // a power of two long
  int shift_ = 64;
};

}  // namespace improto::server::detail

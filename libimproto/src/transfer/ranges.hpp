#pragma once

// Sets of byte ranges as maps begin -> end (disjoint, not touching), shared
// by the sender's scoreboard and the receiver's out-of-order list.

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>

namespace improto::transfer::detail {

using range_map = std::map<std::uint64_t, std::uint64_t>;

// Adds [b, e), merging with overlapping or touching ranges; returns how many
// of its bytes were not in the set before.
inline std::uint64_t insert_range(range_map& m, std::uint64_t b, std::uint64_t e) {
  if (e <= b) return 0;
  std::uint64_t covered = 0;
  std::uint64_t nb = b;
  std::uint64_t ne = e;
  auto it = m.upper_bound(b);
  if (it != m.begin()) {
    auto p = std::prev(it);
    if (p->second >= b) it = p;
  }
  while (it != m.end() && it->first <= e) {
    std::uint64_t lo = std::max(it->first, b);
    std::uint64_t hi = std::min(it->second, e);
    if (hi > lo) covered += hi - lo;
    nb = std::min(nb, it->first);
    ne = std::max(ne, it->second);
    it = m.erase(it);
  }
  m.emplace(nb, ne);
  return (e - b) - covered;
}

// Removes [b, e) from the set.
inline void erase_range(range_map& m, std::uint64_t b, std::uint64_t e) {
  if (e <= b) return;
  auto it = m.upper_bound(b);
  if (it != m.begin()) {
    auto p = std::prev(it);
    if (p->second > b) it = p;
  }
  while (it != m.end() && it->first < e) {
    std::uint64_t rb = it->first;
    std::uint64_t re = it->second;
    it = m.erase(it);
    if (rb < b) m.emplace(rb, b);
    if (re > e) {
      m.emplace(e, re);
      break;
    }
  }
}

// Whether [b, e) lies inside one range of the set.
inline bool contains(const range_map& m, std::uint64_t b, std::uint64_t e) {
  auto it = m.upper_bound(b);
  if (it == m.begin()) return false;
  --it;
  return it->first <= b && it->second >= e;
}

}  // namespace improto::transfer::detail

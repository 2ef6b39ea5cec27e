// The buddy server's cache of repeated datagrams (libimproto/src/server/
// datagram_cache.hpp, not installed): a put entry is found until it is
// erased, replaced or evicted; a lookup never names a record put under
// another hash; growth forgets everything; the hash tells apart datagrams
// that differ in one byte or only in length.

#include <doctest/doctest.h>

#include <cstddef>
#include <set>
#include <string>
#include <vector>

#include "../../libimproto/src/server/datagram_cache.hpp"

namespace {
struct record {
  int n;
};
using cache = improto::server::detail::datagram_cache<record>;
}  // namespace

TEST_CASE("datagram_cache: the hash tells apart one-byte changes and lengths, and is never 0") {
  cache c;
  const std::string base = "SET alice_1234 100 40001";
  std::set<std::uint64_t> seen;
  std::size_t made = 0;
  for (std::size_t i = 0; i < base.size(); ++i) {
    for (char b : {'0', 'a', ' ', '\x00', '\xff'}) {
      std::string d = base;
      d[i] = b;
      if (d == base) continue;
      seen.insert(c.hash(d));
      ++made;
    }
  }
  for (std::size_t n = cache::min_size; n <= base.size(); ++n) {
    seen.insert(c.hash(std::string_view(base).substr(0, n)));
    ++made;
  }
  CHECK(seen.size() == made);
  CHECK(seen.count(0) == 0);
  CHECK(c.hash(base) == c.hash(std::string(base)));
  const std::string longest(cache::max_size, 'x');
  CHECK(c.hash(longest) != c.hash(longest.substr(1)));
}

TEST_CASE("datagram_cache: put, find, replace and erase") {
  cache c;
  record a{1}, b{2};
  const auto h = c.hash("SET alice 100 4000");
  const auto other = c.hash("SET bob 100 4000");
  CHECK(c.find(h) == nullptr);
  c.put(h, &a);
  CHECK(c.find(h) == &a);
  CHECK(c.find(other) == nullptr);
  c.put(h, &b);  // the same hash again: replaced, not added
  CHECK(c.find(h) == &b);
  c.erase(h, &a);  // not a's any more: kept
  CHECK(c.find(h) == &b);
  c.erase(h, &b);
  CHECK(c.find(h) == nullptr);
}

TEST_CASE("datagram_cache: many records, full buckets, and growth") {
  cache c;
  constexpr std::size_t count = 1000;
  std::vector<record> records(count);
  std::vector<std::uint64_t> hashes;
  c.reserve(count);
  CHECK(c.slots() >= 4 * count);
  for (std::size_t i = 0; i < count; ++i) {
    records[i].n = static_cast<int>(i);
    hashes.push_back(c.hash("SET user" + std::to_string(i) + " 100 " + std::to_string(40000 + i)));
    c.put(hashes.back(), &records[i]);
    // Just put: always there, whatever it evicted.
    CHECK(c.find(hashes.back()) == &records[i]);
  }
  std::size_t found = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const record* r = c.find(hashes[i]);
    CHECK((r == nullptr || r == &records[i]));
    found += r == &records[i];
  }
  // Four slots per record: a full bucket loses an entry for about 0.5 % of
  // them (Poisson, mean 1 per bucket of 4); 2 % would take a broken index.
  CHECK(found >= count * 98 / 100);
  c.reserve(4 * count);
  for (std::size_t i = 0; i < count; ++i) CHECK(c.find(hashes[i]) == nullptr);
}

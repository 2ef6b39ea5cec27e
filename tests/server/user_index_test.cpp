// The buddy server's id index (libimproto/src/server/user_index.hpp, not
// installed): every inserted id is found, through every growth, ids that
// differ in one byte or only in length are told apart, and absent ids are
// not found.

#include <doctest/doctest.h>

#include <deque>
#include <set>
#include <string>

#include "../../libimproto/src/server/user_index.hpp"

namespace {
struct record {
  std::string id;
};
}  // namespace

using improto::server::detail::hash_id;
using improto::server::detail::user_index;

TEST_CASE("user_index finds every id it was given, through every growth") {
  std::deque<record> records;  // stable addresses, as the server's map gives
  user_index<record> index;
  CHECK(index.find("anyone") == nullptr);
  CHECK(index.find("") == nullptr);
  // Ids of every length from 1 to 40 (past the 8-byte steps and the 4- and
  // 1-byte tails), and ids that differ in a single byte at every place.
  std::set<std::string> ids;
  for (std::size_t len = 1; len <= 40; ++len) {
    std::string base;
    for (std::size_t i = 0; i < len; ++i) base += static_cast<char>('a' + i % 26);
    ids.insert(base);
    for (std::size_t at = 0; at < len; ++at) {
      std::string changed = base;
      changed[at] = 'Z';
      ids.insert(changed);
    }
  }
  for (int i = 0; i < 3000; ++i) ids.insert("u" + std::to_string(i));
  std::size_t n = 0;
  for (const auto& id : ids) {
    REQUIRE(index.find(id) == nullptr);
    records.push_back({id});
    index.insert(&records.back());
    ++n;
    // The newest and the first survive each growth.
    CHECK(index.find(id) == &records.back());
    CHECK(index.find(records.front().id) == &records.front());
  }
  CHECK(index.size() == n);
  for (const auto& r : records) CHECK(index.find(r.id) == &r);
  // Absent: a prefix, an extension, another case, the empty id.
  CHECK(index.find("u3000") == nullptr);
  CHECK(index.find("U1") == nullptr);
  CHECK(index.find("abcdefghijklmnopqrstuvwxyzabcdefghijklmnX") == nullptr);
  CHECK(index.find("") == nullptr);
  std::string nul("u1\0", 3);
  CHECK(index.find(nul) == nullptr);
}

TEST_CASE("hash_id depends on every byte, the length and the seed") {
  const std::string id = "alice.in.wonderland_1234567";
  const auto h = hash_id(id, 1);
  for (std::size_t at = 0; at < id.size(); ++at) {
    std::string changed = id;
    changed[at] = static_cast<char>(changed[at] ^ 1);
    CHECK(hash_id(changed, 1) != h);
  }
  CHECK(hash_id(std::string_view(id).substr(0, id.size() - 1), 1) != h);
  CHECK(hash_id(id, 2) != h);
  CHECK(hash_id("", 1) != hash_id(std::string_view("\0", 1), 1));
}

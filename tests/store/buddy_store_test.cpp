#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "improto/store/buddy_store.hpp"
#include "store_support.hpp"

using namespace improto;
using improto::store::buddy_store;
using improto::test::check_error;
using improto::test::check_ok;
using improto::test::temp_dir;

namespace {

using names = std::vector<std::string>;

// Any back end: a file path or a PostgreSQL URL.
buddy_store open_at(const std::string& location) {
  auto s = buddy_store::connect(location);
  REQUIRE_MESSAGE(s.has_value(), (s ? std::string() : s.error().message()));
  return std::move(*s);
}

buddy_store open_store(const std::filesystem::path& file) {
  auto s = buddy_store::open(file);
  REQUIRE_MESSAGE(s.has_value(), (s ? std::string() : s.error().message()));
  return std::move(*s);
}

names buddies_of(buddy_store& s, std::string_view user) {
  auto b = s.buddies(user);
  REQUIRE_MESSAGE(b.has_value(), (b ? std::string() : b.error().message()));
  return *b;
}

names users_of(buddy_store& s) {
  auto u = s.users();
  REQUIRE(u.has_value());
  return *u;
}

bool has(buddy_store& s, std::string_view user) {
  auto h = s.has_user(user);
  REQUIRE(h.has_value());
  return *h;
}

void add_users(buddy_store& s, std::initializer_list<std::string_view> users) {
  for (auto u : users) check_ok(s.add_user(u));
}

}  // namespace

TEST_CASE("buddy: a new store is empty") {
  temp_dir dir;
  auto s = open_store(dir / "buddy.sqlite3");
  CHECK(users_of(s).empty());
  CHECK_FALSE(has(s, "alice"));
  check_error(s.buddies("alice"), errc::not_found, {"no such user", "\"alice\""});
  CHECK(s.path() == dir / "buddy.sqlite3");
}

TEST_CASE_TEMPLATE("buddy: users are registered once, case-sensitively, in order", B, IMPROTO_STORE_BACKENDS) {
  B where;
  auto s = open_at(where.buddy());
  add_users(s, {"carol", "alice", "Alice"});
  check_error(s.add_user("alice"), errc::name_taken, {"\"alice\"", "exists"});
  CHECK(users_of(s) == names{"carol", "alice", "Alice"});
  CHECK(has(s, "Alice"));
  CHECK_FALSE(has(s, "ALICE"));
  CHECK(buddies_of(s, "carol").empty());  // known user, empty list: not an error
}

TEST_CASE_TEMPLATE("buddy: userids follow the protocol's rule", B, IMPROTO_STORE_BACKENDS) {
  B where;
  auto s = open_at(where.buddy());
  const std::string longest(32, 'x');
  const std::string too_long(33, 'x');
  using namespace std::string_view_literals;
  for (std::string_view bad : {""sv, "a b"sv, "a/b"sv, "a\nb"sv, "zo\xc3\xab"sv, "a\0"sv, "a:b"sv,
                               std::string_view(too_long)}) {
    CAPTURE(bad);
    CHECK_FALSE(buddy_store::valid_userid(bad));
    check_error(s.add_user(bad), errc::invalid_argument, {"1 to 32 characters"});
  }
  CHECK(users_of(s).empty());
  for (std::string_view good : {"a"sv, "a.b-c_D9"sv, std::string_view(longest)}) {
    CAPTURE(good);
    CHECK(buddy_store::valid_userid(good));
    check_ok(s.add_user(good));
  }
}

TEST_CASE_TEMPLATE("buddy: adding a buddy needs both users, and adding twice is fine", B, IMPROTO_STORE_BACKENDS) {
  B where;
  auto s = open_at(where.buddy());
  add_users(s, {"alice", "bob", "carol"});
  check_error(s.add_buddy("nobody", "bob"), errc::not_found, {"\"nobody\""});
  check_error(s.add_buddy("alice", "nobody"), errc::not_found, {"\"nobody\""});
  check_error(s.add_buddy("bad id", "bob"), errc::not_found);
  CHECK(buddies_of(s, "alice").empty());

  check_ok(s.add_buddy("alice", "carol"));
  check_ok(s.add_buddy("alice", "bob"));
  check_ok(s.add_buddy("alice", "carol"));  // idempotent, keeps its place
  CHECK(buddies_of(s, "alice") == names{"carol", "bob"});
}

TEST_CASE_TEMPLATE("buddy: lists belong to one user and are not symmetric", B, IMPROTO_STORE_BACKENDS) {
  B where;
  auto s = open_at(where.buddy());
  add_users(s, {"alice", "bob", "carol"});
  check_ok(s.add_buddy("alice", "bob"));
  check_ok(s.add_buddy("bob", "carol"));
  check_ok(s.add_buddy("carol", "carol"));  // one's own buddy: allowed
  CHECK(buddies_of(s, "alice") == names{"bob"});
  CHECK(buddies_of(s, "bob") == names{"carol"});
  CHECK(buddies_of(s, "carol") == names{"carol"});
}

TEST_CASE_TEMPLATE("buddy: removing a buddy", B, IMPROTO_STORE_BACKENDS) {
  B where;
  auto s = open_at(where.buddy());
  add_users(s, {"alice", "bob", "carol", "dave"});
  check_ok(s.add_buddy("alice", "bob"));
  check_ok(s.add_buddy("alice", "carol"));
  check_ok(s.add_buddy("alice", "dave"));

  check_error(s.remove_buddy("nobody", "bob"), errc::not_found, {"\"nobody\""});
  check_error(s.remove_buddy("alice", "nobody"), errc::not_found, {"\"nobody\""});
  // A registered user that is not on the list: nothing to do, not an error.
  check_ok(s.remove_buddy("bob", "alice"));
  CHECK(buddies_of(s, "alice") == names{"bob", "carol", "dave"});

  check_ok(s.remove_buddy("alice", "bob"));
  check_ok(s.remove_buddy("alice", "bob"));
  CHECK(buddies_of(s, "alice") == names{"carol", "dave"});
  check_ok(s.add_buddy("alice", "bob"));  // back at the end
  CHECK(buddies_of(s, "alice") == names{"carol", "dave", "bob"});
  CHECK(has(s, "bob"));  // removing a buddy never removes the user
}

TEST_CASE_TEMPLATE("buddy: users and lists survive closing and reopening", B, IMPROTO_STORE_BACKENDS) {
  B where;
  const auto file = where.buddy();
  {
    auto s = open_at(file);
    add_users(s, {"alice", "bob", "carol"});
    check_ok(s.add_buddy("alice", "carol"));
    check_ok(s.add_buddy("alice", "bob"));
    check_ok(s.add_buddy("bob", "alice"));
    check_ok(s.remove_buddy("bob", "alice"));
  }
  auto s = open_at(file);
  CHECK(users_of(s) == names{"alice", "bob", "carol"});
  CHECK(buddies_of(s, "alice") == names{"carol", "bob"});
  CHECK(buddies_of(s, "bob").empty());
  check_error(s.add_user("carol"), errc::name_taken);
}

TEST_CASE_TEMPLATE("buddy: a batch is one transaction with one answer per operation", B, IMPROTO_STORE_BACKENDS) {
  B where;
  auto s = open_at(where.buddy());
  check_ok(s.add_user("old"));
  auto before = s.status();
  REQUIRE(before.has_value());

  using add_user = buddy_store::add_user_op;
  using add_buddy = buddy_store::add_buddy_op;
  using remove_buddy = buddy_store::remove_buddy_op;
  const std::vector<buddy_store::operation> ops = {
      add_user{"alice"},
      add_user{"bob"},
      add_buddy{"alice", "bob"},     // sees the users added above
      add_user{"alice"},             // taken
      add_buddy{"alice", "zed"},     // unknown
      remove_buddy{"bob", "alice"},  // not on the list: fine
      add_user{"bad id"},            // invalid
      add_buddy{"alice", "old"},
      add_buddy{"alice", "bob"},  // again: fine
  };
  auto replies = s.apply(ops);
  REQUIRE_MESSAGE(replies.has_value(), (replies ? std::string() : replies.error().message()));
  REQUIRE(replies->size() == ops.size());
  check_ok((*replies)[0]);
  check_ok((*replies)[1]);
  check_ok((*replies)[2]);
  check_error((*replies)[3], errc::name_taken);
  check_error((*replies)[4], errc::not_found, {"\"zed\""});
  check_ok((*replies)[5]);
  check_error((*replies)[6], errc::invalid_argument);
  check_ok((*replies)[7]);
  check_ok((*replies)[8]);

  auto after = s.status();
  REQUIRE(after.has_value());
  CHECK(after->commits == before->commits + 1);
  CHECK(users_of(s) == names{"old", "alice", "bob"});
  CHECK(buddies_of(s, "alice") == names{"bob", "old"});
}

TEST_CASE("buddy: a storage failure inside a batch rolls the whole batch back") {
  temp_dir dir;
  const auto file = dir / "buddy.sqlite3";
  auto s = open_store(file);
  add_users(s, {"alice", "bob"});
  {
    test::raw_db raw(file);
    raw.exec(
        "CREATE TRIGGER fail_boom BEFORE INSERT ON users WHEN NEW.userid = 'boom'"
        " BEGIN SELECT RAISE(ABORT, 'planted failure'); END");
  }
  const std::vector<buddy_store::operation> ops = {
      buddy_store::add_buddy_op{"alice", "bob"}, buddy_store::add_user_op{"carol"},
      buddy_store::add_user_op{"boom"}, buddy_store::add_user_op{"dave"}};
  check_error(s.apply(ops), errc::storage_error, {"buddy.sqlite3", "planted failure"});
  CHECK(users_of(s) == names{"alice", "bob"});
  CHECK(buddies_of(s, "alice").empty());
  check_ok(s.add_buddy("alice", "bob"));
}

TEST_CASE("buddy: the schema enforces that list entries name registered users") {
  temp_dir dir;
  const auto file = dir / "buddy.sqlite3";
  auto s = open_store(file);
  add_users(s, {"alice"});
  auto st = s.status();
  REQUIRE(st.has_value());
  CHECK(st->foreign_keys);

  test::raw_db raw(file);
  raw.exec("PRAGMA foreign_keys=ON");
  CHECK((raw.try_exec("INSERT INTO buddies (user_id, buddy_id) VALUES (1, 999)") & 0xff) ==
        SQLITE_CONSTRAINT);
  CHECK(raw.last_error().find("FOREIGN KEY") != std::string::npos);
}

TEST_CASE("buddy: a moved-from store reports that it is closed") {
  temp_dir dir;
  auto a = open_store(dir / "buddy.sqlite3");
  check_ok(a.add_user("alice"));
  buddy_store b = std::move(a);
  CHECK_FALSE(a.is_open());  // NOLINT(bugprone-use-after-move): testing that state
  check_error(a.add_user("bob"), errc::storage_error, {"closed"});
  check_error(a.has_user("alice"), errc::storage_error, {"closed"});
  check_error(a.add_buddy("alice", "alice"), errc::storage_error, {"closed"});
  check_error(a.remove_buddy("alice", "alice"), errc::storage_error, {"closed"});
  check_error(a.buddies("alice"), errc::storage_error, {"closed"});
  check_error(a.users(), errc::storage_error, {"closed"});
  check_error(a.apply({}), errc::storage_error, {"closed"});
  check_error(a.status(), errc::storage_error, {"closed"});
  CHECK(users_of(b) == names{"alice"});
  a = std::move(b);
  CHECK(users_of(a) == names{"alice"});
}

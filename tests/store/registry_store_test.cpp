#include <doctest/doctest.h>
#include <sqlite3.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "improto/store/registry_store.hpp"
#include "store_support.hpp"

using namespace improto;
using improto::store::registry_record;
using improto::store::registry_store;
using improto::test::check_error;
using improto::test::check_ok;
using improto::test::temp_dir;

namespace {

// Any back end: a file path or a PostgreSQL URL.
registry_store open_at(const std::string& location) {
  auto s = registry_store::connect(location);
  REQUIRE_MESSAGE(s.has_value(), (s ? std::string() : s.error().message()));
  return std::move(*s);
}

registry_store open_store(const std::filesystem::path& file) {
  auto s = registry_store::open(file);
  REQUIRE_MESSAGE(s.has_value(), (s ? std::string() : s.error().message()));
  return std::move(*s);
}

std::vector<registry_record> list_of(registry_store& s) {
  auto l = s.list();
  REQUIRE_MESSAGE(l.has_value(), (l ? std::string() : l.error().message()));
  return *l;
}

bool contains(registry_store& s, std::string_view name) {
  auto c = s.contains(name);
  REQUIRE(c.has_value());
  return *c;
}

std::uint64_t commits(registry_store& s) {
  auto st = s.status();
  REQUIRE(st.has_value());
  return st->commits;
}

std::uintmax_t wal_size(const std::filesystem::path& db) {
  return std::filesystem::file_size(db.string() + "-wal");
}

}  // namespace

TEST_CASE("registry: a new store is empty") {
  temp_dir dir;
  auto s = open_store(dir / "registry.sqlite3");
  CHECK(list_of(s).empty());
  CHECK_FALSE(contains(s, "bob"));
  CHECK(s.is_open());
  CHECK(s.path() == dir / "registry.sqlite3");
  CHECK(std::filesystem::exists(dir / "registry.sqlite3"));
}

TEST_CASE_TEMPLATE("registry: entries are listed in registration order", B, IMPROTO_STORE_BACKENDS) {
  B where;
  auto s = open_at(where.registry());
  check_ok(s.add("zed", "10.0.0.1", 4000));
  check_ok(s.add("amy", "10.0.0.2", 4001));
  check_ok(s.add("bob", "::1", 4002));
  CHECK(list_of(s) == std::vector<registry_record>{{"zed", "10.0.0.1", 4000},
                                                   {"amy", "10.0.0.2", 4001},
                                                   {"bob", "::1", 4002}});
  CHECK(contains(s, "amy"));
  CHECK_FALSE(contains(s, "Amy"));  // names compare byte for byte
}

TEST_CASE_TEMPLATE("registry: a taken name is refused at any address", B, IMPROTO_STORE_BACKENDS) {
  B where;
  auto s = open_at(where.registry());
  check_ok(s.add("bob", "1.2.3.4", 5000));
  check_error(s.add("bob", "1.2.3.4", 5000), errc::name_taken, {"\"bob\"", "already registered"});
  check_error(s.add("bob", "5.6.7.8", 6000), errc::name_taken);
  CHECK(list_of(s) == std::vector<registry_record>{{"bob", "1.2.3.4", 5000}});
}

TEST_CASE_TEMPLATE("registry: names and hosts that would break the list are refused", B, IMPROTO_STORE_BACKENDS) {
  B where;
  auto s = open_at(where.registry());
  using namespace std::string_view_literals;
  for (std::string_view name : {""sv, "a:b"sv, "a@b"sv, "a,b"sv, "a b"sv, "a\tb"sv, "a\nb"sv,
                                "a\0b"sv, "a\x01"sv, "\x7f"sv, " "sv}) {
    CAPTURE(name);
    CHECK_FALSE(registry_store::valid_name(name));
    check_error(s.add(name, "1.2.3.4", 1), errc::invalid_argument, {"registry name"});
  }
  for (std::string_view host : {""sv, "1.2.3.4 "sv, "a,b"sv, "a@b"sv, "h\r"sv, "\x7f"sv}) {
    CAPTURE(host);
    CHECK_FALSE(registry_store::valid_host(host));
    check_error(s.add("bob", host, 1), errc::invalid_argument, {"registry host"});
  }
  CHECK(list_of(s).empty());

  // The store is not the protocol's validator: anything list-safe is kept.
  check_ok(s.add("zo\xc3\xab", "example.org", 1));
  check_ok(s.add("a.b-c_d", "fe80::1", 2));
  CHECK(list_of(s).size() == 2);
}

TEST_CASE_TEMPLATE("registry: remove needs the exact entry", B, IMPROTO_STORE_BACKENDS) {
  B where;
  auto s = open_at(where.registry());
  check_ok(s.add("bob", "1.2.3.4", 5000));
  check_error(s.remove("bob", "1.2.3.4", 5001), errc::not_found, {"\"bob@1.2.3.4:5001\""});
  check_error(s.remove("bob", "1.2.3.5", 5000), errc::not_found);
  check_error(s.remove("amy", "1.2.3.4", 5000), errc::not_found);
  check_error(s.remove("", "", 0), errc::not_found);
  CHECK(contains(s, "bob"));

  check_ok(s.remove("bob", "1.2.3.4", 5000));
  CHECK_FALSE(contains(s, "bob"));
  check_error(s.remove("bob", "1.2.3.4", 5000), errc::not_found);
  CHECK(list_of(s).empty());
}

TEST_CASE_TEMPLATE("registry: a name registered again goes to the end of the list", B, IMPROTO_STORE_BACKENDS) {
  B where;
  auto s = open_at(where.registry());
  check_ok(s.add("a", "h", 1));
  check_ok(s.add("b", "h", 2));
  check_ok(s.add("c", "h", 3));
  check_ok(s.remove("b", "h", 2));
  check_ok(s.add("b", "h", 4));
  // Removing the newest entry must not let the next one sort before others.
  check_ok(s.remove("b", "h", 4));
  check_ok(s.add("d", "h", 5));
  check_ok(s.add("b", "h", 6));
  CHECK(list_of(s) ==
        std::vector<registry_record>{{"a", "h", 1}, {"c", "h", 3}, {"d", "h", 5}, {"b", "h", 6}});
}

TEST_CASE_TEMPLATE("registry: ports 0 and 65535 round-trip", B, IMPROTO_STORE_BACKENDS) {
  B where;
  auto s = open_at(where.registry());
  check_ok(s.add("low", "h", 0));
  check_ok(s.add("high", "h", 65535));
  CHECK(list_of(s) == std::vector<registry_record>{{"low", "h", 0}, {"high", "h", 65535}});
  check_ok(s.remove("high", "h", 65535));
}

TEST_CASE_TEMPLATE("registry: values are bound as parameters, never spliced into SQL", B, IMPROTO_STORE_BACKENDS) {
  B where;
  auto s = open_at(where.registry());
  const std::string name = "x');DROP/**/TABLE/**/registry;--";
  const std::string host = "h'\"--";
  check_ok(s.add(name, host, 7));
  check_ok(s.add("after", "h", 8));
  CHECK(list_of(s) == std::vector<registry_record>{{name, host, 7}, {"after", "h", 8}});
  check_ok(s.remove(name, host, 7));
}

TEST_CASE("registry: entries survive closing and reopening") {
  temp_dir dir;
  const auto file = dir / "registry.sqlite3";
  {
    auto s = open_store(file);
    check_ok(s.add("a", "1.1.1.1", 1));
    check_ok(s.add("b", "2.2.2.2", 2));
    check_ok(s.add("c", "3.3.3.3", 3));
    check_ok(s.remove("b", "2.2.2.2", 2));
  }
  CHECK_FALSE(std::filesystem::exists(file.string() + "-wal"));  // clean close checkpoints
  {
    auto s = open_store(file);
    CHECK(list_of(s) == std::vector<registry_record>{{"a", "1.1.1.1", 1}, {"c", "3.3.3.3", 3}});
    check_error(s.add("a", "9.9.9.9", 9), errc::name_taken);
    check_ok(s.add("d", "4.4.4.4", 4));
  }
  auto s = open_store(file);
  CHECK(list_of(s) == std::vector<registry_record>{
                          {"a", "1.1.1.1", 1}, {"c", "3.3.3.3", 3}, {"d", "4.4.4.4", 4}});
}

TEST_CASE_TEMPLATE("registry: a batch is one transaction with one answer per operation", B, IMPROTO_STORE_BACKENDS) {
  B where;
  auto s = open_at(where.registry());
  check_ok(s.add("old", "h", 1));
  const auto before = commits(s);

  using add = registry_store::add_op;
  using remove = registry_store::remove_op;
  const std::vector<registry_store::operation> ops = {
      add{"a", "h", 10},     add{"b", "h", 11},
      add{"a", "h", 12},     // taken by the first operation of this batch
      remove{"c", "h", 13},  // not there
      remove{"b", "h", 11},  // sees the add above
      add{"", "h", 14},      // invalid
      remove{"old", "h", 1}, add{"c", "h", 15},
  };
  auto replies = s.apply(ops);
  REQUIRE_MESSAGE(replies.has_value(), (replies ? std::string() : replies.error().message()));
  REQUIRE(replies->size() == ops.size());
  check_ok((*replies)[0]);
  check_ok((*replies)[1]);
  check_error((*replies)[2], errc::name_taken, {"\"a\""});
  check_error((*replies)[3], errc::not_found, {"c@h:13"});
  check_ok((*replies)[4]);
  check_error((*replies)[5], errc::invalid_argument);
  check_ok((*replies)[6]);
  check_ok((*replies)[7]);

  CHECK(commits(s) == before + 1);
  CHECK(list_of(s) == std::vector<registry_record>{{"a", "h", 10}, {"c", "h", 15}});

  // An empty batch touches nothing.
  auto none = s.apply({});
  REQUIRE(none.has_value());
  CHECK(none->empty());
  CHECK(commits(s) == before + 1);
}

TEST_CASE_TEMPLATE("registry: each single write is its own transaction", B, IMPROTO_STORE_BACKENDS) {
  B where;
  auto s = open_at(where.registry());
  const auto before = commits(s);
  check_ok(s.add("a", "h", 1));
  check_error(s.add("a", "h", 1), errc::name_taken);  // a refused write still ends its transaction
  check_ok(s.remove("a", "h", 1));
  CHECK(commits(s) == before + 3);
  CHECK(s.list().has_value());  // reads do not commit
  CHECK(commits(s) == before + 3);
}

TEST_CASE("registry: a group commit writes a fraction of the WAL frames of separate commits") {
  temp_dir dir;
  constexpr std::uintmax_t frame = 24 + 1024;  // WAL frame header + the registry's page size
  std::vector<registry_store::operation> ops;
  for (int i = 0; i < 100; ++i)
    ops.push_back(registry_store::add_op{"u" + std::to_string(i), "h", 1});

  auto batched = open_store(dir / "batched.sqlite3");
  const auto base = wal_size(dir / "batched.sqlite3");
  auto replies = batched.apply(ops);
  REQUIRE(replies.has_value());
  for (const auto& r : *replies) check_ok(r);
  CHECK(wal_size(dir / "batched.sqlite3") - base <= 10 * frame);

  auto single = open_store(dir / "single.sqlite3");
  const auto single_base = wal_size(dir / "single.sqlite3");
  for (const auto& op : ops) {
    const auto& a = std::get<registry_store::add_op>(op);
    check_ok(single.add(a.name, a.host, a.port));
  }
  // Every commit appends at least one frame.
  CHECK(wal_size(dir / "single.sqlite3") - single_base >= 100 * frame);
  CHECK(list_of(single) == list_of(batched));
}

TEST_CASE("registry: a storage failure inside a batch rolls the whole batch back") {
  temp_dir dir;
  const auto file = dir / "registry.sqlite3";
  auto s = open_store(file);
  check_ok(s.add("keep", "h", 1));
  {
    // Stands in for a disk error in the middle of a batch.
    test::raw_db raw(file);
    raw.exec(
        "CREATE TRIGGER fail_boom BEFORE INSERT ON registry WHEN NEW.name = 'boom'"
        " BEGIN SELECT RAISE(ABORT, 'planted failure'); END");
  }
  using add = registry_store::add_op;
  const std::vector<registry_store::operation> ops = {add{"a", "h", 2},
                                                      registry_store::remove_op{"keep", "h", 1},
                                                      add{"boom", "h", 3}, add{"c", "h", 4}};
  auto replies = s.apply(ops);
  check_error(replies, errc::storage_error, {"registry.sqlite3", "planted failure"});
  CHECK(list_of(s) == std::vector<registry_record>{{"keep", "h", 1}});

  check_error(s.add("boom", "h", 3), errc::storage_error, {"planted failure"});
  // The connection is usable afterwards and nothing was left half-done.
  check_ok(s.add("a", "h", 2));
  CHECK(list_of(s) == std::vector<registry_record>{{"keep", "h", 1}, {"a", "h", 2}});
}

TEST_CASE("registry: a moved-from store reports that it is closed") {
  temp_dir dir;
  auto a = open_store(dir / "registry.sqlite3");
  check_ok(a.add("bob", "h", 1));
  registry_store b(std::move(a));
  CHECK_FALSE(a.is_open());  // NOLINT(bugprone-use-after-move): testing that state
  CHECK(a.path().empty());
  check_error(a.add("amy", "h", 2), errc::storage_error, {"closed"});
  check_error(a.remove("bob", "h", 1), errc::storage_error, {"closed"});
  check_error(a.list(), errc::storage_error, {"closed"});
  check_error(a.contains("bob"), errc::storage_error, {"closed"});
  check_error(a.apply({}), errc::storage_error, {"closed"});
  check_error(a.status(), errc::storage_error, {"closed"});
  CHECK(list_of(b) == std::vector<registry_record>{{"bob", "h", 1}});

  auto c = open_store(dir / "other.sqlite3");
  c = std::move(b);
  CHECK(c.path() == dir / "registry.sqlite3");
  check_ok(c.add("amy", "h", 2));
  CHECK(list_of(c).size() == 2);
}

TEST_CASE_TEMPLATE("registry: an entry remembers its origin, and a LOGOUT from another origin is refused", B, IMPROTO_STORE_BACKENDS) {
  B where;
  const auto file = where.registry();
  {
    auto s = open_at(file);
    check_ok(s.add("amy", "10.0.0.1", 5000, "127.0.0.2"));
    check_ok(s.add("bob", "h", 1));  // no origin: anyone may remove it
    CHECK(list_of(s) == std::vector<registry_record>{{"amy", "10.0.0.1", 5000, "127.0.0.2"},
                                                     {"bob", "h", 1, ""}});
    check_error(s.remove("amy", "10.0.0.1", 5000, "127.0.0.3"), errc::rejected,
                {"amy@10.0.0.1:5000", "127.0.0.2"});
    // The exact entry is looked for first: a wrong address is not_found.
    check_error(s.remove("amy", "10.0.0.1", 5001, "127.0.0.2"), errc::not_found);
    check_ok(s.remove("bob", "h", 1, "192.0.2.9"));
    CHECK(list_of(s).size() == 1);
  }
  // Persisted: the rule holds after reopening, and without `from` anyone may.
  auto s = open_at(file);
  check_error(s.remove("amy", "10.0.0.1", 5000, "127.0.0.3"), errc::rejected);
  check_ok(s.remove("amy", "10.0.0.1", 5000, "127.0.0.2"));
  check_ok(s.add("amy", "10.0.0.1", 5000, "127.0.0.2"));
  check_ok(s.remove("amy", "10.0.0.1", 5000));

  // In a batch, a LOGOUT sees the origin of a REGISTER just before it.
  using add = registry_store::add_op;
  using remove = registry_store::remove_op;
  const std::vector<registry_store::operation> ops = {
      add{"cat", "h", 3, "127.0.0.4"}, remove{"cat", "h", 3, std::string("127.0.0.5")},
      remove{"cat", "h", 3, std::string("127.0.0.4")}};
  auto replies = s.apply(ops);
  REQUIRE(replies.has_value());
  check_ok((*replies)[0]);
  check_error((*replies)[1], errc::rejected, {"127.0.0.4"});
  check_ok((*replies)[2]);
  CHECK(list_of(s).empty());
}

namespace {
// A registry file as an older version left it, written with `sql`.
std::filesystem::path older_version_file(const temp_dir& dir, const char* sql) {
  auto file = dir / "registry.sqlite3";
  test::raw_db raw(file);
  raw.exec(sql);
  return file;
}
}  // namespace

TEST_CASE("registry: a version 1 file is migrated, its entries of unknown origin kept") {
  temp_dir dir;
  const auto file = older_version_file(
      dir,
      // The schema as version 1 shipped it.
      "PRAGMA application_id = 1229804103;"
      "CREATE TABLE registry (seq INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
      " host TEXT NOT NULL, port INTEGER NOT NULL CHECK (port BETWEEN 0 AND 65535));"
      "INSERT INTO registry (name, host, port) VALUES ('old', '10.0.0.1', 7), ('older', 'h', 8);"
      "PRAGMA user_version = 1;");
  auto s = open_store(file);
  auto st = s.status();
  REQUIRE(st.has_value());
  CHECK(st->schema_version == 3);
  CHECK(list_of(s) ==
        std::vector<registry_record>{{"old", "10.0.0.1", 7, ""}, {"older", "h", 8, ""}});
  // Unknown origin: removable from any address rather than from none.
  check_ok(s.remove("old", "10.0.0.1", 7, "127.0.0.9"));
  check_ok(s.add("new", "h", 9, "127.0.0.2"));
  check_error(s.remove("new", "h", 9, "127.0.0.9"), errc::rejected);
  test::raw_db raw(file);
  CHECK(raw.integer("PRAGMA user_version") == 3);
}

TEST_CASE("registry: a version 2 file is migrated to one b-tree, its order kept") {
  temp_dir dir;
  const auto file = older_version_file(
      dir,
      // The schema as version 2 shipped it; seq out of name order on purpose.
      "PRAGMA application_id = 1229804103;"
      "CREATE TABLE registry (seq INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
      " host TEXT NOT NULL, port INTEGER NOT NULL CHECK (port BETWEEN 0 AND 65535),"
      " origin TEXT NOT NULL DEFAULT '');"
      "INSERT INTO registry (seq, name, host, port, origin) VALUES"
      " (5, 'b', 'h', 1, '127.0.0.1'), (9, 'a', 'h', 2, ''), (12, 'c', 'h', 3, '');"
      "PRAGMA user_version = 2;");
  {
    auto s = open_store(file);
    check_ok(s.add("d", "h", 4));
    CHECK(list_of(s) == std::vector<registry_record>{{"b", "h", 1, "127.0.0.1"},
                                                    {"a", "h", 2, ""},
                                                    {"c", "h", 3, ""},
                                                    {"d", "h", 4, ""}});
    check_error(s.remove("b", "h", 1, "127.0.0.9"), errc::rejected);
  }
  test::raw_db raw(file);
  CHECK(raw.integer("PRAGMA user_version") == 3);
  CHECK(raw.integer("SELECT count(*) FROM sqlite_master WHERE type = 'index'") == 0);  // the table is the index
  CHECK(raw.integer("SELECT seq FROM registry WHERE name = 'd'") == 13);
}

TEST_CASE("registry: a single change appends one WAL frame") {
  // One b-tree: the table is its name index. Two frames per commit before.
  // A new file has 1 KiB pages (4 KiB before: SQLite's default).
  temp_dir dir;
  constexpr std::uintmax_t frame = 24 + 1024;
  auto s = open_store(dir / "registry.sqlite3");
  check_ok(s.add("warm", "h", 1));
  for (int i = 0; i < 10; ++i) {
    const auto before = wal_size(dir / "registry.sqlite3");
    check_ok(s.add("u" + std::to_string(i), "h", 1));
    CHECK(wal_size(dir / "registry.sqlite3") - before == frame);
    const auto mid = wal_size(dir / "registry.sqlite3");
    check_ok(s.remove("u" + std::to_string(i), "h", 1));
    CHECK(wal_size(dir / "registry.sqlite3") - mid == frame);
  }
  test::raw_db raw(dir / "registry.sqlite3");
  CHECK(raw.integer("PRAGMA page_size") == 1024);
}

// Write system calls of SQLite's unix VFS, counted through its own hook for
// replacing them (xSetSystemCall); put back by the destructor.
class write_counter {
 public:
  write_counter() : vfs_(sqlite3_vfs_find("unix")) {
    REQUIRE(vfs_ != nullptr);
    instance_ = this;
    hook("write", reinterpret_cast<sqlite3_syscall_ptr>(&counted_write), real_write_);
    hook("pwrite", reinterpret_cast<sqlite3_syscall_ptr>(&counted_pwrite), real_pwrite_);
    hook("pwrite64", reinterpret_cast<sqlite3_syscall_ptr>(&counted_pwrite64), real_pwrite64_);
  }
  ~write_counter() {
    for (const char* name : {"write", "pwrite", "pwrite64"}) {
      vfs_->xSetSystemCall(vfs_, name, nullptr);
    }
    instance_ = nullptr;
  }
  write_counter(const write_counter&) = delete;
  write_counter& operator=(const write_counter&) = delete;

  int calls = 0;
  int header_alone = 0;  // calls writing 24 bytes: a WAL frame header by itself

 private:
  template <class F>
  void hook(const char* name, sqlite3_syscall_ptr mine, F& real) {
    real = reinterpret_cast<F>(vfs_->xGetSystemCall(vfs_, name));
    if (real != nullptr) REQUIRE(vfs_->xSetSystemCall(vfs_, name, mine) == SQLITE_OK);
  }
  static void count(std::size_t n) {
    ++instance_->calls;
    if (n == 24) ++instance_->header_alone;
  }
  static ssize_t counted_write(int fd, const void* b, std::size_t n) {
    count(n);
    return instance_->real_write_(fd, b, n);
  }
  static ssize_t counted_pwrite(int fd, const void* b, std::size_t n, off_t o) {
    count(n);
    return instance_->real_pwrite_(fd, b, n, o);
  }
  static ssize_t counted_pwrite64(int fd, const void* b, std::size_t n, off64_t o) {
    count(n);
    return instance_->real_pwrite64_(fd, b, n, o);
  }

  static inline write_counter* instance_ = nullptr;
  sqlite3_vfs* vfs_;
  ssize_t (*real_write_)(int, const void*, std::size_t) = nullptr;
  ssize_t (*real_pwrite_)(int, const void*, std::size_t, off_t) = nullptr;
  ssize_t (*real_pwrite64_)(int, const void*, std::size_t, off64_t) = nullptr;
};

TEST_CASE("registry: a committed change is one write system call (its WAL frame)") {
  // SQLite writes a frame's header and page separately; our VFS joins them.
  for (auto level : {store::sync_level::normal, store::sync_level::full}) {
    CAPTURE(static_cast<int>(level));
    temp_dir dir;
    store::options opts;
    opts.synchronous = level;
    opts.exclusive = true;  // the file's lock taken once, not per transaction
    auto s = registry_store::open(dir / "registry.sqlite3", opts);
    REQUIRE_MESSAGE(s.has_value(), (s ? std::string() : s.error().message()));
    check_ok(s->add("warm", "h", 1));
    write_counter counter;
    for (int i = 0; i < 10; ++i) {
      check_ok(s->add("u" + std::to_string(i), "h", 1));
      check_ok(s->remove("u" + std::to_string(i), "h", 1));
    }
    CHECK(counter.calls == 20);
    CHECK(counter.header_alone == 0);
  }
  // What was written that way reads back, through a plain connection too.
  temp_dir dir;
  {
    auto s = open_store(dir / "registry.sqlite3");
    for (int i = 0; i < 5; ++i) check_ok(s.add("u" + std::to_string(i), "h", 1));
  }
  test::raw_db raw(dir / "registry.sqlite3");
  CHECK(raw.integer("SELECT count(*) FROM registry") == 5);
}

TEST_CASE("registry: registration order holds across two handles on one file") {
  // The order is counted by each handle; another one's write makes it read
  // the file's largest seq again.
  temp_dir dir;
  const auto file = dir / "registry.sqlite3";
  auto one = open_store(file);
  auto two = open_store(file);
  check_ok(one.add("first", "h", 1));
  check_ok(two.add("second", "h", 2));
  check_ok(one.add("third", "h", 3));
  check_ok(two.add("fourth", "h", 4));
  const std::vector<registry_record> expected{
      {"first", "h", 1, ""}, {"second", "h", 2, ""}, {"third", "h", 3, ""}, {"fourth", "h", 4, ""}};
  CHECK(list_of(one) == expected);
  CHECK(list_of(two) == expected);
}

// What every back end must do beyond the single-store cases of
// registry_store_test.cpp / buddy_store_test.cpp (which run against every
// back end too), and what only the PostgreSQL back end has: reconnecting,
// schema versions shared by nodes, the change feed.

#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "improto/store/buddy_feed.hpp"
#include "improto/store/buddy_store.hpp"
#include "improto/store/registry_store.hpp"
#include "store_support.hpp"

using namespace improto;
using improto::store::buddy_store;
using improto::store::registry_record;
using improto::store::registry_store;
using improto::test::check_error;
using improto::test::check_ok;

namespace {

template <class Store>
Store open_at(const std::string& location) {
  auto s = Store::connect(location);
  REQUIRE_MESSAGE(s.has_value(), (s ? std::string() : s.error().message()));
  return std::move(*s);
}

}  // namespace

TEST_CASE_TEMPLATE("stores: a new store is empty and says what it runs on", B,
                   IMPROTO_STORE_BACKENDS) {
  B where;
  auto r = open_at<registry_store>(where.registry());
  auto list = r.list();
  REQUIRE(list.has_value());
  CHECK(list->empty());
  auto st = r.status();
  REQUIRE(st.has_value());
  CHECK(st->backend == (B::is_postgresql ? "postgresql" : "sqlite"));
  CHECK(st->synchronous == store::sync_level::full);
  CHECK(st->schema_version >= 1);
  CHECK(st->commits == 0);
  CHECK(r.shared() == B::is_postgresql);
  CHECK(r.location() == where.registry());

  auto b = open_at<buddy_store>(where.buddy());
  auto users = b.users();
  REQUIRE(users.has_value());
  CHECK(users->empty());
  CHECK(b.shared() == B::is_postgresql);
}

TEST_CASE_TEMPLATE("stores: two handles on one location see each other's writes", B,
                   IMPROTO_STORE_BACKENDS) {
  B where;
  auto a = open_at<registry_store>(where.registry());
  auto b = open_at<registry_store>(where.registry());
  check_ok(a.add("amy", "h", 1, "127.0.0.2"));
  check_error(b.add("amy", "g", 2), errc::name_taken);
  check_error(b.remove("amy", "h", 1, "127.0.0.3"), errc::rejected);
  auto list = b.list();
  REQUIRE(list.has_value());
  CHECK(*list == std::vector<registry_record>{{"amy", "h", 1, "127.0.0.2"}});

  auto x = open_at<buddy_store>(where.buddy());
  auto y = open_at<buddy_store>(where.buddy());
  check_ok(x.add_user("alice"));
  check_ok(y.add_user("bob"));
  check_error(y.add_user("alice"), errc::name_taken);
  check_ok(y.add_buddy("alice", "bob"));
  auto l = x.buddies("alice");
  REQUIRE(l.has_value());
  CHECK(*l == std::vector<std::string>{"bob"});
}

TEST_CASE_TEMPLATE("stores: writers racing for one name: exactly one wins", B,
                   IMPROTO_STORE_BACKENDS) {
  B where;
  constexpr int writers = 4;
  constexpr int names = 25;
  std::vector<registry_store> stores;
  for (int i = 0; i < writers; ++i) stores.push_back(open_at<registry_store>(where.registry()));
  std::vector<int> wins(writers, 0), taken(writers, 0), other(writers, 0);
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      for (int n = 0; n < names; ++n) {
        auto r = stores[static_cast<std::size_t>(w)].add("n" + std::to_string(n), "h",
                                                         static_cast<std::uint16_t>(w + 1));
        if (r) {
          ++wins[static_cast<std::size_t>(w)];
        } else if (r.error() == errc::name_taken) {
          ++taken[static_cast<std::size_t>(w)];
        } else {
          ++other[static_cast<std::size_t>(w)];
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  int total_wins = 0, total_taken = 0, total_other = 0;
  for (int w = 0; w < writers; ++w) {
    total_wins += wins[static_cast<std::size_t>(w)];
    total_taken += taken[static_cast<std::size_t>(w)];
    total_other += other[static_cast<std::size_t>(w)];
  }
  CHECK(total_other == 0);
  CHECK(total_wins == names);
  CHECK(total_taken == names * (writers - 1));
  auto list = stores[0].list();
  REQUIRE(list.has_value());
  CHECK(list->size() == static_cast<std::size_t>(names));
}

#ifdef IMPROTO_TEST_WITH_POSTGRESQL

using improto::test::postgres_backend;
using improto::test::raw_pg;

namespace {

// Ends the stores' sessions on `url`'s database as a server restart does,
// and waits until they are gone (pg_terminate_backend only signals them).
void end_store_sessions(raw_pg& raw) {
  const std::string which =
      " FROM pg_stat_activity WHERE application_name = 'improto'"
      " AND datname = current_database() AND pid <> pg_backend_pid()";
  const std::string pids = raw.exec("SELECT string_agg(pid::text, ',')" + which);
  REQUIRE_FALSE(pids.empty());
  raw.exec("SELECT pg_terminate_backend(pid)" + which);
  for (int i = 0; i < 3000; ++i) {  // up to 30 s: the machine may be loaded
    if (raw.exec("SELECT count(*) FROM pg_stat_activity WHERE pid IN (" + pids + ")") == "0") {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL("the terminated sessions did not go away");
}

}  // namespace

TEST_CASE("postgresql: the schema is versioned, created once, and a newer one is refused") {
  postgres_backend where;
  {
    // Nodes starting together: the advisory lock makes them take turns.
    std::vector<std::thread> threads;
    std::vector<int> ok(4, 0);
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&, i] {
        ok[static_cast<std::size_t>(i)] = registry_store::connect(where.url).has_value() &&
                                          buddy_store::connect(where.url).has_value();
      });
    }
    for (auto& t : threads) t.join();
    CHECK(ok == std::vector<int>{1, 1, 1, 1});
  }
  raw_pg raw(where.url);
  CHECK(raw.exec("SELECT version FROM improto_schema WHERE store = 'registry'") == "1");
  CHECK(raw.exec("SELECT version FROM improto_schema WHERE store = 'buddy'") == "1");
  raw.exec("UPDATE improto_schema SET version = 99 WHERE store = 'registry'");
  check_error(registry_store::connect(where.url), errc::storage_error,
              {"registry schema is version 99", "newer"});
  // The other store in the same database is not affected.
  CHECK(buddy_store::connect(where.url).has_value());
}

TEST_CASE("postgresql: the constraints hold for writers other than the store") {
  postgres_backend where;
  auto s = open_at<buddy_store>(where.url);
  auto r = open_at<registry_store>(where.url);
  check_ok(s.add_user("alice"));
  raw_pg raw(where.url);
  CHECK_THROWS_WITH_AS(raw.exec("INSERT INTO improto_buddy_users (userid) VALUES ('alice')"),
                       doctest::Contains("unique"), std::runtime_error);
  CHECK_THROWS_WITH_AS(raw.exec("INSERT INTO improto_buddy_users (userid) VALUES ('a b')"),
                       doctest::Contains("check"), std::runtime_error);
  CHECK_THROWS_WITH_AS(
      raw.exec("INSERT INTO improto_buddy_lists (user_id, buddy_id) VALUES (1, 999)"),
      doctest::Contains("foreign key"), std::runtime_error);
  CHECK_THROWS_WITH_AS(
      raw.exec("INSERT INTO improto_registry (name, host, port) VALUES ('x', 'h', 70000)"),
      doctest::Contains("check"), std::runtime_error);
}

TEST_CASE("postgresql: a storage failure inside a batch rolls the whole batch back") {
  postgres_backend where;
  auto s = open_at<buddy_store>(where.url);
  check_ok(s.add_user("alice"));
  check_ok(s.add_user("bob"));
  raw_pg raw(where.url);
  raw.exec(
      "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
      " IF NEW.userid = 'boom' THEN RAISE EXCEPTION 'planted failure'; END IF;"
      " RETURN NEW; END $$;"
      "CREATE TRIGGER boom BEFORE INSERT ON improto_buddy_users"
      " FOR EACH ROW EXECUTE FUNCTION boom()");
  const std::vector<buddy_store::operation> ops = {
      buddy_store::add_buddy_op{"alice", "bob"}, buddy_store::add_user_op{"carol"},
      buddy_store::add_user_op{"boom"}, buddy_store::add_user_op{"dave"}};
  check_error(s.apply(ops), errc::storage_error, {"planted failure", where.name});
  auto users = s.users();
  REQUIRE(users.has_value());
  CHECK(*users == std::vector<std::string>{"alice", "bob"});
  // The connection is fine afterwards.
  check_ok(s.add_buddy("alice", "bob"));
}

TEST_CASE("postgresql: a dropped connection is replaced at the next call") {
  postgres_backend where;
  auto s = open_at<registry_store>(where.url);
  check_ok(s.add("amy", "h", 1));
  raw_pg raw(where.url);
  // What a server restart does to every session.
  end_store_sessions(raw);
  // Idle when it broke: nothing was in flight, so the write goes through on
  // a new connection.
  check_ok(s.add("bob", "h", 2));
  end_store_sessions(raw);
  auto list = s.list();  // reads reconnect too
  REQUIRE(list.has_value());
  CHECK(list->size() == 2);
}

TEST_CASE("postgresql: an unreachable server is a storage_error naming it, password hidden") {
  // A loopback port nothing listens on: bind one, then close it.
  auto url = improto::test::postgres_url_of("x");
  auto colon = url.rfind(':');
  auto slash = url.find('/', colon);
  std::string port = url.substr(colon + 1, slash - colon - 1);
  std::string bad = "postgresql://postgres:s3cret@127.0.0.1:1/improto";
  store::options opts;
  opts.connect_timeout = std::chrono::seconds(2);
  auto r = registry_store::connect(bad, opts);
  check_error(r, errc::storage_error, {"postgresql://postgres:***@127.0.0.1:1/improto",
                                       "cannot connect to PostgreSQL"});
  CHECK(r.error().message().find("s3cret") == std::string::npos);
  CHECK(store::redact("postgres://u:pw@h/db?password=x&sslmode=disable") ==
        "postgres://u:***@h/db?password=***&sslmode=disable");
  CHECK(store::redact("/var/lib/improto/registry.sqlite3") == "/var/lib/improto/registry.sqlite3");
  CHECK(store::is_postgresql_url("postgres://h/db"));
  CHECK_FALSE(store::is_postgresql_url("registry.sqlite3"));
  CHECK(store::have_postgresql());
  CHECK_FALSE(port.empty());
}

namespace {

// Collects the feed's events, for waiting on a condition.
struct feed_log {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<store::buddy_feed::event> events;

  void push(store::buddy_feed::event e) {
    {
      std::lock_guard lock(mutex);
      events.push_back(std::move(e));
    }
    changed.notify_all();
  }

  // Waits (generously: the machine may be loaded) for an event matching `pred`.
  template <class Pred>
  bool wait_for(Pred pred) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, std::chrono::seconds(30), [&] {
      for (const auto& e : events) {
        if (pred(e)) return true;
      }
      return false;
    });
  }
};

bool is_user_state(const store::buddy_feed::event& e, const std::string& user,
                   const std::vector<std::string>& buddies) {
  const auto* s = std::get_if<store::buddy_feed::user_state>(&e);
  return s != nullptr && s->userid == user && s->buddies == buddies;
}

}  // namespace

TEST_CASE("postgresql: the buddy feed reports every committed change and reloads after a break") {
  postgres_backend where;
  auto s = open_at<buddy_store>(where.url);
  check_ok(s.add_user("alice"));
  feed_log log;
  auto feed = store::buddy_feed::start(
      where.url, {[&](store::buddy_feed::event e) { log.push(std::move(e)); }, {}});
  REQUIRE_MESSAGE(feed.has_value(), (feed ? std::string() : feed.error().message()));
  CHECK(log.wait_for([](const auto& e) {
    const auto* snap = std::get_if<store::buddy_feed::snapshot>(&e);
    return snap != nullptr && snap->users.size() == 1 && snap->users[0].userid == "alice";
  }));

  check_ok(s.add_user("bob"));
  CHECK(log.wait_for([](const auto& e) { return is_user_state(e, "bob", {}); }));
  check_ok(s.add_buddy("alice", "bob"));
  CHECK(log.wait_for([](const auto& e) { return is_user_state(e, "alice", {"bob"}); }));
  // Refused and idempotent writes change nothing and announce nothing new;
  // a refresh asks for the current state.
  check_error(s.add_user("bob"), errc::name_taken);
  (*feed)->refresh("bob");
  CHECK(log.wait_for([](const auto& e) { return is_user_state(e, "bob", {}); }));

  // Cut the feed's connection; what is committed meanwhile arrives in the
  // snapshot after it reconnects.
  raw_pg raw(where.url);
  end_store_sessions(raw);
  check_ok(s.add_user("carol"));
  check_ok(s.add_buddy("carol", "alice"));
  // Carol's list arrives either in the snapshot taken after reconnecting or
  // as a change after it, depending on which came first.
  CHECK(log.wait_for([](const auto& e) {
    const auto* snap = std::get_if<store::buddy_feed::snapshot>(&e);
    if (snap != nullptr) {
      return snap->users.size() == 3 && snap->users[2].userid == "carol" &&
             snap->users[2].buddies == std::vector<std::string>{"alice"};
    }
    return is_user_state(e, "carol", {"alice"});
  }));
  std::lock_guard lock(log.mutex);
  std::size_t snapshots = 0;
  for (const auto& e : log.events) snapshots += std::holds_alternative<store::buddy_feed::snapshot>(e);
  CHECK(snapshots >= 2);  // reloaded after the break
}

#else

TEST_CASE("stores: a PostgreSQL URL in a build without libpq is a clear invalid_config") {
  check_error(registry_store::connect("postgresql://u:pw@127.0.0.1/db"), errc::invalid_config,
              {"no PostgreSQL support", "postgresql://u:***@127.0.0.1/db"});
  check_error(buddy_store::connect("postgres://127.0.0.1/db"), errc::invalid_config,
              {"no PostgreSQL support"});
  CHECK_FALSE(store::have_postgresql());
}

#endif

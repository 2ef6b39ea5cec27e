#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <filesystem>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include <asio/post.hpp>

#include "improto/server/group_commit.hpp"
#include "improto/store/registry_store.hpp"
#include "server_support.hpp"

using namespace improto;

namespace {

// The registry store in `file` (the test stops if it cannot be opened).
store::registry_store opened(const std::filesystem::path& file) {
  auto s = store::registry_store::open(file);
  REQUIRE_MESSAGE(s, s.error().message());
  return std::move(*s);
}

// How many names `file` holds, read by a fresh open: what was committed.
std::size_t names_in(const std::filesystem::path& file) {
  auto names = opened(file).list();
  REQUIRE(names);
  return names->size();
}

}  // namespace

TEST_CASE("group_committer commits off the io thread and answers each write") {
  server_test::temp_dir dir("gc");
  auto file = dir.path / "registry.sqlite3";
  {
    asio::io_context io;
    auto io_thread = std::this_thread::get_id();
    server::group_committer<store::registry_store> committer(io, opened(file));
    int ok = 0, taken = 0;
    bool resumed_on_io = true;
    for (int i = 0; i < 200; ++i) {
      asio::co_spawn(io, [&, i]() -> asio::awaitable<void> {
        // Every name twice: exactly one of each pair is accepted.
        store::registry_store::operation op =
            store::registry_store::add_op{"user" + std::to_string(i / 2), "127.0.0.1",
                                          static_cast<std::uint16_t>(1000 + i)};
        auto r = co_await committer.write(std::move(op));
        resumed_on_io = resumed_on_io && std::this_thread::get_id() == io_thread;
        if (r) {
          ++ok;
        } else if (r.error() == errc::name_taken) {
          ++taken;
        }
      }, asio::detached);
    }
    io.run();
    CHECK(ok == 100);
    CHECK(taken == 100);
    CHECK(resumed_on_io);
    // Concurrent writes share transactions.
    CHECK(committer.groups_committed() < 200);
  }
  CHECK(names_in(file) == 100);
}

TEST_CASE("group_committer on the io thread: one transaction per turn, answers in order") {
  server_test::temp_dir dir("gc-io");
  auto file = dir.path / "registry.sqlite3";
  {
    asio::io_context io;
    server::group_committer<store::registry_store> committer(io, opened(file), 64,
                                                             server::commit_thread::io);
    std::vector<int> answered;  // indices, in the order their results came
    std::vector<bool> ok(200, false);
    // Queued in one handler (one turn): 200 writes, in groups of at most 64.
    asio::post(io, [&] {
      for (int i = 0; i < 200; ++i) {
        store::registry_store::operation op =
            store::registry_store::add_op{"user" + std::to_string(i / 2), "127.0.0.1",
                                          static_cast<std::uint16_t>(1000 + i)};
        committer.submit(std::move(op), [&, i](result<void> r) {
          answered.push_back(i);
          ok[static_cast<std::size_t>(i)] = r.has_value();
        });
      }
      CHECK(committer.groups_committed() == 0);  // not before this turn ends
    });
    io.run();
    REQUIRE(answered.size() == 200);
    for (int i = 0; i < 200; ++i) {
      CHECK(answered[static_cast<std::size_t>(i)] == i);
      // Commit order: the first of each pair wins.
      CHECK(ok[static_cast<std::size_t>(i)] == (i % 2 == 0));
    }
    CHECK(committer.groups_committed() == 4);  // 64 + 64 + 64 + 8

    // A later turn starts a new transaction.
    io.restart();
    bool later = false;
    committer.submit(store::registry_store::add_op{"late", "127.0.0.1", 1},
                     [&](result<void> r) { later = r.has_value(); });
    io.run();
    CHECK(later);
    CHECK(committer.groups_committed() == 5);

    // close() commits what is queued; its results go through the io_context,
    // and later writes are refused.
    io.restart();
    bool closed_ok = false, refused = false;
    committer.submit(store::registry_store::add_op{"last", "127.0.0.1", 2},
                     [&](result<void> r) { closed_ok = r.has_value(); });
    committer.close();
    committer.submit(store::registry_store::add_op{"after", "127.0.0.1", 3},
                     [&](result<void> r) { refused = !r && r.error() == errc::overloaded; });
    io.run();
    CHECK(closed_ok);
    CHECK(refused);
  }
  CHECK(names_in(file) == 102);  // 100 + late + last
}

TEST_CASE("group_committer on the io thread: the writes of one handler are one group") {
  // The connections' readiness of a turn is handed out by one handler, so a
  // turn's requests are queued by one handler: one transaction, one fsync.
  // A write queued by a later handler goes into a group of its own.
  using committer_type = server::group_committer<store::registry_store>;
  server_test::temp_dir dir("gc-io-turn");
  auto store = store::registry_store::open(dir.path / "registry.sqlite3");
  REQUIRE(store);
  asio::io_context io(1);
  committer_type committer(io, std::move(*store), 64, server::commit_thread::io);
  int answered = 0;
  std::function<void(int)> turn = [&](int n) {
    for (int i = 0; i < 5; ++i) {
      committer.submit(
          store::registry_store::add_op{"t" + std::to_string(n) + "u" + std::to_string(i), "h", 1},
          [&](result<void> r) { answered += r ? 1 : 0; });
    }
    if (n < 2) asio::post(io, [&, n] { turn(n + 1); });
  };
  asio::post(io, [&] { turn(0); });
  io.run();
  CHECK(answered == 15);
  CHECK(committer.groups_committed() == 3);
}

TEST_CASE("group_committer on the io thread: destroyed with writes queued, it commits them") {
  server_test::temp_dir dir("gc-io2");
  auto file = dir.path / "registry.sqlite3";
  {
    asio::io_context io;
    int answered = 0;
    {
      server::group_committer<store::registry_store> committer(io, opened(file), 512,
                                                               server::commit_thread::io);
      for (int i = 0; i < 3; ++i) {
        committer.submit(store::registry_store::add_op{"u" + std::to_string(i), "h", 1},
                         [&](result<void> r) { answered += r ? 1 : 0; });
      }
    }
    // Its posted commit finds it gone; the destructor's results still arrive.
    io.run();
    CHECK(answered == 3);
  }
  CHECK(names_in(file) == 3);
}

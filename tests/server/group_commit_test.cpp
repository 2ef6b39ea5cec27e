#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <filesystem>
#include <thread>

#include "improto/server/group_commit.hpp"
#include "improto/store/registry_store.hpp"

using namespace improto;

TEST_CASE("group_committer commits off the io thread and answers each write") {
  auto dir = std::filesystem::temp_directory_path() /
             ("improto-gc-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto file = dir / "registry.sqlite3";
  {
    auto store = store::registry_store::open(file);
    REQUIRE(store);
    asio::io_context io;
    auto io_thread = std::this_thread::get_id();
    server::group_committer<store::registry_store> committer(io, std::move(*store));
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
  auto reopened = store::registry_store::open(file);
  REQUIRE(reopened);
  CHECK(reopened->list()->size() == 100);
  std::filesystem::remove_all(dir);
}

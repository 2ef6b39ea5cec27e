// registry_server and registry_client in one process, on one io_context.

#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <filesystem>
#include <functional>
#include <string>
#include <unistd.h>

#include "improto/client/registry_client.hpp"
#include "improto/server/registry_server.hpp"
#include "server_support.hpp"

using namespace improto;
using namespace std::chrono_literals;
using server_test::run;
using server_test::temp_dir;

namespace {

server::registry_config config_for(const temp_dir& dir) {
  server::registry_config c;
  c.port = 0;
  c.data_dir = dir.path;
  c.store.synchronous = store::sync_level::off;  // these tests are not about fsync
  return c;
}

}  // namespace

TEST_CASE("client and server: register, list, logout with typed errors") {
  temp_dir dir("roundtrip");
  asio::io_context io;
  auto srv = server::registry_server::bind(io, config_for(dir));
  REQUIRE(srv);
  (*srv)->start();
  client::registry_client c("127.0.0.1", (*srv)->local_endpoint().port());

  run(io, [&]() -> asio::awaitable<void> {
    auto empty = co_await c.list();
    REQUIRE(empty);
    CHECK(empty->empty());  // the server's 400 means nobody

    CHECK(co_await c.register_user("alice", "127.0.0.1", 4001));
    CHECK(co_await c.register_user("bob", "::1", 4002));
    auto taken = co_await c.register_user("alice", "127.0.0.2", 5000);
    REQUIRE(!taken);
    CHECK(taken.error() == errc::name_taken);
    // Refused before anything is sent.
    auto bad = co_await c.register_user("a:b", "127.0.0.1", 1);
    REQUIRE(!bad);
    CHECK(bad.error() == errc::invalid_name);

    auto all = co_await c.list();
    REQUIRE(all);
    REQUIRE(all->size() == 2);
    CHECK((*all)[0] == registry::entry{"alice", "127.0.0.1", 4001});
    CHECK((*all)[1] == registry::entry{"bob", "::1", 4002});

    auto wrong = co_await c.logout("alice", "127.0.0.1", 9999);
    REQUIRE(!wrong);
    CHECK(wrong.error() == errc::not_found);
    CHECK(co_await c.logout("alice", "127.0.0.1", 4001));
    auto again = co_await c.logout("alice", "127.0.0.1", 4001);
    REQUIRE(!again);
    CHECK(again.error() == errc::not_found);
  });
  CHECK((*srv)->user_count() == 1);
  // Every call above went over one kept connection.
  CHECK((*srv)->connection_count() == 1);
  c.close();
  (*srv)->stop();
  io.run_for(200ms);
  CHECK((*srv)->connection_count() == 0);
}

TEST_CASE("register_here registers the local address of the connection") {
  temp_dir dir("here");
  asio::io_context io;
  auto srv = server::registry_server::bind(io, config_for(dir));
  REQUIRE(srv);
  (*srv)->start();
  client::registry_client c("127.0.0.1", (*srv)->local_endpoint().port());
  run(io, [&]() -> asio::awaitable<void> {
    auto me = co_await c.register_here("carol");
    REQUIRE(me);
    CHECK(me->user == "carol");
    CHECK(me->host == "127.0.0.1");
    CHECK(me->port != 0);
    CHECK(me->port != (*srv)->local_endpoint().port());
    auto all = co_await c.list();
    REQUIRE(all);
    REQUIRE(all->size() == 1);
    CHECK((*all)[0] == *me);
  });
}

TEST_CASE("a kept connection the server dropped is replaced transparently") {
  temp_dir dir("reconnect");
  asio::io_context io;
  auto config = config_for(dir);
  config.stream.idle_timeout = 100ms;
  auto srv = server::registry_server::bind(io, config);
  REQUIRE(srv);
  (*srv)->start();
  client::registry_client c("127.0.0.1", (*srv)->local_endpoint().port());
  run(io, [&]() -> asio::awaitable<void> {
    CHECK(co_await c.register_user("dan", "127.0.0.1", 7000));
    asio::steady_timer pause(io, 400ms);  // the server closes the idle connection
    co_await pause.async_wait(net::use_nothrow);
    auto all = co_await c.list();
    REQUIRE(all);
    CHECK(all->size() == 1);
  });
}

TEST_CASE("the list survives the server and concurrent writes are all committed") {
  temp_dir dir("durable");
  {
    asio::io_context io;
    auto config = config_for(dir);
    config.store.synchronous = store::sync_level::full;
    auto srv = server::registry_server::bind(io, config);
    REQUIRE(srv);
    (*srv)->start();
    std::uint16_t port = (*srv)->local_endpoint().port();
    // Separate clients: separate connections, so commits group across them.
    std::vector<std::unique_ptr<client::registry_client>> clients;
    int ok = 0;
    int finished = 0;
    for (int i = 0; i < 40; ++i) {
      clients.push_back(std::make_unique<client::registry_client>("127.0.0.1", port));
      asio::co_spawn(io, [&, i]() -> asio::awaitable<void> {
        std::string name = "user" + std::to_string(i);
        auto r = co_await clients[static_cast<std::size_t>(i)]->register_user(
            name, "127.0.0.1", static_cast<std::uint16_t>(9000 + i));
        if (r) ++ok;
        ++finished;
      }, asio::detached);
    }
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (finished < 40 && std::chrono::steady_clock::now() < deadline) io.run_for(10ms);
    CHECK(ok == 40);
    CHECK((*srv)->user_count() == 40);
    CHECK((*srv)->pending_writes() == 0);
  }
  asio::io_context io;
  auto again = server::registry_server::bind(io, config_for(dir));
  REQUIRE(again);
  CHECK((*again)->user_count() == 40);
}

TEST_CASE("bind errors are values") {
  temp_dir dir("errors");
  asio::io_context io;
  auto config = config_for(dir);
  config.data_dir = dir.path / "missing";
  auto missing = server::registry_server::bind(io, config);
  REQUIRE(!missing);
  CHECK(missing.error() == errc::storage_error);

  auto first = server::registry_server::bind(io, config_for(dir));
  REQUIRE(first);
  // Its own data: with --sync off the first server keeps its file to itself.
  temp_dir other("errors-2");
  auto taken = config_for(other);
  taken.port = (*first)->local_endpoint().port();
  auto second = server::registry_server::bind(io, taken);
  REQUIRE(!second);
  CHECK(second.error() == errc::address_in_use);
}

TEST_CASE("client errors: refused, no answer in time") {
  asio::io_context io;
  // A port nobody listens on: bind one, note it, close it.
  std::uint16_t closed_port = 0;
  {
    asio::ip::tcp::acceptor probe(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    closed_port = probe.local_endpoint().port();
  }
  // A listener that accepts (in the backlog) and never answers.
  asio::ip::tcp::acceptor mute(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  client::registry_options quick;
  quick.reply_timeout = 200ms;
  client::registry_client refused("127.0.0.1", closed_port, quick);
  client::registry_client silent("127.0.0.1", mute.local_endpoint().port(), quick);
  run(io, [&]() -> asio::awaitable<void> {
    auto r = co_await refused.list();
    REQUIRE(!r);
    CHECK(r.error() == errc::connection_refused);
    auto t0 = std::chrono::steady_clock::now();
    auto s = co_await silent.register_here("eve");
    REQUIRE(!s);
    CHECK(s.error() == errc::timeout);
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);  // the default is 10 s
  });
}

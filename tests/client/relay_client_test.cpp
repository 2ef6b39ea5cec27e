// relay_client against an in-process relay_server: what the client refuses
// to write.

#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <string>
#include <utility>
#include <vector>

#include "improto/client/relay_client.hpp"
#include "improto/server/relay_server.hpp"

using namespace improto;

TEST_CASE("relay_client::send refuses a recipient that would smuggle a second SEND") {
  asio::io_context io;
  server::relay_config config;
  config.port = 0;
  auto relay = server::relay_server::bind(io, config);
  REQUIRE(relay);
  (*relay)->start();
  auto port = (*relay)->local_endpoint().port();

  std::vector<std::pair<std::string, std::string>> bob_got, carol_got;
  result<void> smuggled;
  result<void> plain = fail(errc::io_error, "not run");
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        client::relay_events bob_events, carol_events;
        bob_events.on_message = [&](std::string_view from, std::string_view body) {
          bob_got.emplace_back(from, body);
        };
        carol_events.on_message = [&](std::string_view from, std::string_view body) {
          carol_got.emplace_back(from, body);
        };
        auto bob = co_await client::relay_client::connect("127.0.0.1", port, "bob", bob_events);
        auto carol =
            co_await client::relay_client::connect("127.0.0.1", port, "carol", carol_events);
        auto alice = co_await client::relay_client::connect("127.0.0.1", port, "alice", {});
        if (bob && carol && alice) {
          std::string to = "bob\nContent-length: 1\n\nxSEND carol";
          std::string body = "hi";
          smuggled = co_await (*alice)->send(to, body);
          // The next message on the same connection arrives as the only one:
          // nothing of the refused one was written.
          std::string bob_name = "bob";
          std::string hello = "hello";
          plain = co_await (*alice)->send(bob_name, hello);
          (*alice)->close();
        }
        if (bob) (*bob)->close();
        if (carol) (*carol)->close();
        (*relay)->stop();
        done = true;
      },
      asio::detached);
  io.run();

  REQUIRE(done);
  REQUIRE_FALSE(smuggled);
  CHECK(smuggled.error() == errc::invalid_argument);
  CHECK(smuggled.error().message().find("recipient") != std::string::npos);
  CHECK(smuggled.error().message().find("control character") != std::string::npos);
  REQUIRE_MESSAGE(plain, plain.error().message());
  REQUIRE(bob_got.size() == 1);
  CHECK(bob_got[0] == std::pair<std::string, std::string>{"alice", "hello"});
  CHECK(carol_got.empty());
}

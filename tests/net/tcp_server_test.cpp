#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/socket.h>

#include <asio/read.hpp>

#include "improto/net/ordered_replies.hpp"
#include "improto/net/tcp_server.hpp"
#include "scaffold_support.hpp"

using namespace improto;
using namespace scaffold_test;

namespace {

// Echoes every read until the peer goes.
asio::awaitable<void> echo(std::shared_ptr<net::tcp_session> s) {
  while (true) {
    auto data = co_await s->conn->read();
    if (!data) break;
    s->conn->send(*data);
  }
  s->conn->close_after_flush();
}

net::tcp_server::session_factory plain_sessions() {
  return [](std::shared_ptr<net::tcp_connection> c) -> std::shared_ptr<net::tcp_session> {
    return std::make_shared<net::tcp_session>(std::move(c));
  };
}

}  // namespace

TEST_CASE("tcp_server refuses past the connection limit with the refusal, then serves again") {
  run([](asio::io_context& io) -> asio::awaitable<void> {
    net::stream_limits limits;
    limits.max_connections = 1;
    std::vector<std::string> lines;
    net::tcp_server_options options;
    options.refusal = "BUSY\n";
    options.log = [&](std::string_view line) { lines.emplace_back(line); };
    auto server = net::tcp_server::bind(io, "127.0.0.1", 0, limits, options);
    REQUIRE(server);
    server->start(plain_sessions(), echo);
    auto port = server->local_endpoint().port();

    auto first = co_await connect_to(io, port);
    co_await write_all(first, "one");
    auto got1 = co_await read_some_bytes(first, 3);
    CHECK(got1 == "one");
    CHECK(server->session_count() == 1);

    // Refused at once, with the protocol's answer, not left in the backlog.
    auto second = co_await connect_to(io, port);
    auto got2 = co_await read_to_end(second);
    CHECK(got2 == "BUSY\n");
    CHECK(server->session_count() == 1);

    // Once the first has gone, a newcomer is served.
    first.close();
    bool ok1 = co_await wait_for(io, [&] { return server->session_count() == 0; });
    CHECK(ok1);
    auto third = co_await connect_to(io, port);
    co_await write_all(third, "three");
    auto got3 = co_await read_some_bytes(third, 5);
    CHECK(got3 == "three");
    server->stop();
    auto got4 = co_await read_to_end(third);
    CHECK(got4 == "");
    bool ok2 = co_await wait_for(io, [&] { return server->session_count() == 0; });
    CHECK(ok2);
    CHECK(lines.empty());  // nothing to report: no descriptor shortage
  });
}

namespace {

// A session owed one reply, completed by the test: stop() must let it out.
struct owing_session : net::tcp_session {
  owing_session(asio::io_context& io, std::shared_ptr<net::tcp_connection> c)
      : tcp_session(std::move(c)),
        replies(io.get_executor(), conn, 1 << 20, net::ordered_replies::overflow::wait) {}
  void on_stop() override {
    stopped = true;
    if (replies.owed() == 0) conn->close_after_flush();
    replies.wake();
  }
  net::ordered_replies replies;
  std::optional<net::ordered_replies::slot> owed;
  bool stopped = false;
};

}  // namespace

TEST_CASE("tcp_server stop drains a session owed replies, then closes it; no new connections") {
  run([](asio::io_context& io) -> asio::awaitable<void> {
    net::stream_limits limits;
    auto server = net::tcp_server::bind(io, "127.0.0.1", 0, limits);
    REQUIRE(server);
    std::shared_ptr<owing_session> live;
    server->start(
        [&](std::shared_ptr<net::tcp_connection> c) -> std::shared_ptr<net::tcp_session> {
          live = std::make_shared<owing_session>(io, std::move(c));
          return live;
        },
        [](std::shared_ptr<net::tcp_session> base) -> asio::awaitable<void> {
          auto s = std::static_pointer_cast<owing_session>(base);
          auto data = co_await s->conn->read();
          REQUIRE(data);
          s->replies.push("first\n");
          s->owed = s->replies.reserve();  // answered later
          s->replies.push("third\n");
          while (s->replies.owed() > 0 && s->conn->is_open()) co_await s->replies.wait();
          s->conn->close_after_flush();
        });
    auto port = server->local_endpoint().port();
    auto client = co_await connect_to(io, port);
    co_await write_all(client, "go");
    auto got5 = co_await read_some_bytes(client, 6);
    CHECK(got5 == "first\n");
    bool ok3 = co_await wait_for(io, [&] { return live && live->owed.has_value(); });
    CHECK(ok3);

    server->stop();
    CHECK(live->stopped);
    CHECK(live->conn->is_open());  // still owed "second"
    CHECK(server->session_count() == 1);

    asio::ip::tcp::socket late(io);
    auto [ec] = co_await late.async_connect({asio::ip::make_address("127.0.0.1"), port},
                                           net::use_nothrow);
    CHECK(ec == asio::error::connection_refused);

    live->replies.fill(*live->owed, "second\n");
    auto got6 = co_await read_to_end(client);
    CHECK(got6 == "second\nthird\n");
    bool ok4 = co_await wait_for(io, [&] { return server->session_count() == 0; });
    CHECK(ok4);
    server->stop();  // twice is harmless
  });
}

namespace {

enum class ending { destroy_running, stop_destroy_rerun, destroy_unrun };

// Runs `io` until `condition` holds (a generous bound, not timing).
template <class Condition>
bool drive(asio::io_context& io, Condition condition) {
  auto until = net::clock::now() + 30s;
  while (!condition()) {
    if (net::clock::now() > until) return false;
    if (io.stopped()) io.restart();
    io.run_one_for(5ms);
  }
  return true;
}

// True once the peer's side of `s` is closed (what it sent is discarded);
// false if it is still open after 30 s.
bool ended(asio::ip::tcp::socket& s) {
  s.non_blocking(false);
  timeval limit{30, 0};
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  char buf[256];
  std::error_code ec;
  while (!ec) s.read_some(asio::buffer(buf), ec);
  return ec == asio::error::eof || ec == asio::error::connection_reset;
}

}  // namespace

// The fuzz finding of docs/fuzzing.md: a server destroyed while its accept
// (and its sessions) had completions queued, the io_context then run again,
// resumed coroutines on the freed server. Clients here are blocking sockets
// on a second io_context: the server's runs only when driven.
TEST_CASE("tcp_server destroyed with sessions and an accept in flight: no use after free, no leak") {
  for (auto how : {ending::destroy_running, ending::stop_destroy_rerun, ending::destroy_unrun}) {
    CAPTURE(static_cast<int>(how));
    auto io = std::make_unique<asio::io_context>();
    auto server = std::make_unique<net::tcp_server>(
        *net::tcp_server::bind(*io, "127.0.0.1", 0, net::stream_limits{}));
    server->start(plain_sessions(), echo);
    asio::io_context client_io;
    asio::ip::tcp::endpoint at(asio::ip::make_address("127.0.0.1"), server->local_endpoint().port());
    asio::ip::tcp::socket first(client_io), second(client_io);
    first.connect(at);
    asio::write(first, asio::buffer(std::string_view("ping")));
    REQUIRE(drive(*io, [&] { return server->session_count() == 1 && first.available() >= 4; }));
    std::string got(4, '\0');
    asio::read(first, asio::buffer(got));
    CHECK(got == "ping");
    // Accepted by the kernel; the server's accept completes on its next turn.
    second.connect(at);

    switch (how) {
      case ending::destroy_running:
        server.reset();
        break;
      case ending::stop_destroy_rerun:
        server->stop();
        server.reset();
        break;
      case ending::destroy_unrun:
        server.reset();
        io.reset();
        break;
    }
    if (io) {
      io->restart();
      io->run_for(60s);
      // Every coroutine of the server ended: nothing is left to run.
      CHECK(io->stopped());
    }
    CHECK(ended(first));
    CHECK(ended(second));
    io.reset();
  }
}

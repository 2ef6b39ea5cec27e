#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "improto/net/ordered_replies.hpp"
#include "improto/net/tcp.hpp"
#include "scaffold_support.hpp"

using namespace improto;
using namespace scaffold_test;

namespace {

// A connected pair: the server side as a started tcp_connection.
struct pair {
  std::shared_ptr<net::tcp_connection> server;
  asio::ip::tcp::socket client;
};

asio::awaitable<pair> make_pair(asio::io_context& io, const net::stream_limits& limits) {
  auto listener = net::tcp_listener::bind(io, "127.0.0.1", 0);
  REQUIRE(listener);
  auto client = co_await connect_to(io, listener->local_endpoint().port());
  std::function<std::size_t()> none = [] { return std::size_t{0}; };
  auto socket = co_await listener->accept(none, 1);
  REQUIRE(socket);
  auto conn = std::make_shared<net::tcp_connection>(std::move(*socket), limits);
  conn->start();
  co_return pair{std::move(conn), std::move(client)};
}

}  // namespace

TEST_CASE("ordered_replies releases replies in request order when completed out of order") {
  run([](asio::io_context& io) -> asio::awaitable<void> {
    static const net::stream_limits limits;
    auto p = co_await make_pair(io, limits);
    net::ordered_replies replies(io.get_executor(), p.server, limits.max_queued_bytes,
                                 net::ordered_replies::overflow::wait);
    auto a = replies.reserve();
    auto b = replies.reserve();
    replies.push("c;");  // complete now, but behind a and b
    auto d = replies.reserve();
    CHECK(replies.owed() == 4);

    replies.fill(d, "d;");
    replies.fill(b, "b;");
    CHECK(replies.owed() == 4);  // a holds them all back
    CHECK(p.server->queued_bytes() == 0);
    replies.fill(a, "a;");
    CHECK(replies.owed() == 0);
    replies.fill(a, "again;");  // a slot already sent is ignored
    replies.push("e;");         // nothing owed: straight out
    auto got = co_await read_some_bytes(p.client, 10);
    CHECK(got == "a;b;c;d;e;");
    p.server->close();
  });
}

TEST_CASE("ordered_replies streams a body larger than the queue as the peer reads, in order") {
  run([](asio::io_context& io) -> asio::awaitable<void> {
    static const net::stream_limits limits = [] {
      net::stream_limits l;
      l.max_queued_bytes = 64 * 1024;
      return l;
    }();
    auto p = co_await make_pair(io, limits);
    net::ordered_replies replies(io.get_executor(), p.server, limits.max_queued_bytes,
                                 net::ordered_replies::overflow::wait);
    std::string body;
    for (int i = 0; body.size() < 1'000'000; ++i) body += std::to_string(i) + ",";
    auto shared = std::make_shared<std::string>(body);

    auto before = replies.reserve();
    bool started = false;
    replies.push_stream([&](std::string& head) {
      started = true;
      head = "HEAD " + std::to_string(shared->size()) + "\n";
      return net::ordered_replies::stream_body{shared, shared->size()};
    });
    replies.push("after\n");
    CHECK_FALSE(started);  // starts when it reaches the front
    replies.fill(before, "before\n");
    CHECK(started);
    CHECK(replies.blocked());  // the body waits for the peer to read
    CHECK(p.server->queued_bytes() <= limits.max_queued_bytes);
    // Appending to the shared body does not change what this answer sends.
    shared->append("not part of it");

    std::string expected = "before\nHEAD " + std::to_string(body.size()) + "\n" + body + "after\n";
    std::string got;
    while (got.size() < expected.size()) {
      std::size_t want = std::min<std::size_t>(4096, expected.size() - got.size());
      auto piece = co_await read_some_bytes(p.client, want);
      if (piece.empty()) break;
      got += piece;
      CHECK(p.server->queued_bytes() <= limits.max_queued_bytes);
    }
    CHECK(got.size() == expected.size());
    CHECK(got == expected);
    bool settled = co_await wait_for(io, [&] { return replies.owed() == 0 && !replies.blocked(); });
    CHECK(settled);
    p.server->close();
  });
}

TEST_CASE("ordered_replies with overflow::close closes a peer that does not read") {
  run([](asio::io_context& io) -> asio::awaitable<void> {
    static const net::stream_limits limits = [] {
      net::stream_limits l;
      l.max_queued_bytes = 4096;
      return l;
    }();
    auto p = co_await make_pair(io, limits);
    std::vector<std::string> lines;
    net::ordered_replies replies(io.get_executor(), p.server, limits.max_queued_bytes,
                                 net::ordered_replies::overflow::close,
                                 [&](std::string_view line) { lines.emplace_back(line); });
    auto late = replies.reserve();
    std::string reply(1000, 'x');
    // The client reads nothing: the kernel buffers fill, then our queue.
    for (int i = 0; i < 100'000 && p.server->is_open(); ++i) {
      replies.push(reply);
      if (replies.owed() > 0) replies.fill(late, reply);
      asio::steady_timer yield(io, 0ms);
      co_await yield.async_wait(net::use_nothrow);
    }
    CHECK_FALSE(p.server->is_open());
    CHECK(replies.owed() == 0);  // dropped with the connection
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].find("reply queue full, closing") != std::string::npos);
  });
}

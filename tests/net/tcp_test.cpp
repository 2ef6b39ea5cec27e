#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/detached.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <optional>
#include <set>
#include <thread>

#include "improto/net/tcp.hpp"

using namespace improto;
using namespace std::chrono_literals;

namespace {

// Echo server on the transport: each read is sent back as is.
struct echo_server {
  asio::io_context io;
  net::stream_limits limits;
  std::optional<net::tcp_listener> listener;
  std::atomic<std::size_t> live = 0;  // read by the test thread too
  // Sent after the peer's end of stream, once `late_delay` has passed (a
  // reply still being committed when the peer half-closed).
  std::string late_reply;
  std::chrono::milliseconds late_delay{0};
  std::vector<std::string> close_reasons;
  std::vector<asio::ip::tcp::endpoint> close_remotes;  // remote() once closed
  std::size_t accepted_blocking_or_inherited = 0;  // should stay 0 (accept4 flags)
  std::set<std::shared_ptr<net::tcp_connection>> connections;

  explicit echo_server(net::stream_limits lim) : limits(lim) {
    auto l = net::tcp_listener::bind(io, "127.0.0.1", 0);
    REQUIRE(l);
    listener.emplace(std::move(*l));
    asio::co_spawn(io, accept_loop(), asio::detached);
  }

  std::uint16_t port() const { return listener->local_endpoint().port(); }

  asio::awaitable<void> accept_loop() {
    while (true) {
      // A named callable: g++ 12 mishandles temporaries inside co_await.
      std::function<std::size_t()> count = [this] { return live.load(); };
      auto socket = co_await listener->accept(count, limits.max_connections);
      if (!socket && socket.error() == errc::overloaded) continue;
      if (!socket) co_return;
      int fd = socket->native_handle();
      if ((::fcntl(fd, F_GETFL) & O_NONBLOCK) == 0 || (::fcntl(fd, F_GETFD) & FD_CLOEXEC) == 0) {
        ++accepted_blocking_or_inherited;
      }
      auto conn = std::make_shared<net::tcp_connection>(std::move(*socket), limits);
      conn->start();
      asio::co_spawn(io, session(conn), asio::detached);
    }
  }

  asio::awaitable<void> session(std::shared_ptr<net::tcp_connection> conn) {
    ++live;
    connections.insert(conn);
    while (true) {
      auto data = co_await conn->read();
      if (!data) break;
      // A trailing '+' marks an unfinished message: the slow-loris deadline applies.
      conn->set_mid_message(!data->empty() && data->back() == '+');
      if (!conn->send(*data)) conn->close();
    }
    if (conn->peer_finished() && conn->is_open()) {
      CHECK(conn->is_open());  // end of stream leaves it writable
      if (!late_reply.empty()) {
        asio::steady_timer later(io, late_delay);
        co_await later.async_wait(net::use_nothrow);
        CHECK(conn->send(late_reply));
      }
      conn->close_after_flush();
      // The writer flushes, then closes.
      while (conn->is_open()) {
        asio::steady_timer tick(io, 1ms);
        co_await tick.async_wait(net::use_nothrow);
      }
    }
    close_reasons.emplace_back(conn->close_reason());
    close_remotes.push_back(conn->remote());
    connections.erase(conn);
    --live;
  }
};

// Blocking client socket with a receive timeout, for driving the server.
struct client {
  asio::io_context io;
  asio::ip::tcp::socket socket{io};
  explicit client(std::uint16_t port) {
    socket.connect({asio::ip::make_address("127.0.0.1"), port});
    timeval tv{5, 0};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void send(std::string_view s) { asio::write(socket, asio::buffer(s.data(), s.size())); }
  std::string receive(std::size_t n) {
    std::string out(n, '\0');
    asio::read(socket, asio::buffer(out));
    return out;
  }
  // Everything until the server's end of stream (or the receive timeout).
  std::string receive_all() {
    std::string out;
    char buf[4096];
    while (true) {
      auto n = ::recv(socket.native_handle(), buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }
  // True when the server closed the connection.
  // Plain recv, so SO_RCVTIMEO bounds the wait (Asio's would poll past it).
  bool closed_by_server() {
    char c;
    auto n = ::recv(socket.native_handle(), &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }
  // The same, without waiting: false while the connection is open and silent.
  bool closed_already() {
    char c;
    auto n = ::recv(socket.native_handle(), &c, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }
};

// The next connection of `listener`, started.
asio::awaitable<std::shared_ptr<net::tcp_connection>> accept_one(net::tcp_listener& listener,
                                                                 const net::stream_limits& limits) {
  std::function<std::size_t()> none = [] { return std::size_t{0}; };
  auto socket = co_await listener.accept(none, 10);
  REQUIRE(socket);
  auto conn = std::make_shared<net::tcp_connection>(std::move(*socket), limits);
  conn->start();
  co_return conn;
}

}  // namespace

TEST_CASE("tcp transport echoes and batches") {
  echo_server server({});
  std::thread runner([&] { server.io.run(); });
  {
    client c(server.port());
    c.send("hello");
    CHECK(c.receive(5) == "hello");
    std::string big(200'000, 'x');
    c.send(big);
    CHECK(c.receive(big.size()) == big);
  }
  server.listener->close();
  asio::post(server.io, [&] {
    for (auto& conn : server.connections) conn->close();
  });
  runner.join();
}

// Waiting connections share one edge-triggered epoll set, drained 128
// events at a time: more waiters than that, woken in one burst, must all
// be served, and every one served again after it waited once more.
TEST_CASE("hundreds of waiting connections woken at once are all served") {
  echo_server server({});
  std::thread runner([&] { server.io.run(); });
  {
    std::vector<std::unique_ptr<client>> clients;
    for (int i = 0; i < 300; ++i) clients.push_back(std::make_unique<client>(server.port()));
    for (int round = 0; round < 2; ++round) {
      // Each server session is (or soon is) waiting for its client's bytes.
      for (std::size_t i = 0; i < clients.size(); ++i) {
        clients[i]->send("m" + std::to_string(i) + "r" + std::to_string(round));
      }
      for (std::size_t i = 0; i < clients.size(); ++i) {
        auto want = "m" + std::to_string(i) + "r" + std::to_string(round);
        CHECK(clients[i]->receive(want.size()) == want);
      }
    }
    CHECK(server.live.load() == 300);
  }
  server.listener->close();
  asio::post(server.io, [&] {
    for (auto& conn : server.connections) conn->close();
  });
  runner.join();
}

TEST_CASE("idle and partial-message deadlines close slow peers, not others") {
  // Deadlines long enough that the busy client's pauses (a few ms, more on
  // a loaded machine or under ASan) never reach them.
  net::stream_limits lim;
  lim.idle_timeout = 1500ms;
  lim.message_timeout = 800ms;
  echo_server server(lim);
  std::thread runner([&] { server.io.run(); });
  {
    client idle(server.port());
    client loris(server.port());
    client busy(server.port());
    loris.send("GET /+");  // an unfinished message, never completed
    CHECK(loris.receive(6) == "GET /+");
    // The busy client keeps talking through both deadlines, until the
    // others are closed (bounded: a deadline that never fires fails).
    auto give_up = std::chrono::steady_clock::now() + 30s;
    int pings = 0;
    bool loris_closed = false;
    bool idle_closed = false;
    while (!(loris_closed && idle_closed) && std::chrono::steady_clock::now() < give_up) {
      busy.send("ping");
      CHECK(busy.receive(4) == "ping");
      ++pings;
      std::this_thread::sleep_for(20ms);
      loris_closed = loris_closed || loris.closed_already();
      idle_closed = idle_closed || idle.closed_already();
    }
    CHECK(loris_closed);
    CHECK(idle_closed);
    CHECK(pings > 1);
    busy.send("still here");
    CHECK(busy.receive(10) == "still here");
  }
  server.listener->close();
  asio::post(server.io, [&] {
    for (auto& conn : server.connections) conn->close();
  });
  runner.join();
  CHECK(std::count(server.close_reasons.begin(), server.close_reasons.end(), "timeout") == 2);
  // The address is asked for lazily, yet still known for the log line of a
  // connection closed on a deadline.
  for (std::size_t i = 0; i < server.close_reasons.size(); ++i) {
    if (server.close_reasons[i] != "timeout") continue;
    CHECK(server.close_remotes[i].address() == asio::ip::make_address("127.0.0.1"));
    CHECK(server.close_remotes[i].port() != 0);
  }
  CHECK(server.accepted_blocking_or_inherited == 0);
}

TEST_CASE("a peer that never reads fills only its own bounded queue") {
  net::stream_limits lim;
  lim.max_queued_bytes = 64 * 1024;
  echo_server server(lim);
  std::thread runner([&] { server.io.run(); });
  {
    client stuck(server.port());
    int rcvbuf = 4096;
    setsockopt(stuck.socket.native_handle(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    client other(server.port());
    std::string chunk(16 * 1024, 's');
    // The stuck peer sends but never reads: its echo queue hits the bound and
    // the server closes it, instead of buffering without limit.
    bool closed = false;
    for (int i = 0; i < 2000 && !closed; ++i) {
      std::error_code ec;
      asio::write(stuck.socket, asio::buffer(chunk), ec);
      closed = static_cast<bool>(ec);
      other.send("x");
      CHECK(other.receive(1) == "x");
      if (i % 50 == 0) std::this_thread::sleep_for(1ms);
    }
    CHECK(closed);
  }
  server.listener->close();
  asio::post(server.io, [&] {
    for (auto& conn : server.connections) conn->close();
  });
  runner.join();
}

TEST_CASE("connection limit refuses newcomers quickly, with the refusal message") {
  net::stream_limits lim;
  lim.max_connections = 2;
  echo_server server(lim);
  server.listener->set_refusal("BUSY\n");
  std::thread runner([&] { server.io.run(); });
  {
    client a(server.port());
    client b(server.port());
    a.send("a");
    CHECK(a.receive(1) == "a");
    b.send("b");
    CHECK(b.receive(1) == "b");
    client c(server.port());
    CHECK(c.receive_all() == "BUSY\n");
    // A request sent at once does not turn the refusal into a reset.
    client e(server.port());
    e.send("hello?");
    CHECK(e.receive_all() == "BUSY\n");
  }
  {
    // Below the limit again: newcomers are served.
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (server.live.load() >= 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    REQUIRE(server.live.load() < 2);
    client d(server.port());
    d.send("d");
    CHECK(d.receive(1) == "d");
  }
  server.listener->close();
  asio::post(server.io, [&] {
    for (auto& conn : server.connections) conn->close();
  });
  runner.join();
}

TEST_CASE("a peer that shuts down its sending side still gets later replies") {
  echo_server server({});
  server.late_reply = "committed later";
  server.late_delay = 50ms;
  std::thread runner([&] { server.io.run(); });
  {
    client c(server.port());
    c.send("request");
    CHECK(c.receive(7) == "request");
    c.send("+more");
    c.socket.shutdown(asio::ip::tcp::socket::shutdown_send);
    // The echo of what preceded the end of stream, the late reply, then the
    // server's own end of stream.
    CHECK(c.receive_all() == "+morecommitted later");
  }
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (server.live.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  server.listener->close();
  asio::post(server.io, [&] {
    for (auto& conn : server.connections) conn->close();
  });
  runner.join();
  REQUIRE(server.close_reasons.size() == 1);
  CHECK(server.close_reasons[0] == "closed by peer");
}

TEST_CASE("bind and connect report errors as values") {
  asio::io_context io;
  auto first = net::tcp_listener::bind(io, "127.0.0.1", 0);
  REQUIRE(first);
  auto port = first->local_endpoint().port();
  auto second = net::tcp_listener::bind(io, "127.0.0.1", port);
  REQUIRE_FALSE(second);
  CHECK(second.error() == errc::address_in_use);
  CHECK(second.error().message().find("already in use") != std::string::npos);

  auto bad = net::tcp_listener::bind(io, "not-an-ip", 0);
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == errc::invalid_argument);

  first->close();
  std::optional<result<asio::ip::tcp::socket>> outcome;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    outcome = co_await net::connect("127.0.0.1", port, 2s);
  }, asio::detached);
  io.run();
  REQUIRE(outcome);
  REQUIRE_FALSE(*outcome);
  CHECK(outcome->error() == errc::connection_refused);
}

TEST_CASE("host:port parsing") {
  auto hp = net::parse_host_port("127.0.0.1:65432");
  REQUIRE(hp);
  CHECK(hp->host == "127.0.0.1");
  CHECK(hp->port == 65432);
  auto v6 = net::parse_host_port("[::1]:80");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK_FALSE(net::parse_host_port("127.0.0.1"));
  CHECK_FALSE(net::parse_host_port("127.0.0.1:70000"));
  CHECK_FALSE(net::parse_host_port("::1:80"));
  CHECK_FALSE(net::parse_host_port("example.com:80"));
  CHECK(net::parse_host_port("localhost:1")->host == "localhost");
}

TEST_CASE("a last answer reaches a peer whose later bytes the server never reads") {
  // close_after_flush() sends the last answer with MSG_MORE so that the FIN
  // shares its segment; bytes the peer sent meanwhile, still unread at the
  // close, make the kernel answer with a reset, which must not discard that
  // answer (it would without the shutdown() before the close).
  asio::io_context io;
  net::stream_limits limits;
  auto listener = net::tcp_listener::bind(io, "127.0.0.1", 0);
  REQUIRE(listener);
  std::atomic<bool> request_read = false, extra_sent = false;
  std::string answer(3000, 'a');  // more than one segment's worth on a small MSS too
  answer += "end";
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto conn = co_await accept_one(*listener, limits);
        auto request = co_await conn->read();
        REQUIRE(request);
        CHECK(*request == "request");
        request_read = true;
        // The peer's next bytes are in our receive queue before we answer.
        while (!extra_sent.load()) {
          asio::steady_timer tick(io, 1ms);
          co_await tick.async_wait(net::use_nothrow);
        }
        asio::steady_timer settle(io, 20ms);
        co_await settle.async_wait(net::use_nothrow);
        CHECK(conn->send(answer));
        conn->close_after_flush();
        while (conn->is_open()) {
          asio::steady_timer tick(io, 1ms);
          co_await tick.async_wait(net::use_nothrow);
        }
        listener->close();
      },
      asio::detached);
  std::thread runner([&] { io.run(); });
  {
    client c(listener->local_endpoint().port());
    c.send("request");
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!request_read.load() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    c.send("unread bytes the server never asks for");
    extra_sent = true;
    // The answer whole; the reset after it ends receive_all().
    CHECK(c.receive_all() == answer);
  }
  runner.join();
}

TEST_CASE("a peer whose bytes never run out does not keep the thread from the others") {
  // Every read of a flooding peer finds a full chunk; reading on without
  // ever going back to the io_context would starve every other connection
  // of the thread for as long as the flood lasts.
  asio::io_context io;
  net::stream_limits limits;
  auto listener = net::tcp_listener::bind(io, "127.0.0.1", 0);
  REQUIRE(listener);
  client flooder(listener->local_endpoint().port());
  const int sndbuf = 4 << 20;
  ::setsockopt(flooder.socket.native_handle(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  flooder.socket.non_blocking(true);
  const std::string block(64 * 1024, 'f');
  std::size_t preloaded = 0;
  while (true) {
    auto n = ::send(flooder.socket.native_handle(), block.data(), block.size(), MSG_DONTWAIT);
    if (n <= 0) break;
    preloaded += static_cast<std::size_t>(n);
  }
  // Far more than the chunks the check below allows before the other
  // handler runs.
  REQUIRE(preloaded >= 32 * limits.read_chunk);

  std::size_t chunks = 0, bytes = 0;
  std::optional<std::size_t> chunks_when_other_ran;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto conn = co_await accept_one(*listener, limits);
        // Another connection's work, ready before the flood is read.
        asio::post(io, [&] { chunks_when_other_ran = chunks; });
        while (bytes < preloaded) {
          auto data = co_await conn->read();
          REQUIRE(data);
          ++chunks;
          bytes += data->size();
        }
        conn->close();
        listener->close();
      },
      asio::detached);
  io.run();
  CHECK(bytes == preloaded);
  REQUIRE(chunks_when_other_ran);
  CHECK(*chunks_when_other_ran <= 4);
  CHECK(chunks > 16);
}

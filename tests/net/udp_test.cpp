#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/detached.hpp>
#include <optional>
#include <set>
#include <thread>

#include "improto/net/udp.hpp"

using namespace improto;
using namespace std::chrono_literals;

namespace {

struct udp_client {
  asio::io_context io;
  asio::ip::udp::socket socket{io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  udp_client() {
    timeval tv{0, 300'000};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void send(std::string_view s, std::uint16_t port) {
    socket.send_to(asio::buffer(s.data(), s.size()),
                   {asio::ip::make_address("127.0.0.1"), port});
  }
  std::optional<std::string> receive() {
    // Plain recv: Asio's blocking receive would poll past SO_RCVTIMEO.
    std::string buf(70'000, '\0');
    auto n = ::recv(socket.native_handle(), buf.data(), buf.size(), 0);
    if (n < 0) return std::nullopt;
    buf.resize(static_cast<std::size_t>(n));
    return buf;
  }
};

struct echo {
  asio::io_context io;
  std::optional<net::udp_socket> socket;
  std::size_t handled = 0;
  explicit echo(net::datagram_limits lim) {
    auto s = net::udp_socket::bind(io, "127.0.0.1", 0, lim);
    REQUIRE(s);
    socket.emplace(std::move(*s));
    asio::co_spawn(io, socket->serve([this](std::string_view payload,
                                            const asio::ip::udp::endpoint& from,
                                            net::udp_replies& replies) {
      ++handled;
      replies.send(payload, from);
    }), asio::detached);
  }
  std::uint16_t port() const { return socket->local_endpoint().port(); }
  void stop() {
    asio::post(io, [this] { socket->close(); });
  }
};

}  // namespace

TEST_CASE("udp socket answers batches of datagrams") {
  echo server({});
  std::thread runner([&] { server.io.run(); });
  udp_client c;
  for (int i = 0; i < 100; ++i) c.send("ping " + std::to_string(i), server.port());
  std::set<std::string> got;
  for (int i = 0; i < 100; ++i) {
    auto r = c.receive();
    REQUIRE(r);
    got.insert(*r);
  }
  CHECK(got.size() == 100);
  CHECK(got.count("ping 42") == 1);
  std::string empty;
  c.send(empty, server.port());
  CHECK(c.receive() == "");
  server.stop();
  runner.join();
}

// The loop reads a socket that stays full on without waiting for readiness
// again (no edge comes for datagrams that were already there), and yields
// to the thread's other work every 4 full batches.
TEST_CASE("a full socket is read on without a new wait, and other work runs between batches") {
  net::datagram_limits lim;
  lim.batch = 2;
  asio::io_context io;
  auto s = net::udp_socket::bind(io, "127.0.0.1", 0, lim);
  REQUIRE(s);
  std::size_t handled = 0;
  std::optional<std::size_t> other_work_after;
  asio::co_spawn(io, s->serve([&](std::string_view payload, const asio::ip::udp::endpoint& from,
                                  net::udp_replies& replies) {
    if (handled++ == 0) asio::post(io, [&] { other_work_after = handled; });
    replies.send(payload, from);
  }), asio::detached);
  udp_client c;
  constexpr int count = 40;
  // All queued before the server reads anything: one readiness for all.
  for (int i = 0; i < count; ++i) c.send("d" + std::to_string(i), s->local_endpoint().port());
  std::thread runner([&] { io.run(); });
  std::set<std::string> got;
  for (int i = 0; i < count; ++i) {
    auto r = c.receive();
    REQUIRE(r);
    got.insert(*r);
  }
  asio::post(io, [&] { s->close(); });
  runner.join();
  CHECK(got.size() == count);
  CHECK(handled == count);
  REQUIRE(other_work_after);
  CHECK(*other_work_after == 4 * lim.batch);
}

// A slot is a small head packed with the others plus a tail: datagrams of
// every length around and past the head's end come out whole, in one batch.
TEST_CASE("datagrams longer than a slot's head arrive whole") {
  asio::io_context io;
  auto s = net::udp_socket::bind(io, "127.0.0.1", 0, {});
  REQUIRE(s);
  asio::co_spawn(io, s->serve([](std::string_view payload, const asio::ip::udp::endpoint& from,
                                 net::udp_replies& replies) { replies.send(payload, from); }),
                 asio::detached);
  udp_client c;
  std::vector<std::string> sent;
  for (std::size_t size : {1u, 2047u, 2048u, 2049u, 5000u, 3u, 65'507u, 4096u}) {
    std::string d(size, '\0');
    for (std::size_t i = 0; i < size; ++i) d[i] = static_cast<char>('a' + (i * 7 + size) % 26);
    sent.push_back(d);
    // Queued before the server reads: one recvmmsg gets them all.
    c.send(d, s->local_endpoint().port());
  }
  std::thread runner([&] { io.run(); });
  std::multiset<std::string> got;
  for (std::size_t i = 0; i < sent.size(); ++i) {
    auto r = c.receive();
    REQUIRE(r);
    got.insert(*r);
  }
  asio::post(io, [&] { s->close(); });
  runner.join();
  CHECK(got == std::multiset<std::string>(sent.begin(), sent.end()));
}

TEST_CASE("oversized datagrams are dropped, not truncated") {
  net::datagram_limits lim;
  lim.max_datagram = 100;
  echo server(lim);
  std::thread runner([&] { server.io.run(); });
  udp_client c;
  c.send(std::string(101, 'x'), server.port());
  c.send(std::string(100, 'y'), server.port());
  auto r = c.receive();
  REQUIRE(r);
  CHECK(*r == std::string(100, 'y'));
  CHECK_FALSE(c.receive());
  server.stop();
  runner.join();
  CHECK(server.socket->dropped_oversized() == 1);
}

TEST_CASE("per-source rate limit") {
  net::datagram_limits lim;
  lim.rate_per_source = 1;  // one per second after the burst
  lim.burst = 5;
  echo server(lim);
  std::thread runner([&] { server.io.run(); });
  udp_client c;
  for (int i = 0; i < 20; ++i) c.send("x", server.port());
  int answered = 0;
  while (c.receive()) ++answered;
  CHECK(answered >= 5);
  CHECK(answered <= 6);
  server.stop();
  runner.join();
  CHECK(server.socket->dropped_rate() >= 14);
}

TEST_CASE("replies formatted in place with begin() end where the next one starts") {
  asio::io_context io;
  auto s = net::udp_socket::bind(io, "127.0.0.1", 0, {});
  REQUIRE(s);
  net::udp_socket socket = std::move(*s);
  // Per datagram: "<payload>" written in place, "#" sent as a copy, then an
  // empty in-place reply; the last two in the other order for "swap".
  asio::co_spawn(io, socket.serve([](std::string_view payload, const asio::ip::udp::endpoint& from,
                                     net::udp_replies& replies) {
    auto& out = replies.begin(from);
    out += '<';
    out.append(payload);
    out += '>';
    if (payload == "swap") {
      replies.begin(from);
      replies.send("#", from);
    } else {
      replies.send("#", from);
      replies.begin(from);
    }
  }), asio::detached);
  std::thread runner([&] { io.run(); });
  udp_client c;
  const std::uint16_t port = socket.local_endpoint().port();
  c.send("one", port);
  CHECK(c.receive() == "<one>");
  CHECK(c.receive() == "#");
  CHECK(c.receive() == "");
  c.send("swap", port);
  CHECK(c.receive() == "<swap>");
  CHECK(c.receive() == "");
  CHECK(c.receive() == "#");
  // Several datagrams in one batch: each reply keeps its own bytes.
  for (int i = 0; i < 50; ++i) c.send(std::to_string(i), port);
  for (int i = 0; i < 50; ++i) {
    CHECK(c.receive() == "<" + std::to_string(i) + ">");
    CHECK(c.receive() == "#");
    CHECK(c.receive() == "");
  }
  asio::post(io, [&] { socket.close(); });
  runner.join();
}

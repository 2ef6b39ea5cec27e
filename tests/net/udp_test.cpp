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

// Under 2 KiB (imbuddyd's 1 KiB limit) a slot is one whole buffer of the
// limit plus one byte: datagrams up to the limit come out whole in one
// batch, and one byte over it is dropped whatever its neighbours.
TEST_CASE("whole slots: datagrams at and over a limit under 2 KiB, in one batch") {
  net::datagram_limits lim;
  lim.max_datagram = 1024;
  asio::io_context io;
  auto s = net::udp_socket::bind(io, "127.0.0.1", 0, lim);
  REQUIRE(s);
  std::vector<std::string> seen;
  std::vector<std::size_t> sizes;
  asio::co_spawn(io, s->serve_batches([&](std::span<const net::udp_datagram> batch,
                                          net::udp_replies&) {
    sizes.push_back(batch.size());
    for (const auto& d : batch) seen.emplace_back(d.payload);
    s->close();
  }), asio::detached);
  udp_client c;
  std::vector<std::string> kept;
  for (std::size_t size : {1u, 1023u, 1025u, 1024u, 2049u, 64u, 1024u}) {
    std::string d(size, '\0');
    for (std::size_t i = 0; i < size; ++i) d[i] = static_cast<char>('a' + (i * 5 + size) % 26);
    if (size <= lim.max_datagram) kept.push_back(d);
    // Queued before the server reads: one recvmmsg gets them all.
    c.send(d, s->local_endpoint().port());
  }
  io.run();
  CHECK(sizes == std::vector<std::size_t>{5});
  CHECK(seen == kept);
  CHECK(s->dropped_oversized() == 2);
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

// The batch form: one call per recvmmsg batch with every datagram in it, in
// order; replies addressed with the received address bytes as they are.
TEST_CASE("serve_batches hands out whole batches and replies go to the received address") {
  net::datagram_limits lim;
  lim.batch = 8;
  lim.max_datagram = 3000;
  asio::io_context io;
  auto s = net::udp_socket::bind(io, "127.0.0.1", 0, lim);
  REQUIRE(s);
  std::vector<std::size_t> sizes;
  std::vector<std::string> seen;
  std::optional<asio::ip::udp::endpoint> source;
  asio::co_spawn(io, s->serve_batches([&](std::span<const net::udp_datagram> batch,
                                          net::udp_replies& replies) {
    sizes.push_back(batch.size());
    for (const auto& d : batch) {
      seen.emplace_back(d.payload);
      source = d.from.endpoint();
      CHECK(d.from.is_v4());
      CHECK(d.from.size() == sizeof(sockaddr_in));
      auto& out = replies.begin(d.from);
      out += '[';
      out.append(d.payload.substr(0, 10));
      out += ']';
    }
    // Every view of the batch is still valid at its end.
    for (std::size_t i = 0; i < batch.size(); ++i) {
      CHECK(batch[i].payload == seen[seen.size() - batch.size() + i]);
    }
  }), asio::detached);
  udp_client c;
  const std::uint16_t port = s->local_endpoint().port();
  // 20 queued before the server reads: batches of 8, 8 and 4; one of them
  // longer than a slot's head, one over the limit (dropped, not in a batch).
  for (int i = 0; i < 20; ++i) {
    std::string d = i == 5 ? std::string(2500, 'L') : i == 9 ? std::string(3001, 'X')
                                                             : "b" + std::to_string(i);
    c.send(d, port);
  }
  std::thread runner([&] { io.run(); });
  std::vector<std::string> got;
  for (int i = 0; i < 19; ++i) {
    auto r = c.receive();
    REQUIRE(r);
    got.push_back(*r);
  }
  CHECK_FALSE(c.receive());
  asio::post(io, [&] { s->close(); });
  runner.join();
  CHECK(sizes == std::vector<std::size_t>{8, 7, 4});
  REQUIRE(seen.size() == 19);
  CHECK(seen[5] == std::string(2500, 'L'));
  CHECK(seen[9] == "b10");
  CHECK(got[0] == "[b0]");
  CHECK(got[5] == "[LLLLLLLLLL]");
  CHECK(got[18] == "[b19]");
  REQUIRE(source);
  CHECK(*source == c.socket.local_endpoint());
  CHECK(s->dropped_oversized() == 1);
}

// Several datagrams of one batch longer than a slot's head: each is whole
// at once (a single shared buffer for the long ones would hand the handler
// the last one's bytes for all of them).
TEST_CASE("long datagrams of one batch are all whole at the same time") {
  asio::io_context io;
  auto s = net::udp_socket::bind(io, "127.0.0.1", 0, {});
  REQUIRE(s);
  std::vector<std::string> sent;
  std::vector<std::string> seen;
  asio::co_spawn(io, s->serve_batches([&](std::span<const net::udp_datagram> batch,
                                          net::udp_replies&) {
    // Read only after the whole batch was handed out.
    for (const auto& d : batch) seen.emplace_back(d.payload);
    s->close();
  }), asio::detached);
  udp_client c;
  for (std::size_t size : {3000u, 2049u, 10u, 65'507u, 4097u}) {
    std::string d(size, '\0');
    for (std::size_t i = 0; i < size; ++i) d[i] = static_cast<char>('a' + (i * 3 + size) % 26);
    sent.push_back(d);
    c.send(d, s->local_endpoint().port());
  }
  io.run();
  CHECK(seen == sent);
}

TEST_CASE("a udp_address converts to the endpoint it was made from") {
  asio::ip::udp::endpoint v4(asio::ip::make_address("127.0.0.7"), 4242);
  asio::ip::udp::endpoint v6(asio::ip::make_address("::1"), 53);
  net::udp_address a4 = v4, a6 = v6;
  CHECK(a4.is_v4());
  CHECK_FALSE(a6.is_v4());
  CHECK(a4.endpoint() == v4);
  CHECK(a6.endpoint() == v6);
  CHECK(a6.size() == sizeof(sockaddr_in6));
}

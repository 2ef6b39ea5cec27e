// System calls per wake-up of a waiting connection, counted by interposing
// epoll_wait and epoll_ctl (this executable's definitions take precedence
// over libc's for every caller in it, Asio's reactor included; the calls
// are forwarded with syscall(2)). Counts, not timing: what a round trip on a
// keep-alive connection costs the server's thread.
#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "improto/net/tcp.hpp"

namespace {
std::atomic<bool> counting{false};
std::atomic<long> epoll_waits{0};
std::atomic<long> epoll_mods{0};
}  // namespace

extern "C" int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout) {
  if (counting.load(std::memory_order_relaxed)) epoll_waits.fetch_add(1);
  // epoll_wait(2) is epoll_pwait(2) without a mask (the only form on some
  // architectures).
  return static_cast<int>(::syscall(SYS_epoll_pwait, epfd, events, maxevents, timeout, nullptr,
                                    std::size_t{8}));
}

extern "C" int epoll_ctl(int epfd, int op, int fd, epoll_event* event) noexcept {
  if (counting.load(std::memory_order_relaxed) && op == EPOLL_CTL_MOD) epoll_mods.fetch_add(1);
  return static_cast<int>(::syscall(SYS_epoll_ctl, epfd, op, fd, event));
}

using namespace improto;
using namespace std::chrono_literals;

namespace {

// Answers each read after the turn (net::after_turn), as the registry
// answers a change once the turn's group is committed.
struct deferred_echo {
  asio::io_context io;
  net::stream_limits limits;
  std::optional<net::tcp_listener> listener;

  deferred_echo() {
    auto l = net::tcp_listener::bind(io, "127.0.0.1", 0);
    REQUIRE(l);
    listener.emplace(std::move(*l));
    asio::co_spawn(io, serve_one(), asio::detached);
  }

  asio::awaitable<void> serve_one() {
    std::function<std::size_t()> none = [] { return std::size_t{0}; };
    auto fd = co_await listener->accept_native(none, 1);
    if (!fd) co_return;
    auto c = std::make_shared<net::tcp_connection>(io, listener->protocol(), *fd, limits);
    c->start();
    while (true) {
      auto data = co_await c->read();
      if (!data) break;
      net::after_turn(io, [c, bytes = std::string(*data)] { c->send(bytes); });
    }
    c->close();
    listener->close();
  }
};

int connect_to(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

bool round_trip(int fd, const std::string& message) {
  if (::send(fd, message.data(), message.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(message.size())) {
    return false;
  }
  std::string got;
  char buf[256];
  while (got.size() < message.size()) {
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got == message;
}

}  // namespace

TEST_CASE("a keep-alive round trip costs one wait and one collect, no epoll_ctl") {
  deferred_echo server;
  auto port = server.listener->local_endpoint().port();
  std::thread io_thread([&] { server.io.run(); });
  int fd = connect_to(port);
  // The first round trip puts the connection in the poller's set.
  REQUIRE(round_trip(fd, "warm up"));

  constexpr long trips = 200;
  epoll_waits = 0;
  epoll_mods = 0;
  counting = true;
  bool all_echoed = true;
  for (long i = 0; i < trips; ++i) all_echoed = round_trip(fd, "message " + std::to_string(i)) && all_echoed;
  counting = false;
  ::close(fd);
  io_thread.join();

  CHECK(all_echoed);
  // Per wake-up: the reactor's blocking epoll_wait and the poller's
  // collecting one (performed inside the reactor, no EPOLL_CTL_MOD to
  // re-arm). The answer, deferred to the end of the turn, is written by the
  // same handler: no further pass through the io_context, which would poll
  // the reactor again. Slack for the deadline sweeper's timer.
  CHECK(epoll_mods.load() == 0);
  CHECK(epoll_waits.load() <= 2 * trips + 10);
  MESSAGE("epoll_wait per round trip: " << static_cast<double>(epoll_waits.load()) / trips);
}

TEST_CASE("after_turn outside a turn runs as a posted handler") {
  asio::io_context io;
  int ran = 0;
  net::after_turn(io, [&] { ++ran; });
  CHECK(ran == 0);
  io.run();
  CHECK(ran == 1);
}

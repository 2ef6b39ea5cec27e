#pragma once

// For the scaffold tests: everything on one io_context, the test itself a
// coroutine, the client side plain sockets. Waits are for conditions, with
// generous bounds, never for time alone.

#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <exception>
#include <functional>
#include <string>
#include <string_view>

#include "improto/net/common.hpp"

namespace scaffold_test {

using namespace std::chrono_literals;
using test_body = std::function<asio::awaitable<void>(asio::io_context&)>;

// Runs `body` to its end; fails the test if it throws or has not ended in 60 s.
inline void run(const test_body& body) {
  asio::io_context io;
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto task = body(io);
        co_await std::move(task);
        done = true;
        io.stop();
      },
      [&](std::exception_ptr e) {
        failure = e;
        if (e) io.stop();
      });
  io.run_for(60s);
  if (failure) std::rethrow_exception(failure);
  REQUIRE(done);
}

// Polls `condition` every millisecond for up to 30 s. A template: a lambda
// converted to std::function inside co_await would meet the g++ 12 bug.
template <class Condition>
asio::awaitable<bool> wait_for(asio::io_context& io, Condition condition) {
  auto until = improto::net::clock::now() + 30s;
  while (!condition()) {
    if (improto::net::clock::now() > until) co_return false;
    asio::steady_timer tick(io, 1ms);
    co_await tick.async_wait(improto::net::use_nothrow);
  }
  co_return true;
}

inline asio::awaitable<asio::ip::tcp::socket> connect_to(asio::io_context& io,
                                                         std::uint16_t port) {
  asio::ip::tcp::socket socket(io);
  auto [ec] = co_await socket.async_connect(
      {asio::ip::make_address("127.0.0.1"), port}, improto::net::use_nothrow);
  REQUIRE_FALSE(ec);
  co_return socket;
}

// Reads until `n` bytes have come or the stream ends.
inline asio::awaitable<std::string> read_some_bytes(asio::ip::tcp::socket& socket, std::size_t n) {
  std::string out;
  char buf[8192];
  while (out.size() < n) {
    std::size_t want = std::min(sizeof buf, n - out.size());
    auto [ec, got] = co_await socket.async_read_some(asio::buffer(buf, want),
                                                     improto::net::use_nothrow);
    if (ec) break;
    out.append(buf, got);
  }
  co_return out;
}

inline asio::awaitable<std::string> read_to_end(asio::ip::tcp::socket& socket) {
  auto all = read_some_bytes(socket, std::string::npos);
  auto got = co_await std::move(all);
  co_return got;
}

inline asio::awaitable<void> write_all(asio::ip::tcp::socket& socket, std::string_view bytes) {
  auto [ec, n] = co_await asio::async_write(socket, asio::buffer(bytes), improto::net::use_nothrow);
  REQUIRE_FALSE(ec);
}

}  // namespace scaffold_test

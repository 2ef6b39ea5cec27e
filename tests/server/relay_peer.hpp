#pragma once

// A relay client socket for the in-process server tests: writes messages and
// reads the server's back through the relay codec.

#include <doctest/doctest.h>

#include <array>
#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "improto/net/common.hpp"
#include "improto/relay/decoder.hpp"
#include "improto/relay/messages.hpp"

namespace server_test {

// One client socket: writes messages, reads them back decoded.
class peer {
 public:
  explicit peer(asio::any_io_executor ex) : socket_(ex) {}

  asio::awaitable<void> connect(std::uint16_t port) {
    asio::ip::tcp::endpoint server(asio::ip::make_address("127.0.0.1"), port);
    co_await socket_.async_connect(server, asio::use_awaitable);
  }

  // Writes are synchronous: a few bytes to loopback never block, and no
  // message temporary sits in a co_await expression (g++ 12 destroys such
  // temporaries twice).
  void write(const improto::relay::message& m) {
    auto bytes = improto::relay::serialize(m);
    REQUIRE(bytes);
    write_raw(*bytes);
  }
  void write_raw(std::string_view bytes) { asio::write(socket_, asio::buffer(bytes)); }

  // Reads the next message into last(); a closed connection or a decoding
  // error fails the test. (Compared outside the co_await expression.)
  asio::awaitable<void> next() {
    while (true) {
      auto r = decoder_.next(pending_);
      REQUIRE_MESSAGE(r, r.error().message());
      if (*r) {
        last_ = std::move(**r);
        co_return;
      }
      auto n = co_await socket_.async_read_some(asio::buffer(chunk_), asio::use_awaitable);
      pending_ = std::string_view(chunk_.data(), n);
    }
  }

  const improto::relay::message& last() const noexcept { return last_; }

  void close() {
    std::error_code ignored;
    socket_.close(ignored);
  }
  // True once the server has closed the connection.
  asio::awaitable<bool> closed() {
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(chunk_), improto::net::use_nothrow);
    co_return ec || n == 0;
  }

 private:
  asio::ip::tcp::socket socket_;
  improto::relay::decoder decoder_{improto::relay::direction::to_client};
  std::array<char, 4096> chunk_{};
  std::string_view pending_;  // the part of chunk_ not decoded yet
  improto::relay::message last_;
};

// A user registered on both sockets.
struct user {
  std::unique_ptr<peer> send, recv;
};

// Connects and registers `name`'s two sockets on the relay at `port`.
inline asio::awaitable<user> register_user(std::uint16_t port, std::string_view user_name) {
  namespace relay = improto::relay;
  std::string name(user_name);
  auto ex = co_await asio::this_coro::executor;
  user u{std::make_unique<peer>(ex), std::make_unique<peer>(ex)};
  co_await u.send->connect(port);
  u.send->write(relay::register_request{relay::role::to_send, name});
  co_await u.send->next();
  CHECK(u.send->last() == relay::message(relay::registered{relay::role::to_send, name}));
  co_await u.recv->connect(port);
  u.recv->write(relay::register_request{relay::role::to_recv, name});
  co_await u.recv->next();
  CHECK(u.recv->last() == relay::message(relay::registered{relay::role::to_recv, name}));
  co_return u;
}

}  // namespace server_test

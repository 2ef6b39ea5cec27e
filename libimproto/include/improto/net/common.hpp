#pragma once

// Pieces every transport and server shares: completion tokens that return
// errors as values, the logger type, and address parsing.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/use_awaitable.hpp>

#include "improto/error.hpp"

namespace improto::net {

using clock = std::chrono::steady_clock;

// `auto [ec, n] = co_await op(..., use_nothrow);` - errors as values.
inline constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);

// Coroutines compiled by g++ 12 destroy a temporary with a destructor that
// appears inside a co_await expression twice (a std::function built from a
// lambda in the argument list, an awaitable returned by a call). Our
// coroutines therefore name such values before awaiting them, and say so with
// "Named, not a temporary: see net/common.hpp on g++ 12":
//   std::function<...> f = [...] {...};  co_await op(f);
//   auto op = make();  co_await std::move(op);

// One line per event; servers log through this, tools print it to stderr.
using logger = std::function<void(std::string_view line)>;

// Maps a socket error to our error, keeping the system message as detail.
error from_system(const std::error_code& ec, std::string_view context);

// Numeric address or "localhost"; names are not resolved (servers bind to
// addresses, and tests use loopback only).
result<asio::ip::address> parse_address(std::string_view host);

struct host_port {
  std::string host;
  std::uint16_t port = 0;
};
// "127.0.0.1:65432", "[::1]:80", "localhost:1234".
result<host_port> parse_host_port(std::string_view text);
result<std::uint16_t> parse_port(std::string_view text, bool allow_zero);

// "127.0.0.1:65432" / "[::1]:80".
std::string to_string(const asio::ip::tcp::endpoint& ep);
std::string to_string(const asio::ip::udp::endpoint& ep);

// Opens `socket` (a TCP acceptor or a UDP socket) and binds it to host:port;
// address_in_use as its own error. `kind` ("TCP", "UDP") starts its messages.
template <class Socket>
result<void> open_and_bind(Socket& socket, std::string_view host, std::uint16_t port,
                           std::string_view kind) {
  auto address = parse_address(host);
  if (!address) return tl::unexpected(address.error());
  typename Socket::protocol_type::endpoint endpoint(*address, port);
  std::error_code ec;
  std::string where = std::string(kind) + " " + to_string(endpoint);
  if (socket.open(endpoint.protocol(), ec); ec) return tl::unexpected(from_system(ec, where));
  // Restarting a server must not wait for old connections in TIME_WAIT.
  if constexpr (std::is_same_v<Socket, asio::ip::tcp::acceptor>) {
    socket.set_option(asio::socket_base::reuse_address(true), ec);
  }
  if (socket.bind(endpoint, ec); ec) {
    if (ec == asio::error::address_in_use) {
      return fail(errc::address_in_use, where + " is already in use");
    }
    return tl::unexpected(from_system(ec, "cannot bind " + where));
  }
  return {};
}

}  // namespace improto::net

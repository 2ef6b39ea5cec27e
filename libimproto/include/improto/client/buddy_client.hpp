#pragma once

// Protocol 2 (seed 002) clients, for any io_context thread:
//  * buddy_client - REG / ADD / DEL over TCP (one connection per request),
//    SET and GET over UDP (GET retried: UDP may drop either datagram);
//  * chat / chat_listener - the direct buddy-to-buddy chat: call a buddy's
//    msgport, or accept calls on yours, one chat at a time (others are
//    answered BUSY).
// None of these types is safe to use from another thread than the one
// running their io_context.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>

#include "improto/buddy/messages.hpp"
#include "improto/error.hpp"

namespace improto::client {

struct buddy_options {
  std::string host = "127.0.0.1";
  std::uint16_t tcp_port = buddy::default_tcp_port;
  std::uint16_t udp_port = buddy::default_udp_port;
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
  // How long a TCP request waits for its answer once connected.
  std::chrono::milliseconds reply_timeout = std::chrono::seconds(10);
  // One GET attempt waits this long for the answer, then GET is sent again.
  std::chrono::milliseconds get_timeout = std::chrono::seconds(1);
  int get_attempts = 3;
};

class buddy_client {
 public:
  explicit buddy_client(asio::any_io_executor executor, buddy_options options = {});
  ~buddy_client();
  buddy_client(const buddy_client&) = delete;
  buddy_client& operator=(const buddy_client&) = delete;

  // TCP requests. Errors: invalid_argument (201 INVALID, or a userid that is
  // not 1 to 32 characters of [A-Za-z0-9_.-], which is not sent),
  // not_found (202 NO SUCH USER), name_taken (203 USER EXISTS), rejected
  // (any other answer), connection_refused / timeout / connection_closed
  // (no answer). Adding a buddy twice, or deleting a non-buddy, succeeds.
  // The string_views must stay valid until the call completes.
  asio::awaitable<result<void>> register_user(std::string_view user);
  asio::awaitable<result<void>> add_buddy(std::string_view user, std::string_view buddy);
  asio::awaitable<result<void>> delete_buddy(std::string_view user, std::string_view buddy);

  // Sends one SET datagram (not acknowledged; the server takes the IP from
  // its source). An ONLINE status must be refreshed before the server's TTL
  // (300 s by default) or it reads as OFFLINE. msgport 0 is accepted only
  // with offline. Errors: invalid_argument, io_error.
  result<void> set_status(std::string_view user, buddy::presence status, std::uint16_t msgport);

  // The user's buddies with their statuses, first added first. Errors:
  // not_found (202), invalid_argument (201, or a bad userid),
  // connection_refused (nothing listens on the UDP port), timeout (no
  // answer after get_attempts tries), io_error (a malformed answer).
  asio::awaitable<result<std::vector<buddy::buddy_entry>>> get_buddies(std::string_view user);

  // The local address this host uses to reach the server: what the server
  // will see as a SET's source, so the address a chat listener should use.
  result<asio::ip::address> local_address();

  const buddy_options& options() const noexcept { return options_; }

 private:
  asio::awaitable<result<void>> request(const buddy::request& req);
  result<asio::ip::udp::socket*> status_socket();

  asio::any_io_executor executor_;
  buddy_options options_;
  std::unique_ptr<asio::ip::udp::socket> status_socket_;
};

// ---------------------------------------------------------------------- chat

struct chat_events {
  // An incoming chat has started: its caller said `CHAT userid` (or, without
  // that line, sent text first; `buddy` is then the caller's address).
  std::function<void(std::string_view buddy)> on_open;
  // One received line (lines with control characters are dropped).
  std::function<void(std::string_view buddy, std::string_view text)> on_line;
  // The chat is over, exactly once per chat, for any reason: `why` is e.g.
  // "you ended the chat", "bob ended the chat", "bob is busy",
  // "the connection closed".
  std::function<void(std::string_view buddy, std::string_view why)> on_end;
};

class chat : public std::enable_shared_from_this<chat> {
 public:
  // Calls a buddy at host:port as `me`: connects and sends `CHAT me`. The
  // buddy may still refuse (BUSY): on_end then says "<buddy> is busy".
  // Errors: invalid_argument (bad userid), connection_refused, timeout.
  static asio::awaitable<result<std::shared_ptr<chat>>> call(
      std::string_view host, std::uint16_t port, std::string_view me, std::string_view buddy,
      chat_events events, std::chrono::milliseconds connect_timeout = std::chrono::seconds(5));

  // Sends one line. invalid_argument for `q` (it would end the chat), line
  // breaks or control characters other than tab, or more than max_line
  // bytes; connection_closed once the chat is over.
  result<void> send(std::string_view text);
  // Sends `q` and closes; on_end follows ("you ended the chat").
  void quit();

  bool is_open() const noexcept;
  bool incoming() const noexcept;
  // The buddy's userid (for an incoming chat: once it said CHAT).
  const std::string& buddy() const noexcept;

  static constexpr std::size_t max_line = 8192;

  struct impl;
  explicit chat(std::unique_ptr<impl> state);
  ~chat();

 private:
  friend class chat_listener;
  asio::awaitable<void> read_loop();
  void end(std::string why);
  std::unique_ptr<impl> impl_;
};

class chat_listener : public std::enable_shared_from_this<chat_listener> {
 public:
  // Listens on host:port (0: any free port). A connection that arrives while
  // a chat is open (see occupy) is answered BUSY and closed. A caller must
  // send its first line within `hello_timeout`. Runs until close().
  // Errors: address_in_use, invalid_argument.
  static result<std::shared_ptr<chat_listener>> listen(
      asio::io_context& io, std::string_view host, std::uint16_t port, chat_events events,
      std::chrono::milliseconds hello_timeout = std::chrono::seconds(10));

  asio::ip::tcp::endpoint local_endpoint() const;
  // The chat in progress (incoming, or outgoing given to occupy()), if any.
  std::shared_ptr<chat> current() const;
  // Marks an outgoing chat as the one in progress: callers get BUSY until
  // it ends. Returns false, changing nothing, when another is open.
  bool occupy(const std::shared_ptr<chat>& outgoing);
  void close();

  struct impl;
  explicit chat_listener(std::unique_ptr<impl> state);
  ~chat_listener();

 private:
  asio::awaitable<void> accept_loop();
  std::unique_ptr<impl> impl_;
};

}  // namespace improto::client

#pragma once

// The part every TCP server shares: the listener, the accept loop, the
// connection limit (with a refusal the protocol chooses), the set of live
// sessions, and stop. A server supplies its session type and the coroutine
// that serves one; the rest of its code is protocol.
//
// Threading: one io_context thread, like tcp_connection.
//
// Lifetime: the accept loop and every session's coroutine share ownership
// of the server's state (and of its owner, see start()), so a handle may be
// destroyed whenever the io_context is not inside one of its calls: the
// io_context may keep running, run again later, or be destroyed without
// running. Destroying the handle stops the server (stop()); what is still
// queued ends on the io_context's next turns, or is freed with it.

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include "improto/net/common.hpp"
#include "improto/net/tcp.hpp"

namespace improto::net {

// One accepted connection. A server derives its session state from this.
class tcp_session {
 public:
  explicit tcp_session(std::shared_ptr<tcp_connection> c) : conn(std::move(c)) {}
  virtual ~tcp_session() = default;
  tcp_session(const tcp_session&) = delete;
  tcp_session& operator=(const tcp_session&) = delete;

  // Called by tcp_server::stop(). By default the connection closes once what
  // is queued is sent; a session still owed replies overrides this to send
  // them first (and then closes itself).
  virtual void on_stop() { conn->close_after_flush(); }

  const std::shared_ptr<tcp_connection> conn;
};

struct tcp_server_options {
  // Written to a newcomer refused at max_connections (e.g. a "busy" answer);
  // empty: it is closed without a word.
  std::string refusal;
  logger log;  // one line per event; may be empty
  // Non-zero: tcp_listener::set_defer_accept(). Until then a silent client
  // is not accepted: neither counted against max_connections nor timed.
  std::chrono::seconds defer_accept{0};
};

class tcp_server {
 public:
  // Builds the session of a newcomer (its connection already started);
  // null turns it away.
  using session_factory =
      std::function<std::shared_ptr<tcp_session>(std::shared_ptr<tcp_connection>)>;
  // Serves a session; it is counted as live until this returns.
  using session_runner = std::function<asio::awaitable<void>(std::shared_ptr<tcp_session>)>;

  // Binds the listening socket (address_in_use, invalid_argument as values).
  // `limits` apply to every connection (max_connections to their number).
  static result<tcp_server> bind(asio::io_context& io, std::string_view host, std::uint16_t port,
                                 const stream_limits& limits, tcp_server_options options = {});
  tcp_server(tcp_server&&) noexcept;
  tcp_server& operator=(tcp_server&&) noexcept;
  ~tcp_server();

  // Starts accepting; returns at once. Call once.
  void start(session_factory make, session_runner run);
  // The same for a server's own Session type and its owner: `make(conn)`
  // builds a session, `(owner->*run)(session)` serves it. Each session's
  // coroutine keeps the owner alive while it runs; the server itself holds
  // the owner weakly (the owner usually holds the server: no cycle), and
  // accepts nobody once the owner is gone.
  template <class Session, class Owner, class Make>
  void start(const std::shared_ptr<Owner>& owner,
             asio::awaitable<void> (Owner::*run)(std::shared_ptr<Session>), Make make) {
    std::weak_ptr<Owner> weak = owner;
    start(
        [weak, make = std::move(make)](
            std::shared_ptr<tcp_connection> c) -> std::shared_ptr<tcp_session> {
          if (weak.expired()) return nullptr;
          return make(std::move(c));
        },
        [weak, run](std::shared_ptr<tcp_session> s) {
          return run_owned(weak.lock(), run, std::static_pointer_cast<Session>(std::move(s)));
        });
  }
  // Stops accepting and calls on_stop() on every live session. Safe to call twice.
  void stop();

  asio::ip::tcp::endpoint local_endpoint() const;
  bool stopping() const noexcept;
  std::size_t session_count() const noexcept;
  const stream_limits& limits() const noexcept;
  // The server's log; a no-op without a logger.
  void log(std::string_view line) const;

 private:
  struct state;
  explicit tcp_server(std::shared_ptr<state> s) : state_(std::move(s)) {}
  template <class Session, class Owner>
  static asio::awaitable<void> run_owned(std::shared_ptr<Owner> owner,
                                         asio::awaitable<void> (Owner::*run)(std::shared_ptr<Session>),
                                         std::shared_ptr<Session> s) {
    if (!owner) co_return;  // the owner went before the session started
    // Named, not a temporary: see net/common.hpp on g++ 12.
    auto served = (owner.get()->*run)(std::move(s));
    co_await std::move(served);
  }
  // Shared with the accept loop and the sessions' coroutines (see Lifetime).
  std::shared_ptr<state> state_;
};

}  // namespace improto::net

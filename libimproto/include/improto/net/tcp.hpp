#pragma once

// TCP transport: a listener that bounds the number of connections, and a
// connection with a bounded outbound queue drained by its own writer
// coroutine, plus idle and partial-message deadlines enforced by one sweep
// per io_context (no timer and no system call per connection).
// Framing stays in the codecs; sessions are loops of read -> decoder.next().
//
// Threading: everything runs on one io_context thread; none of these types
// is safe to use from another thread (post to the io_context instead).

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "improto/net/common.hpp"
#include "improto/net/event.hpp"

namespace improto::net {

struct stream_limits {
  std::size_t max_connections = 10'000;
  // A connection with no message in progress is closed after this long.
  std::chrono::milliseconds idle_timeout = std::chrono::minutes(5);
  // A message that has begun must be complete within this (slow-loris bound).
  std::chrono::milliseconds message_timeout = std::chrono::seconds(30);
  // Bytes queued for one peer; past it, send() refuses and the caller decides.
  std::size_t max_queued_bytes = 4u << 20;
  std::size_t read_chunk = 16 * 1024;
};

class deadline_sweeper;

class tcp_connection : public std::enable_shared_from_this<tcp_connection> {
 public:
  tcp_connection(asio::ip::tcp::socket socket, const stream_limits& limits);
  ~tcp_connection();
  tcp_connection(const tcp_connection&) = delete;
  tcp_connection& operator=(const tcp_connection&) = delete;

  // Starts the writer and the deadlines; call once, right after construction.
  void start();

  // Waits for bytes and returns what is available (at most read_chunk).
  // The view points into a buffer shared by all connections of this thread,
  // so it is valid only until the caller's next co_await: decode it first.
  // Fails with connection_closed on end of stream or close(), timeout on a
  // deadline. End of stream (peer_finished()) leaves the connection open for
  // sending: a peer that shut down only its sending side still gets the
  // replies queued later; the caller ends it with close_after_flush().
  asio::awaitable<result<std::string_view>> read();
  // The peer has shut down its sending side (read() saw end of stream).
  bool peer_finished() const noexcept { return peer_finished_; }

  // Queues bytes; returns false, queueing nothing, when the queue bound would
  // be exceeded or the connection is closing.
  bool send(std::string_view bytes);
  // Waits until at most `mark` bytes are queued (the writer has drained the
  // rest) or the connection is closed: lets a caller produce a large answer
  // piece by piece as the peer reads it, within max_queued_bytes.
  asio::awaitable<void> wait_until_queued_at_most(std::size_t mark);
  // Tells the deadlines whether a message is half read (message_timeout
  // applies) or the peer is between messages (idle_timeout applies).
  void set_mid_message(bool mid_message);
  // Overrides the idle timeout for this connection (0 = none).
  void set_idle_timeout(std::chrono::milliseconds timeout);

  // Sends what is queued, then closes. Further send() calls are refused.
  void close_after_flush();
  // Closes at once; pending reads and writes end.
  void close();

  bool is_open() const noexcept { return open_; }
  std::size_t queued_bytes() const noexcept { return pending_.size() + writing_.size(); }
  // The addresses, asked of the kernel on first use only (most connections
  // never need them: a log line or a download does).
  const asio::ip::tcp::endpoint& remote() const noexcept;
  const asio::ip::tcp::endpoint& local() const noexcept;
  // Why the connection ended, once it has ("timeout", "closed by peer", ...).
  std::string_view close_reason() const noexcept { return close_reason_; }

 private:
  friend class deadline_sweeper;
  asio::awaitable<void> write_loop();
  // Writes as much of `bytes` as the socket takes now; false on an error.
  bool write_now(std::string_view& bytes, std::error_code& ec);
  void arm_deadline();
  void shut(std::string_view reason);

  asio::ip::tcp::socket socket_;
  const stream_limits& limits_;
  event wake_writer_;  // send() and close_after_flush() wake the idle writer
  deadline_sweeper& sweeper_;
  tcp_connection* sweep_prev_ = nullptr;  // the sweeper's list while open
  tcp_connection* sweep_next_ = nullptr;
  bool swept_ = false;
  clock::time_point deadline_ = clock::time_point::max();
  std::chrono::milliseconds idle_timeout_;
  mutable asio::ip::tcp::endpoint remote_, local_;
  mutable bool have_remote_ = false, have_local_ = false;
  bool wrote_ = false;  // Nagle matters from the second write on
  bool nodelay_ = false;
  bool tried_first_read_ = false;
  std::string pending_, writing_;
  bool open_ = true;
  bool closing_ = false;
  bool mid_message_ = false;
  bool peer_finished_ = false;
  std::string close_reason_;
  // wait_until_queued_at_most() sleeps here; the writer wakes it per write.
  event drained_;
};

// A bound, listening socket. accept() loops are the caller's (servers keep
// their session tables), but the limit on connections is enforced here.
class tcp_listener {
 public:
  static result<tcp_listener> bind(asio::io_context& io, std::string_view host,
                                   std::uint16_t port, int backlog = 1024);

  asio::ip::tcp::endpoint local_endpoint() const;
  // Accepts the next connection. When `live_connections()` (the caller's
  // count, read once the connection arrives) is at the limit, the newcomer
  // gets the refusal (set_refusal()) and is closed at once, so it fails fast
  // instead of waiting in the backlog, and this returns overloaded: call
  // again. Running out of descriptors pauses accepting (no busy loop) and is
  // logged once per episode. Fails with connection_closed once close() has
  // been called.
  asio::awaitable<result<asio::ip::tcp::socket>> accept(
      std::function<std::size_t()> live_connections, std::size_t max_connections);
  // Bytes written to a newcomer refused at the connection limit (e.g. a
  // protocol's "busy" answer), best effort: only what the socket takes
  // without blocking. Empty (the default): closed silently.
  void set_refusal(std::string bytes) { refusal_ = std::move(bytes); }
  // Where accept() reports running out of descriptors, and recovering.
  void set_logger(logger log) { log_ = std::move(log); }
  void close();

 private:
  explicit tcp_listener(asio::ip::tcp::acceptor acceptor);
  void refuse(asio::ip::tcp::socket& socket) const;
  asio::ip::tcp::acceptor acceptor_;
  asio::ip::tcp protocol_;  // of the accepted sockets
  std::string refusal_;
  logger log_;
  std::uint64_t failed_accepts_ = 0;  // in the current out-of-descriptors episode
};

// Connects with a timeout; connection_refused / timeout as values.
asio::awaitable<result<asio::ip::tcp::socket>> connect(std::string_view host, std::uint16_t port,
                                                       std::chrono::milliseconds timeout);

}  // namespace improto::net

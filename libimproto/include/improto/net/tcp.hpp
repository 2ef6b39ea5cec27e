#pragma once

// TCP transport: a listener that bounds the number of connections, and a
// connection with a bounded outbound queue written after each turn of the
// io_context, plus idle and partial-message deadlines enforced by one sweep
// per io_context (no timer and no system call per connection). An idle
// connection can be parked: no coroutine, timer or buffer of its own while
// it waits for bytes. Connections are plain descriptors; the ones that must
// wait share one epoll set per io_context, itself one descriptor of Asio's.
// Framing stays in the codecs; sessions are loops of read -> decoder.next().
//
// Threading: everything runs on one io_context thread; none of these types
// is safe to use from another thread (post to the io_context instead).

#include <cstddef>
#include <cstdint>
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
class tcp_poller;

class tcp_connection : public std::enable_shared_from_this<tcp_connection> {
 public:
  // Where a parked connection is handed back when bytes arrive (tcp_server
  // implements it). `cookie` is what set_parking() was given.
  class parking {
   public:
    virtual void wake(tcp_connection& c, void* cookie) = 0;

   protected:
    virtual ~parking() = default;
  };

  // A connected socket (its descriptor leaves Asio's reactor: one
  // deregistration; clients only).
  tcp_connection(asio::ip::tcp::socket socket, const stream_limits& limits);
  // An accepted descriptor (tcp_listener::accept_native()), owned from now.
  tcp_connection(asio::io_context& io, asio::ip::tcp protocol, int fd, const stream_limits& limits);
  ~tcp_connection();
  tcp_connection(const tcp_connection&) = delete;
  tcp_connection& operator=(const tcp_connection&) = delete;

  // Starts the deadlines; call once, right after construction.
  void start();

  // Waits for bytes and returns what is available (at most read_chunk).
  // The view points into a buffer shared by all connections of this thread,
  // so it is valid only until the caller's next co_await: decode it first.
  // Fails with connection_closed on end of stream or close(), timeout on a
  // deadline. End of stream (peer_finished()) leaves the connection open for
  // sending: a peer that shut down only its sending side still gets the
  // replies queued later; the caller ends it with close_after_flush().
  //
  // With `may_park` and a parking set (set_parking()), a read that would
  // wait returns an empty view instead and the connection is parked: it
  // waits for readability without the caller's coroutine, which should now
  // return; parking->wake() is called when bytes (or the end) arrive, or
  // when the connection is closed meanwhile.
  asio::awaitable<result<std::string_view>> read(bool may_park = false);
  // The peer has shut down its sending side (read() saw end of stream).
  bool peer_finished() const noexcept { return peer_finished_; }
  void set_parking(std::weak_ptr<parking> target, void* cookie);
  // read() parked the connection and it has not been woken yet.
  bool parked() const noexcept { return parked_; }

  // Queues bytes; returns false, queueing nothing, when the queue bound would
  // be exceeded or the connection is closing. What is queued by one turn of
  // the io_context goes out in one write, after it.
  bool send(std::string_view bytes);
  // Waits until at most `mark` bytes are queued (the rest written) or the
  // connection is closed: lets a caller produce a large answer piece by
  // piece as the peer reads it, within max_queued_bytes.
  asio::awaitable<void> wait_until_queued_at_most(std::size_t mark);
  // Tells the deadlines whether a message is half read (message_timeout
  // applies) or the peer is between messages (idle_timeout applies).
  void set_mid_message(bool mid_message);
  bool mid_message() const noexcept { return mid_message_; }
  // Overrides the idle timeout for this connection (0 = none).
  void set_idle_timeout(std::chrono::milliseconds timeout);

  // Sends what is queued, then closes. Further send() calls are refused.
  void close_after_flush();
  // Closes at once; pending reads and writes end.
  void close();

  bool is_open() const noexcept { return open_; }
  std::size_t queued_bytes() const noexcept;
  // The addresses, asked of the kernel on first use only (most connections
  // never need them: a log line or a download does) and forgotten when the
  // connection parks: the reference is valid until the next read().
  const asio::ip::tcp::endpoint& remote() const noexcept;
  const asio::ip::tcp::endpoint& local() const noexcept;
  // The peer's address, not kept (for a check on a parked connection).
  asio::ip::address remote_address() const;
  // Why the connection ended, once it has ("timeout", "closed by peer", ...).
  std::string_view close_reason() const noexcept;

 private:
  friend class deadline_sweeper;
  friend class tcp_poller;
  // An idle connection holds none of this: it exists while bytes wait to
  // be written (or the addresses or an error text were asked for).
  struct output;
  struct details;
  struct read_waiter;
  template <class Handler>
  struct read_waiter_of;
  output& out();
  details& more() const;
  void schedule_flush();
  void flush();
  void on_writable();
  // Writes as much of `bytes` as the socket takes now; false on an error.
  // `last`: nothing follows but the close, which then carries the FIN in
  // the same segment (MSG_MORE holds back a short tail until then).
  bool write_now(std::string_view& bytes, std::error_code& ec, bool last = false);
  void wrote_some();
  void park();
  void release_output_if_idle();
  void unpark();
  void arm_deadline();
  void shut(std::string_view reason, const std::error_code& ec = {});
  // The descriptor becomes ready (the poller's edge-triggered events).
  void on_ready(std::uint32_t events);
  asio::awaitable<std::error_code> wait_readable();

  // A plain descriptor: the reactor never sees a connection that does not
  // have to wait (a one-request connection costs accept4, recv, send and
  // close), and one that waits joins the io_context's own epoll set once
  // (tcp_poller): no per-socket state of Asio's, no pending operation.
  int fd_;
  // 32 bits (beside fd_): ~24 days at most, longer is clamped. With it a
  // connection takes one 160-byte chunk of malloc's instead of 176.
  std::chrono::duration<std::int32_t, std::milli> idle_timeout_;
  tcp_poller& poller_;
  const stream_limits& limits_;
  tcp_connection* sweep_prev_ = nullptr;  // the sweeper's list while open
  tcp_connection* sweep_next_ = nullptr;
  clock::time_point deadline_ = clock::time_point::max();
  std::unique_ptr<output> out_;
  mutable std::unique_ptr<details> more_;
  // A coroutine in read() waiting for bytes (not parked).
  std::unique_ptr<read_waiter> reader_;
  std::weak_ptr<parking> parking_;
  void* parking_cookie_ = nullptr;
  std::string_view close_reason_;  // a literal, or details::error_text
  bool swept_ : 1 = false;
  bool polled_ : 1 = false;  // in the poller's epoll set
  bool wrote_ : 1 = false;   // Nagle matters from the second write on
  bool nodelay_ : 1 = false;
  bool corked_ : 1 = false;  // a short tail was held back for the FIN
  // recv() before waiting: a new connection's request is usually there
  // already, a woken one's always, and a full read may have left more.
  bool may_be_readable_ : 1 = true;
  // The poller saw the end of stream or an error: no further edge will say so.
  bool hangup_seen_ : 1 = false;
  bool parked_ : 1 = false;
  bool flush_scheduled_ : 1 = false;
  bool writing_ : 1 = false;  // waiting for the socket to take more
  bool open_ : 1 = true;
  bool closing_ : 1 = false;
  bool mid_message_ : 1 = false;
  bool peer_finished_ : 1 = false;
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
  // The same, returning the descriptor (non-blocking, close-on-exec) for a
  // caller that wraps it itself; it is not registered with the reactor yet.
  asio::awaitable<result<int>> accept_native(std::function<std::size_t()> live_connections,
                                             std::size_t max_connections);
  // Of the accepted sockets.
  asio::ip::tcp protocol() const noexcept { return protocol_; }
  // Bytes written to a newcomer refused at the connection limit (e.g. a
  // protocol's "busy" answer), best effort: only what the socket takes
  // without blocking. Empty (the default): closed silently.
  void set_refusal(std::string bytes) { refusal_ = std::move(bytes); }
  // Where accept() reports running out of descriptors, and recovering.
  void set_logger(logger log) { log_ = std::move(log); }
  // For protocols whose client speaks first: the kernel hands a connection
  // over once its first bytes have arrived (Linux TCP_DEFER_ACCEPT), so
  // accepting it costs no wake-up and no read in vain. A client that stays
  // silent is handed over when the kernel stops deferring: after the first
  // SYN-ACK retransmission past `wait`, about 1 s for 1 s. Best effort:
  // where the option is missing, connections are accepted at once.
  void set_defer_accept(std::chrono::seconds wait);
  void close();

 private:
  explicit tcp_listener(asio::ip::tcp::acceptor acceptor);
  void refuse(int fd) const;
  asio::ip::tcp::acceptor acceptor_;
  asio::ip::tcp protocol_;  // of the accepted sockets
  std::string refusal_;
  logger log_;
  std::uint64_t failed_accepts_ = 0;  // in the current out-of-descriptors episode
};

// Runs `task` on `io` after the current turn: when called while the
// connections' readiness is being handed out (a session reading its
// requests), at the end of that same handler, after the other connections
// of the wake-up have been served; otherwise it is posted. Work caused by
// one wake-up's requests (a commit of all of them, then their replies'
// writes) so costs no further pass through the io_context's queue, each of
// which polls the reactor once more. Call it on the io thread only.
void after_turn(asio::io_context& io, std::function<void()> task);

// Connects with a timeout; connection_refused / timeout as values.
asio::awaitable<result<asio::ip::tcp::socket>> connect(std::string_view host, std::uint16_t port,
                                                       std::chrono::milliseconds timeout);

}  // namespace improto::net

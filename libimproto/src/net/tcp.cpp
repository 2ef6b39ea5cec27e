#include "improto/net/tcp.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/this_coro.hpp>
#include <asio/write.hpp>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <vector>

namespace improto::net {

// The deadlines of all connections of one io_context: a list walked by one
// timer that ticks while connections exist. A connection's deadline is a
// field it rewrites (no timer to move, no system call); a deadline is
// noticed within one tick, a fraction of the shortest timeout in use.
class deadline_sweeper : public asio::execution_context::service {
 public:
  static inline asio::execution_context::id id;
  using key_type = deadline_sweeper;

  explicit deadline_sweeper(asio::execution_context& context)
      : asio::execution_context::service(context) {}

  // The sweeper of `executor`'s context, created after the context's timer
  // service so that it is shut down and destroyed before that service.
  static deadline_sweeper& of(const asio::any_io_executor& executor) {
    auto& context = asio::query(executor, asio::execution::context);
    if (!asio::has_service<deadline_sweeper>(context)) {
      asio::steady_timer make_timer_service(executor);
    }
    auto& sweeper = asio::use_service<deadline_sweeper>(context);
    if (!sweeper.timer_) sweeper.timer_.emplace(executor);
    return sweeper;
  }

  void add(tcp_connection& c) {
    c.sweep_next_ = head_;
    if (head_) head_->sweep_prev_ = &c;
    head_ = &c;
    c.swept_ = true;
    if (!ticking_) tick_later();
  }

  void remove(tcp_connection& c) noexcept {
    if (!c.swept_) return;
    c.swept_ = false;
    if (c.sweep_prev_) c.sweep_prev_->sweep_next_ = c.sweep_next_;
    else head_ = c.sweep_next_;
    if (c.sweep_next_) c.sweep_next_->sweep_prev_ = c.sweep_prev_;
    c.sweep_prev_ = c.sweep_next_ = nullptr;
    // With nobody left, a pending tick would keep io_context::run() busy.
    if (!head_ && ticking_ && timer_) {
      ticking_ = false;
      timer_->cancel();
    }
  }

  // A timeout now in use: the tick is an eighth of the shortest one.
  void uses(std::chrono::milliseconds timeout) {
    if (timeout.count() <= 0) return;
    auto tick = std::clamp<clock::duration>(timeout / 8, std::chrono::milliseconds(5),
                                            std::chrono::seconds(1));
    if (tick >= tick_) return;
    tick_ = tick;
    // Rare (a shorter timeout than any before): bring the next tick closer.
    if (ticking_ && timer_->expiry() > clock::now() + tick_) tick_later();
  }

 private:
  void shutdown() override {
    head_ = nullptr;
    ticking_ = false;
    timer_.reset();
  }

  void tick_later() {
    ticking_ = true;
    timer_->expires_after(tick_);
    timer_->async_wait([this](const std::error_code& ec) {
      if (ec == asio::error::operation_aborted) return;  // re-armed or idle
      sweep();
    });
  }

  void sweep() {
    ticking_ = false;
    auto now = clock::now();
    for (auto* c = head_; c;) {
      auto* next = c->sweep_next_;  // shut() takes c off the list
      if (now >= c->deadline_) c->shut("timeout");
      c = next;
    }
    if (head_) tick_later();
  }

  tcp_connection* head_ = nullptr;
  std::optional<asio::steady_timer> timer_;
  clock::duration tick_ = std::chrono::seconds(1);
  bool ticking_ = false;
};

tcp_connection::tcp_connection(asio::ip::tcp::socket socket, const stream_limits& limits)
    : socket_(std::move(socket)),
      limits_(limits),
      wake_writer_(socket_.get_executor()),
      sweeper_(deadline_sweeper::of(socket_.get_executor())),
      idle_timeout_(limits.idle_timeout),
      drained_(socket_.get_executor()) {
  // No TCP_NODELAY, no FIONBIO here: writes set the first when it matters,
  // and reads and writes pass MSG_DONTWAIT (a listener's sockets are
  // non-blocking from accept4 anyway).
  sweeper_.uses(limits_.idle_timeout);
  sweeper_.uses(limits_.message_timeout);
  arm_deadline();
}

tcp_connection::~tcp_connection() { sweeper_.remove(*this); }

void tcp_connection::start() {
  auto executor = socket_.get_executor();
  asio::co_spawn(executor, [self = shared_from_this()] { return self->write_loop(); },
                 asio::detached);
  if (open_) sweeper_.add(*this);
}

const asio::ip::tcp::endpoint& tcp_connection::remote() const noexcept {
  if (!have_remote_) {
    std::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) {
      remote_ = ep;
      have_remote_ = true;
    }
  }
  return remote_;
}

const asio::ip::tcp::endpoint& tcp_connection::local() const noexcept {
  if (!have_local_) {
    std::error_code ec;
    auto ep = socket_.local_endpoint(ec);
    if (!ec) {
      local_ = ep;
      have_local_ = true;
    }
  }
  return local_;
}

void tcp_connection::arm_deadline() {
  auto timeout = mid_message_ || closing_ ? limits_.message_timeout : idle_timeout_;
  deadline_ = timeout.count() > 0 ? clock::now() + timeout : clock::time_point::max();
}

void tcp_connection::set_mid_message(bool mid_message) {
  if (mid_message == mid_message_) return;  // the message deadline runs from its first byte
  mid_message_ = mid_message;
  arm_deadline();
}

void tcp_connection::set_idle_timeout(std::chrono::milliseconds timeout) {
  idle_timeout_ = timeout;
  sweeper_.uses(timeout);
  arm_deadline();
}

namespace {
// All connections of a thread read into this one buffer: an idle connection
// then costs no read buffer at all (see tcp_connection::read()).
thread_local std::vector<char> shared_read_buffer;
}  // namespace

asio::awaitable<result<std::string_view>> tcp_connection::read() {
  while (true) {
    if (!open_) co_return fail(errc::connection_closed, close_reason_);
    if (peer_finished_) co_return fail(errc::connection_closed, "closed by peer");
    std::error_code wait_ec;
    if (tried_first_read_) {
      auto [ec] = co_await socket_.async_wait(asio::socket_base::wait_read, use_nothrow);
      wait_ec = ec;
    } else {
      // A client sends its request right after connecting, so it is usually
      // here by the time the connection is accepted: reading it at once
      // saves the reactor's wait (for Asio, a non-blocking switch and an
      // epoll_ctl) for most one-request connections.
      tried_first_read_ = true;
    }
    if (!wait_ec) {
      if (shared_read_buffer.size() < limits_.read_chunk) {
        shared_read_buffer.resize(limits_.read_chunk);
      }
      auto n = ::recv(socket_.native_handle(), shared_read_buffer.data(), limits_.read_chunk,
                      MSG_DONTWAIT);
      if (n > 0) {
        if (!mid_message_) arm_deadline();
        co_return std::string_view(shared_read_buffer.data(), static_cast<std::size_t>(n));
      }
      if (n == 0) {
        wait_ec = asio::error::eof;
      } else {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        wait_ec = std::error_code(errno, asio::system_category());
      }
    }
    if (close_reason_ == "timeout") co_return fail(errc::timeout, "no complete message in time");
    if (wait_ec == asio::error::eof) {
      // The peer may have shut down only its sending side: it still reads,
      // and replies still being committed must reach it. The caller closes
      // (close_after_flush()) once it has nothing more to send; until then
      // the deadlines still bound how long the connection lives.
      peer_finished_ = true;
      co_return fail(errc::connection_closed, "closed by peer");
    }
    shut(wait_ec.message());
    co_return tl::unexpected(from_system(wait_ec, "read"));
  }
}

bool tcp_connection::send(std::string_view bytes) {
  if (!open_ || closing_) return false;
  if (queued_bytes() + bytes.size() > limits_.max_queued_bytes) return false;
  pending_.append(bytes);
  wake_writer_.notify();
  return true;
}

asio::awaitable<void> tcp_connection::wait_until_queued_at_most(std::size_t mark) {
  while (open_ && queued_bytes() > mark) co_await drained_.wait();
}

void tcp_connection::close_after_flush() {
  if (!open_ || closing_) return;
  closing_ = true;
  arm_deadline();  // a peer that never reads cannot keep us flushing forever
  wake_writer_.notify();
}

void tcp_connection::close() { shut("closed"); }

void tcp_connection::shut(std::string_view reason) {
  if (!open_) return;
  open_ = false;
  close_reason_ = reason;
  sweeper_.remove(*this);
  // A timeout or an error is usually logged with the peer's address, which
  // the kernel no longer gives once the socket is closed: ask for it now.
  // A plain close (the common case) is not logged and skips the call.
  if (reason != "closed" && reason != "closed by peer") remote();
  // close() alone ends both directions (a FIN, or a reset when unread bytes
  // remain): no shutdown() before it.
  std::error_code ec;
  socket_.close(ec);
  wake_writer_.notify();
  drained_.notify();
}

bool tcp_connection::write_now(std::string_view& bytes, std::error_code& ec) {
  int fd = socket_.native_handle();
  // Nagle's algorithm only holds data back while earlier data is unacknowledged:
  // a first answer in one segment never waits, so a one-request connection
  // skips the setsockopt.
  if (!nodelay_ && (wrote_ || bytes.size() > 1400)) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    nodelay_ = true;
  }
  wrote_ = true;
  while (!bytes.empty()) {
    auto n = ::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    ec = std::error_code(errno, asio::system_category());
    return false;
  }
  return true;
}

asio::awaitable<void> tcp_connection::write_loop() {
  while (open_) {
    if (pending_.empty()) {
      if (closing_) {
        shut(peer_finished_ ? "closed by peer" : "closed");
        break;
      }
      co_await wake_writer_.wait();
      continue;
    }
    // Everything queued goes out in one write: replies batch naturally.
    std::swap(pending_, writing_);
    std::string_view rest(writing_);
    std::error_code ec;
    // Straight to the socket; the reactor only when its buffer is full.
    while (write_now(rest, ec) && !rest.empty()) {
      auto [wait_ec] = co_await socket_.async_wait(asio::socket_base::wait_write, use_nothrow);
      if (wait_ec) {
        ec = wait_ec;
        break;
      }
      if (!open_) break;
    }
    writing_.clear();
    drained_.notify();
    // A burst must not pin its buffer to an idle connection for good.
    if (writing_.capacity() > 64 * 1024) writing_ = std::string();
    if (ec) {
      shut(ec.message());
      break;
    }
  }
}

// ---------------------------------------------------------------- listener

result<tcp_listener> tcp_listener::bind(asio::io_context& io, std::string_view host,
                                        std::uint16_t port, int backlog) {
  asio::ip::tcp::acceptor acceptor(io);
  if (auto bound = open_and_bind(acceptor, host, port, "TCP"); !bound) {
    return tl::unexpected(bound.error());
  }
  std::error_code ec;
  if (acceptor.listen(backlog, ec); ec) {
    return tl::unexpected(from_system(ec, "TCP " + to_string(acceptor.local_endpoint(ec))));
  }
  return tcp_listener(std::move(acceptor));
}

tcp_listener::tcp_listener(asio::ip::tcp::acceptor acceptor)
    : acceptor_(std::move(acceptor)), protocol_(asio::ip::tcp::v4()) {
  std::error_code ec;
  if (auto bound = acceptor_.local_endpoint(ec); !ec) protocol_ = bound.protocol();
  // accept() calls accept4 directly and waits in the reactor on EAGAIN.
  acceptor_.non_blocking(true, ec);
}

asio::ip::tcp::endpoint tcp_listener::local_endpoint() const {
  std::error_code ec;
  return acceptor_.local_endpoint(ec);
}

namespace {
// The process or the system is out of descriptors (or socket memory): the
// pending connection stays in the backlog, so retrying at once would spin.
bool out_of_resources(const std::error_code& ec) {
  // ENFILE has no asio::error name; compared by value (no category lookup).
  return ec == asio::error::no_descriptors ||
         (ec.category() == asio::system_category() && ec.value() == ENFILE) ||
         ec == asio::error::no_buffer_space || ec == asio::error::no_memory;
}
}  // namespace

asio::awaitable<result<asio::ip::tcp::socket>> tcp_listener::accept(
    std::function<std::size_t()> live_connections, std::size_t max_connections) {
  while (true) {
    if (!acceptor_.is_open()) co_return fail(errc::connection_closed, "listener closed");
    // accept4 first, the reactor only when the backlog is empty: non-blocking
    // and close-on-exec from the start, no peer address asked for (a log
    // line that needs it asks later).
    int fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        auto [ec] = co_await acceptor_.async_wait(asio::socket_base::wait_read, use_nothrow);
        if (!acceptor_.is_open() || ec == asio::error::operation_aborted) {
          co_return fail(errc::connection_closed, "listener closed");
        }
        continue;
      }
      std::error_code ec(err, asio::system_category());
      if (out_of_resources(ec)) {
        // One line per episode, not per failed accept. A shortage that one
        // pause cures is no episode: draining a backlog of connections whose
        // sessions have not yet run (and closed) can hit the limit briefly.
        if (++failed_accepts_ == 2 && log_) {
          log_("cannot accept connections: " + ec.message() +
               "; retrying every 100 ms until some are closed");
        }
        asio::steady_timer pause(acceptor_.get_executor(), std::chrono::milliseconds(100));
        co_await pause.async_wait(use_nothrow);
      }
      continue;  // otherwise the newcomer failed (e.g. reset in the backlog)
    }
    asio::ip::tcp::socket socket(acceptor_.get_executor());
    std::error_code ec;
    socket.assign(protocol_, fd, ec);
    if (ec) {
      ::close(fd);
      continue;
    }
    if (failed_accepts_ > 0) {
      if (failed_accepts_ >= 2 && log_) {
        log_("accepting connections again (" + std::to_string(failed_accepts_) +
             (failed_accepts_ == 1 ? " attempt" : " attempts") + " failed meanwhile)");
      }
      failed_accepts_ = 0;
    }
    if (live_connections() >= max_connections) {
      // Refused at once; the caller asks again with a fresh count.
      refuse(socket);
      co_return fail(errc::overloaded, "connection limit reached");
    }
    co_return std::move(socket);
  }
}

void tcp_listener::refuse(asio::ip::tcp::socket& socket) const {
  int fd = socket.native_handle();
  // Closing with unread bytes sends a reset, which may make the peer drop
  // the refusal: take in what has arrived already (a request sent right
  // after connecting), without waiting for more.
  char sink[4096];
  for (int i = 0; i < 16; ++i) {
    if (::recv(fd, sink, sizeof sink, MSG_DONTWAIT) <= 0) break;
  }
  if (!refusal_.empty()) {
    // Best effort: a fresh socket's send buffer takes a short message whole.
    [[maybe_unused]] auto sent =
        ::send(fd, refusal_.data(), refusal_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  ::shutdown(fd, SHUT_WR);
  std::error_code ignored;
  socket.close(ignored);
}

void tcp_listener::close() {
  std::error_code ec;
  acceptor_.close(ec);
}

// ---------------------------------------------------------------- connect

asio::awaitable<result<asio::ip::tcp::socket>> connect(std::string_view host,
                                                       std::uint16_t port,
                                                       std::chrono::milliseconds timeout) {
  using namespace asio::experimental::awaitable_operators;
  auto address = parse_address(host);
  if (!address) co_return tl::unexpected(address.error());
  auto executor = co_await asio::this_coro::executor;
  asio::ip::tcp::endpoint endpoint(*address, port);
  asio::ip::tcp::socket socket(executor);
  asio::steady_timer timer(executor, timeout);
  auto outcome = co_await (socket.async_connect(endpoint, use_nothrow) ||
                           timer.async_wait(use_nothrow));
  std::string where = "cannot connect to " + to_string(endpoint);
  if (outcome.index() == 1) co_return fail(errc::timeout, where + ": no answer in time");
  auto [ec] = std::get<0>(outcome);
  if (ec) {
    if (ec == asio::error::connection_refused) {
      co_return fail(errc::connection_refused, where + ": connection refused (is the server running?)");
    }
    co_return tl::unexpected(from_system(ec, where));
  }
  std::error_code ignored;
  socket.set_option(asio::ip::tcp::no_delay(true), ignored);
  co_return std::move(socket);
}

}  // namespace improto::net

#include "improto/net/tcp.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
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

struct tcp_connection::output {
  std::string pending;  // queued since the last write began
  std::string writing;  // being written; `written` of it went out
  std::size_t written = 0;
  // wait_until_queued_at_most() sleeps here; woken after each write.
  std::unique_ptr<event> drained;
};

struct tcp_connection::details {
  asio::ip::tcp::endpoint remote, local;
  bool have_remote = false, have_local = false;
  std::string error_text;  // close_reason() of a socket error
};

namespace {
// The io_context of an executor (all of ours are io_contexts').
asio::io_context& context_of(const asio::any_io_executor& executor) {
  return static_cast<asio::io_context&>(asio::query(executor, asio::execution::context));
}

// A socket moved to the io_context's own executor type (the connection's:
// a smaller socket and smaller pending operations than any_io_executor's).
tcp_connection::socket_type adopt(asio::ip::tcp::socket socket) {
  auto& io = context_of(socket.get_executor());
  tcp_connection::socket_type adopted(io);
  std::error_code ec;
  if (socket.is_open()) {
    auto protocol = socket.local_endpoint(ec).protocol();
    int fd = socket.release(ec);
    if (!ec) adopted.assign(protocol, fd, ec);
    if (ec && fd >= 0) ::close(fd);
  }
  return adopted;
}
}  // namespace

tcp_connection::tcp_connection(asio::ip::tcp::socket socket, const stream_limits& limits)
    : tcp_connection(adopt(std::move(socket)), limits) {}

tcp_connection::tcp_connection(asio::io_context& io, asio::ip::tcp protocol, int fd,
                               const stream_limits& limits)
    : tcp_connection(
          [&] {
            socket_type socket(io);
            std::error_code ec;
            socket.assign(protocol, fd, ec);
            if (ec) ::close(fd);  // the connection starts closed
            return socket;
          }(),
          limits) {}

tcp_connection::tcp_connection(socket_type socket, const stream_limits& limits)
    : socket_(std::move(socket)),
      limits_(limits),
      sweeper_(deadline_sweeper::of(socket_.get_executor())),
      idle_timeout_(limits.idle_timeout) {
  // No TCP_NODELAY, no FIONBIO here: writes set the first when it matters,
  // and reads and writes pass MSG_DONTWAIT (a listener's sockets are
  // non-blocking from accept4 anyway).
  sweeper_.uses(limits_.idle_timeout);
  sweeper_.uses(limits_.message_timeout);
  arm_deadline();
  if (!socket_.is_open()) {
    open_ = false;
    close_reason_ = "closed";
  }
}

tcp_connection::~tcp_connection() { sweeper_.remove(*this); }

void tcp_connection::start() {
  if (open_) sweeper_.add(*this);
}

void tcp_connection::set_parking(std::weak_ptr<parking> target, void* cookie) {
  parking_ = std::move(target);
  parking_cookie_ = cookie;
}

tcp_connection::output& tcp_connection::out() {
  if (!out_) out_ = std::make_unique<output>();
  return *out_;
}

tcp_connection::details& tcp_connection::more() const {
  if (!more_) more_ = std::make_unique<details>();
  return *more_;
}

std::size_t tcp_connection::queued_bytes() const noexcept {
  return out_ ? out_->pending.size() + (out_->writing.size() - out_->written) : 0;
}

std::string_view tcp_connection::close_reason() const noexcept { return close_reason_; }

const asio::ip::tcp::endpoint& tcp_connection::remote() const noexcept {
  auto& d = more();
  if (!d.have_remote) {
    std::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) {
      d.remote = ep;
      d.have_remote = true;
    }
  }
  return d.remote;
}

const asio::ip::tcp::endpoint& tcp_connection::local() const noexcept {
  auto& d = more();
  if (!d.have_local) {
    std::error_code ec;
    auto ep = socket_.local_endpoint(ec);
    if (!ec) {
      d.local = ep;
      d.have_local = true;
    }
  }
  return d.local;
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

asio::awaitable<result<std::string_view>> tcp_connection::read(bool may_park) {
  while (true) {
    if (!open_) co_return fail(errc::connection_closed, std::string(close_reason_));
    if (peer_finished_) co_return fail(errc::connection_closed, "closed by peer");
    std::error_code wait_ec;
    if (!may_be_readable_) {
      if (may_park && !closing_ && !parking_.expired()) {
        park();
        co_return std::string_view();
      }
      auto [ec] = co_await socket_.async_wait(asio::socket_base::wait_read, use_nothrow);
      wait_ec = ec;
    }
    if (!wait_ec) {
      if (shared_read_buffer.size() < limits_.read_chunk) {
        shared_read_buffer.resize(limits_.read_chunk);
      }
      auto n = ::recv(socket_.native_handle(), shared_read_buffer.data(), limits_.read_chunk,
                      MSG_DONTWAIT);
      if (n > 0) {
        // A full chunk may have left more behind; a short one took all there was.
        may_be_readable_ = static_cast<std::size_t>(n) == limits_.read_chunk;
        if (!mid_message_) arm_deadline();
        co_return std::string_view(shared_read_buffer.data(), static_cast<std::size_t>(n));
      }
      if (n == 0) {
        wait_ec = asio::error::eof;
      } else {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          may_be_readable_ = false;
          continue;
        }
        if (errno == EINTR) continue;
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
    shut("error", wait_ec);
    co_return tl::unexpected(from_system(wait_ec, "read"));
  }
}

void tcp_connection::park() {
  parked_ = true;
  // An idle connection keeps no output buffers.
  if (out_ && !writing_ && !flush_scheduled_ && out_->pending.empty() && !out_->drained) {
    out_.reset();
  }
  socket_.async_wait(asio::socket_base::wait_read,
                     [self = shared_from_this()](const std::error_code& ec) { self->unpark(ec); });
}

void tcp_connection::unpark(const std::error_code& ec) {
  parked_ = false;
  // Readable, or closed meanwhile (operation_aborted): either way the next
  // read() finds out without waiting.
  (void)ec;
  may_be_readable_ = true;
  if (auto target = parking_.lock()) {
    target->wake(*this, parking_cookie_);
  } else {
    close();  // nobody left to serve it
  }
}

bool tcp_connection::send(std::string_view bytes) {
  if (!open_ || closing_) return false;
  if (queued_bytes() + bytes.size() > limits_.max_queued_bytes) return false;
  out().pending.append(bytes);
  schedule_flush();
  return true;
}

void tcp_connection::schedule_flush() {
  // After this turn: replies queued by one read's messages share a write.
  if (flush_scheduled_ || writing_) return;
  flush_scheduled_ = true;
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->flush_scheduled_ = false;
    self->flush();
  });
}

asio::awaitable<void> tcp_connection::wait_until_queued_at_most(std::size_t mark) {
  while (open_ && queued_bytes() > mark) {
    auto& o = out();
    if (!o.drained) o.drained = std::make_unique<event>(socket_.get_executor());
    // Named, not a temporary: see net/common.hpp on g++ 12.
    auto waited = o.drained->wait();
    co_await std::move(waited);
  }
}

void tcp_connection::close_after_flush() {
  if (!open_ || closing_) return;
  closing_ = true;
  arm_deadline();  // a peer that never reads cannot keep us flushing forever
  schedule_flush();
}

void tcp_connection::close() { shut("closed"); }

void tcp_connection::shut(std::string_view reason, const std::error_code& ec) {
  if (!open_) return;
  open_ = false;
  if (ec) {
    auto& d = more();
    d.error_text = ec.message();
    close_reason_ = d.error_text;
  } else {
    close_reason_ = reason;
  }
  sweeper_.remove(*this);
  // A timeout or an error is usually logged with the peer's address, which
  // the kernel no longer gives once the socket is closed: ask for it now.
  // A plain close (the common case) is not logged and skips the call.
  if (reason != "closed" && reason != "closed by peer") remote();
  // close() alone ends both directions (a FIN, or a reset when unread bytes
  // remain): no shutdown() before it. It also ends a parked wait (woken
  // with operation_aborted) and a wait for writability.
  std::error_code ignored;
  socket_.close(ignored);
  if (out_ && out_->drained) out_->drained->notify();
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

// Writes what is queued, straight to the socket; the reactor only when the
// socket's buffer is full.
void tcp_connection::flush() {
  if (!open_ || writing_) return;
  while (out_) {
    auto& o = *out_;
    if (o.written == o.writing.size()) {
      o.writing.clear();
      o.written = 0;
      // A burst must not pin its buffer to an idle connection for good.
      if (o.writing.capacity() > 64 * 1024) o.writing = std::string();
      if (o.pending.empty()) break;
      // Everything queued goes out in one write: replies batch naturally.
      std::swap(o.pending, o.writing);
    }
    std::string_view rest = std::string_view(o.writing).substr(o.written);
    std::error_code ec;
    bool ok = write_now(rest, ec);
    o.written = o.writing.size() - rest.size();
    if (!ok) {
      shut("error", ec);
      return;
    }
    if (!rest.empty()) {
      writing_ = true;
      socket_.async_wait(asio::socket_base::wait_write,
                         [self = shared_from_this()](const std::error_code& wait_ec) {
                           self->on_writable(wait_ec);
                         });
      wrote_some();
      return;
    }
  }
  wrote_some();
  if (closing_ && queued_bytes() == 0) shut(peer_finished_ ? "closed by peer" : "closed");
}

void tcp_connection::on_writable(const std::error_code& ec) {
  writing_ = false;
  if (!open_) return;
  if (ec) {
    shut("error", ec);
    return;
  }
  flush();
}

void tcp_connection::wrote_some() {
  if (out_ && out_->drained) out_->drained->notify();
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

asio::awaitable<result<int>> tcp_listener::accept_native(
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
    if (failed_accepts_ > 0) {
      if (failed_accepts_ >= 2 && log_) {
        log_("accepting connections again (" + std::to_string(failed_accepts_) +
             (failed_accepts_ == 1 ? " attempt" : " attempts") + " failed meanwhile)");
      }
      failed_accepts_ = 0;
    }
    if (live_connections() >= max_connections) {
      // Refused at once; the caller asks again with a fresh count.
      refuse(fd);
      co_return fail(errc::overloaded, "connection limit reached");
    }
    co_return fd;
  }
}

asio::awaitable<result<asio::ip::tcp::socket>> tcp_listener::accept(
    std::function<std::size_t()> live_connections, std::size_t max_connections) {
  while (true) {
    // Named, not a temporary: see net/common.hpp on g++ 12.
    auto accepted = accept_native(live_connections, max_connections);
    auto fd = co_await std::move(accepted);
    if (!fd) co_return tl::unexpected(fd.error());
    asio::ip::tcp::socket socket(acceptor_.get_executor());
    std::error_code ec;
    socket.assign(protocol_, *fd, ec);
    if (ec) {
      ::close(*fd);
      continue;
    }
    co_return std::move(socket);
  }
}

void tcp_listener::refuse(int fd) const {
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
  ::close(fd);  // never registered with the reactor
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

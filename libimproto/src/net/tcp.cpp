#include "improto/net/tcp.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/this_coro.hpp>
#include <asio/write.hpp>
#include <sys/socket.h>

#include <cerrno>
#include <vector>

namespace improto::net {

tcp_connection::tcp_connection(asio::ip::tcp::socket socket, const stream_limits& limits)
    : socket_(std::move(socket)),
      limits_(limits),
      wake_writer_(socket_.get_executor()),
      deadline_timer_(socket_.get_executor()),
      idle_timeout_(limits.idle_timeout),
      drained_(socket_.get_executor()) {
  std::error_code ec;
  remote_ = socket_.remote_endpoint(ec);
  local_ = socket_.local_endpoint(ec);
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  socket_.non_blocking(true, ec);
  arm_deadline();
}

tcp_connection::~tcp_connection() = default;

void tcp_connection::start() {
  auto executor = socket_.get_executor();
  asio::co_spawn(executor, [self = shared_from_this()] { return self->write_loop(); },
                 asio::detached);
  asio::co_spawn(executor, [self = shared_from_this()] { return self->watchdog(); },
                 asio::detached);
}

void tcp_connection::arm_deadline() {
  auto timeout = mid_message_ || closing_ ? limits_.message_timeout : idle_timeout_;
  auto previous = deadline_;
  deadline_ = timeout.count() > 0 ? clock::now() + timeout : clock::time_point::max();
  // The watchdog sleeps until the old deadline; wake it when the new one is
  // earlier. A later deadline is noticed when the old one passes.
  if (deadline_ < previous) deadline_timer_.cancel();
}

void tcp_connection::set_mid_message(bool mid_message) {
  if (mid_message == mid_message_) return;  // the message deadline runs from its first byte
  mid_message_ = mid_message;
  arm_deadline();
}

void tcp_connection::set_idle_timeout(std::chrono::milliseconds timeout) {
  idle_timeout_ = timeout;
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
    auto [wait_ec] = co_await socket_.async_wait(asio::socket_base::wait_read, use_nothrow);
    if (!wait_ec) {
      if (shared_read_buffer.size() < limits_.read_chunk) {
        shared_read_buffer.resize(limits_.read_chunk);
      }
      std::error_code ec;
      std::size_t n = socket_.read_some(
          asio::buffer(shared_read_buffer.data(), limits_.read_chunk), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) continue;
      if (!ec) {
        if (!mid_message_) arm_deadline();
        co_return std::string_view(shared_read_buffer.data(), n);
      }
      wait_ec = ec;
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
  std::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  wake_writer_.notify();
  deadline_timer_.cancel();
  drained_.notify();
}

asio::awaitable<void> tcp_connection::write_loop() {
  while (open_) {
    if (pending_.empty()) {
      if (closing_) {
        std::error_code ec;
        socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
        shut(peer_finished_ ? "closed by peer" : "closed");
        break;
      }
      co_await wake_writer_.wait();
      continue;
    }
    // Everything queued goes out in one write: replies batch naturally.
    std::swap(pending_, writing_);
    auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(writing_), use_nothrow);
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

asio::awaitable<void> tcp_connection::watchdog() {
  while (open_) {
    deadline_timer_.expires_at(deadline_);
    co_await deadline_timer_.async_wait(use_nothrow);
    if (open_ && clock::now() >= deadline_) shut("timeout");
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
    auto [ec, socket] = co_await acceptor_.async_accept(use_nothrow);
    if (!acceptor_.is_open() || ec == asio::error::operation_aborted) {
      co_return fail(errc::connection_closed, "listener closed");
    }
    if (ec) {
      if (out_of_resources(ec)) {
        // One line per episode, not per failed accept.
        if (failed_accepts_++ == 0 && log_) {
          log_("cannot accept connections: " + ec.message() +
               "; retrying every 100 ms until some are closed");
        }
        asio::steady_timer pause(acceptor_.get_executor(), std::chrono::milliseconds(100));
        co_await pause.async_wait(use_nothrow);
      }
      continue;  // otherwise the newcomer failed (e.g. reset in the backlog)
    }
    if (failed_accepts_ > 0) {
      if (log_) {
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

#include "improto/net/tcp.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/this_coro.hpp>
#include <asio/write.hpp>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "reactor_wait.hpp"

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

// The connections of one io_context that have to wait: one epoll set of
// our own, registered with Asio's reactor as a single descriptor. A
// connection joins it (edge-triggered, reading and writing) the first time
// it waits and stays until its descriptor is closed, which also takes it
// out of the set: one epoll_ctl per connection that ever waits, none per
// wait, none at close. Events name the descriptor, looked up in a flat
// table, so an event for a connection closed meanwhile finds nothing (or
// its descriptor's next owner, who then tries a read or write in vain).
class tcp_poller : public asio::execution_context::service {
 public:
  static inline asio::execution_context::id id;
  using key_type = tcp_poller;

  explicit tcp_poller(asio::execution_context& context)
      : asio::execution_context::service(context) {}
  ~tcp_poller() override {
    if (epoll_ >= 0) ::close(epoll_);
  }

  // The poller of `io`, created after the services it uses (the sweeper,
  // the timer and descriptor services), so that it is shut down first.
  static tcp_poller& of(asio::io_context& io) {
    if (!asio::has_service<tcp_poller>(io)) {
      deadline_sweeper::of(io.get_executor());
      asio::use_service<reactor_type>(io);
    }
    auto& poller = asio::use_service<tcp_poller>(io);
    if (!poller.io_) {
      poller.io_ = &io;
      poller.sweeper_ = &deadline_sweeper::of(io.get_executor());
    }
    return poller;
  }

  asio::io_context& io() const noexcept { return *io_; }
  deadline_sweeper& sweeper() const noexcept { return *sweeper_; }

  // Puts c's descriptor in the set (once); false with `ec` on failure.
  bool add(tcp_connection& c, std::error_code& ec) {
    if (c.polled_) return true;
    if (epoll_ < 0 && !open(ec)) return false;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.fd = c.fd_;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd_, &ev) != 0) {
      ec = std::error_code(errno, asio::system_category());
      return false;
    }
    auto slot = static_cast<std::size_t>(c.fd_);
    if (slot >= table_.size()) table_.resize(std::max(slot + 1, table_.size() * 2), nullptr);
    table_[slot] = &c;
    c.polled_ = true;
    ++count_;
    watch();
    return true;
  }

  // Before c's descriptor is closed (closing it leaves the epoll set).
  void remove(tcp_connection& c) noexcept {
    if (!c.polled_) return;
    c.polled_ = false;
    table_[static_cast<std::size_t>(c.fd_)] = nullptr;
    // With nobody left, a pending wait would keep io_context::run() busy.
    if (--count_ == 0 && waiting_ && !draining_ && reactor_) {
      reactor_->cancel_ops(epoll_, reactor_data_);
    }
  }

  // Runs `task` once the readiness of this turn has been handed out: at the
  // end of the poller's handler when called from inside it, otherwise
  // posted. Work that the wake-up's requests cause (a group's commit, the
  // replies' write) then runs in the handler that read them: a handler
  // posted instead would run after Asio polls its reactor once more (an
  // epoll_wait per generation of handlers).
  void after_turn(std::function<void()> task) {
    if (in_turn_) {
      tasks_.push_back(std::move(task));
    } else {
      asio::post(*io_, std::move(task));
    }
  }
  // The same for a connection's write.
  bool flush_in_turn(tcp_connection& c) {
    if (!in_turn_) return false;
    flushes_.push_back(c.shared_from_this());
    return true;
  }

 private:
  // Registered with Asio's reactor directly (edge-triggered for reading),
  // so that its waits can be reads of our own (net/reactor_wait.hpp).
  using reactor_type = asio::detail::reactor;
  static_assert(std::is_same_v<reactor_type, asio::detail::epoll_reactor>,
                "the connection poller needs Asio's epoll reactor");
  static constexpr int batch = 128;

  bool open(std::error_code& ec) {
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) {
      ec = std::error_code(errno, asio::system_category());
      return false;
    }
    reactor_ = &asio::use_service<reactor_type>(*io_);
    if (int err = reactor_->register_descriptor(epoll_, reactor_data_); err != 0) {
      ec = std::error_code(err, asio::system_category());
      reactor_->cleanup_descriptor_data(reactor_data_);
      reactor_ = nullptr;
      ::close(epoll_);
      epoll_ = -1;
      return false;
    }
    return true;
  }

  // The set's events are collected inside Asio's reactor (a read of our own,
  // queued speculatively: no EPOLL_CTL_MOD per wait, which async_wait costs
  // in Asio 1.22) and handed out by the completion.
  void watch() {
    if (waiting_ || !reactor_) return;
    waiting_ = true;
    auto done = [this](const std::error_code& ec) {
      if (ec) collected_ = 0;  // cancelled: no connection left
      handle_turn(ec == asio::error::operation_aborted);
      waiting_ = false;
      if (count_ > 0) watch();
    };
    auto* op = new detail::perform_read_op<collector, decltype(done)>(collect_, std::move(done));
    reactor_->start_op(reactor_type::read_op, epoll_, reactor_data_, op,
                       /*is_continuation=*/false, /*allow_speculative=*/true);
  }

  // epoll_wait(0) into events_, inside the reactor. A short batch empties
  // the set (its members are edge-triggered), so the next wait needs the
  // next edge.
  struct collector {
    tcp_poller* poller;
    detail::perform_status operator()(std::error_code& ec) const {
      int n;
      do {
        n = ::epoll_wait(poller->epoll_, poller->events_, batch, 0);
      } while (n < 0 && errno == EINTR);
      if (n < 0) {
        ec = std::error_code(errno, asio::system_category());
        poller->collected_ = 0;
        return detail::perform_status::done;
      }
      poller->collected_ = n;
      if (n == 0) return detail::perform_status::would_block;
      return n < batch ? detail::perform_status::drained : detail::perform_status::done;
    }
  };

  // Hands out the collected events, then runs what they caused.
  void handle_turn(bool cancelled) {
    struct turn_guard {
      tcp_poller& p;
      ~turn_guard() { p.in_turn_ = p.draining_ = false; }
    } guard{*this};
    in_turn_ = true;
    draining_ = true;
    // Cancelled, nothing was collected: read what came meanwhile here.
    if (cancelled) collector{this}(ignored_);
    while (true) {
      int n = std::exchange(collected_, 0);
      for (int i = 0; i < n; ++i) {
        auto slot = static_cast<std::size_t>(events_[i].data.fd);
        // Looked up per event: handling one may close another.
        if (slot < table_.size() && table_[slot]) table_[slot]->on_ready(events_[i].events);
      }
      // A full batch: the next wait collects the rest at once (speculatively).
      if (!cancelled || n < batch) break;
      collector{this}(ignored_);
    }
    draining_ = false;
    run_turn_tasks();
  }

  // Tasks first (a commit fills replies), then the writes they queued.
  void run_turn_tasks() {
    while (!tasks_.empty() || !flushes_.empty()) {
      while (!tasks_.empty()) {
        running_.swap(tasks_);
        for (auto& task : running_) task();
        running_.clear();
      }
      for (std::size_t i = 0; i < flushes_.size(); ++i) {
        auto c = std::move(flushes_[i]);
        c->flush_scheduled_ = false;
        c->flush();
      }
      flushes_.clear();
    }
  }

  // Ends what waits without running it: a waiting coroutine's frame may own
  // its connection (a cycle only this breaks).
  void shutdown() override;

  asio::io_context* io_ = nullptr;
  deadline_sweeper* sweeper_ = nullptr;
  int epoll_ = -1;
  reactor_type* reactor_ = nullptr;  // once epoll_ is registered with it
  reactor_type::per_descriptor_data reactor_data_ = nullptr;
  std::vector<tcp_connection*> table_;    // by descriptor
  std::size_t count_ = 0;
  bool waiting_ = false;
  bool draining_ = false;
  bool in_turn_ = false;
  collector collect_{this};
  epoll_event events_[batch];
  int collected_ = 0;
  std::error_code ignored_;
  std::vector<std::function<void()>> tasks_, running_;
  std::vector<std::shared_ptr<tcp_connection>> flushes_;
};

struct tcp_connection::output {
  std::string pending;  // queued since the last write began
  std::string writing;  // being written; `written` of it went out
  std::size_t written = 0;
  // wait_until_queued_at_most() sleeps here; woken after each write.
  std::unique_ptr<event> drained;
  // Held while waiting to write: the bytes go out even if the owner lets go.
  std::shared_ptr<tcp_connection> writing_self;
};

struct tcp_connection::details {
  asio::ip::tcp::endpoint remote, local;
  bool have_remote = false, have_local = false;
  std::string error_text;  // close_reason() of a socket error
};

void tcp_poller::shutdown() {
  for (std::size_t i = 0; i < table_.size(); ++i) {
    auto* c = table_[i];
    if (!c) continue;
    auto reader = std::move(c->reader_);
    std::shared_ptr<tcp_connection> self;
    if (c->out_) self = std::move(c->out_->writing_self);
    c->writing_ = false;
    reader.reset();  // may destroy c (and clear its slot)
  }
  tasks_.clear();
  flushes_.clear();
  if (reactor_) {
    // A wait still queued is abandoned with the scheduler's other work.
    reactor_->deregister_descriptor(epoll_, reactor_data_, /*closing=*/true);
    reactor_->cleanup_descriptor_data(reactor_data_);
    reactor_ = nullptr;
  }
}

struct tcp_connection::read_waiter {
  virtual ~read_waiter() = default;
  virtual void complete(std::error_code ec) = 0;
};

template <class Handler>
struct tcp_connection::read_waiter_of final : tcp_connection::read_waiter {
  explicit read_waiter_of(Handler&& h) : handler(std::move(h)) {}
  void complete(std::error_code ec) override { std::move(handler)(ec); }
  Handler handler;
};

namespace {
// A connected socket's descriptor, taken out of Asio's reactor.
int release(asio::ip::tcp::socket& socket) {
  if (!socket.is_open()) return -1;
  std::error_code ec;
  int fd = socket.release(ec);
  return ec ? -1 : fd;
}

asio::io_context& context_of(const asio::any_io_executor& executor) {
  return static_cast<asio::io_context&>(asio::query(executor, asio::execution::context));
}
}  // namespace

// Every idle connection holds one: with make_shared's 16 B, 136 B is a
// 160-byte malloc chunk (the next field would make it 176).
static_assert(sizeof(void*) != 8 || sizeof(tcp_connection) <= 136);

namespace {
std::chrono::duration<std::int32_t, std::milli> clamped(std::chrono::milliseconds timeout) {
  constexpr std::chrono::milliseconds most{std::numeric_limits<std::int32_t>::max()};
  return std::chrono::duration<std::int32_t, std::milli>(
      static_cast<std::int32_t>(std::clamp(timeout, std::chrono::milliseconds(0), most).count()));
}
}  // namespace

tcp_connection::tcp_connection(asio::ip::tcp::socket socket, const stream_limits& limits)
    : tcp_connection(context_of(socket.get_executor()), asio::ip::tcp::v4(), release(socket),
                     limits) {}

tcp_connection::tcp_connection(asio::io_context& io, asio::ip::tcp /*protocol*/, int fd,
                               const stream_limits& limits)
    : fd_(fd),
      idle_timeout_(clamped(limits.idle_timeout)),
      poller_(tcp_poller::of(io)),
      limits_(limits) {
  // No TCP_NODELAY, no FIONBIO here: writes set the first when it matters,
  // and reads and writes pass MSG_DONTWAIT (a listener's sockets are
  // non-blocking from accept4 anyway).
  auto& sweeper = poller_.sweeper();
  sweeper.uses(limits_.idle_timeout);
  sweeper.uses(limits_.message_timeout);
  arm_deadline();
  if (fd_ < 0) {
    open_ = false;
    close_reason_ = "closed";
  }
}

tcp_connection::~tcp_connection() {
  poller_.sweeper().remove(*this);
  poller_.remove(*this);
  if (fd_ >= 0) ::close(fd_);
}

void tcp_connection::start() {
  if (open_) poller_.sweeper().add(*this);
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

namespace {
// getpeername/getsockname into an endpoint; false once the socket is gone.
template <class Call>
bool ask_address(int fd, Call call, asio::ip::tcp::endpoint& out) {
  if (fd < 0) return false;
  asio::ip::tcp::endpoint ep;
  socklen_t size = static_cast<socklen_t>(ep.capacity());
  if (call(fd, ep.data(), &size) != 0) return false;
  ep.resize(size);
  out = ep;
  return true;
}
}  // namespace

asio::ip::address tcp_connection::remote_address() const {
  if (more_ && more_->have_remote) return more_->remote.address();
  asio::ip::tcp::endpoint ep;
  return ask_address(fd_, ::getpeername, ep) ? ep.address() : asio::ip::address();
}

const asio::ip::tcp::endpoint& tcp_connection::remote() const noexcept {
  auto& d = more();
  if (!d.have_remote) d.have_remote = ask_address(fd_, ::getpeername, d.remote);
  return d.remote;
}

const asio::ip::tcp::endpoint& tcp_connection::local() const noexcept {
  auto& d = more();
  if (!d.have_local) d.have_local = ask_address(fd_, ::getsockname, d.local);
  return d.local;
}

void tcp_connection::arm_deadline() {
  std::chrono::milliseconds timeout = idle_timeout_;
  if (mid_message_ || closing_) timeout = limits_.message_timeout;
  deadline_ = timeout.count() > 0 ? clock::now() + timeout : clock::time_point::max();
}

void tcp_connection::set_mid_message(bool mid_message) {
  if (mid_message == mid_message_) return;  // the message deadline runs from its first byte
  mid_message_ = mid_message;
  arm_deadline();
}

void tcp_connection::set_idle_timeout(std::chrono::milliseconds timeout) {
  idle_timeout_ = clamped(timeout);
  poller_.sweeper().uses(timeout);
  arm_deadline();
}

namespace {
// All connections of a thread read into this one buffer: an idle connection
// then costs no read buffer at all (see tcp_connection::read()).
thread_local std::vector<char> shared_read_buffer;
// Reads in a row on this thread that filled the chunk (the peer had more).
thread_local unsigned full_reads_in_a_row = 0;
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
      if (poller_.add(*this, wait_ec)) {
        auto [ec] = co_await asio::async_initiate<decltype(use_nothrow), void(std::error_code)>(
            [this](auto handler) {
              reader_ = std::make_unique<read_waiter_of<decltype(handler)>>(std::move(handler));
            },
            use_nothrow);
        wait_ec = ec;  // operation_aborted: closed meanwhile (a deadline, close())
      }
    }
    if (!wait_ec && full_reads_in_a_row >= 4) {
      // A peer that keeps a full chunk waiting must not keep the thread:
      // after 4 such reads the other connections' handlers run first (a
      // post, no system call). Only then: a yield on every first read would
      // let accepts run ahead and hold more coroutine frames at once.
      full_reads_in_a_row = 0;
      co_await asio::post(co_await asio::this_coro::executor, use_nothrow);
      if (!open_) continue;
    }
    if (!wait_ec) {
      if (shared_read_buffer.size() < limits_.read_chunk) {
        shared_read_buffer.resize(limits_.read_chunk);
      }
      auto n = ::recv(fd_, shared_read_buffer.data(), limits_.read_chunk,
                      MSG_DONTWAIT);
      if (n > 0) {
        // A full chunk may have left more behind; a short one took all the
        // bytes there were, but not an end of stream (or error) that came with
        // them, whose edge has passed already.
        const bool full = static_cast<std::size_t>(n) == limits_.read_chunk;
        full_reads_in_a_row = full ? full_reads_in_a_row + 1 : 0;
        may_be_readable_ = full || hangup_seen_;
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
  release_output_if_idle();
  // Nor the addresses a log line asked for (~100 B; asked again if needed).
  // An open connection has no error text.
  if (more_ && more_->error_text.empty()) more_.reset();
  std::error_code ec;
  if (!poller_.add(*this, ec)) {
    shut("error", ec);  // unpark() runs, as for any close of a parked connection
  }
}

void tcp_connection::unpark() {
  parked_ = false;
  // Readable, or closed meanwhile: either way the next read() finds out
  // without waiting.
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

void tcp_connection::on_ready(std::uint32_t events) {
  // What runs below may let go of this connection.
  auto self = shared_from_this();
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    may_be_readable_ = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) hangup_seen_ = true;
    if (parked_) {
      unpark();
    } else if (reader_) {
      auto reader = std::move(reader_);
      reader->complete({});
    }
  }
  if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && writing_) on_writable();
}

void tcp_connection::schedule_flush() {
  // After this turn: replies queued by one read's messages share a write.
  if (flush_scheduled_ || writing_) return;
  flush_scheduled_ = true;
  if (poller_.flush_in_turn(*this)) return;
  asio::post(poller_.io(), [self = shared_from_this()] {
    self->flush_scheduled_ = false;
    self->flush();
  });
}

asio::awaitable<void> tcp_connection::wait_until_queued_at_most(std::size_t mark) {
  while (open_ && queued_bytes() > mark) {
    auto& o = out();
    if (!o.drained) o.drained = std::make_unique<event>(poller_.io().get_executor());
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
  poller_.sweeper().remove(*this);
  // A timeout or an error is usually logged with the peer's address, which
  // the kernel no longer gives once the socket is closed: ask for it now.
  // A plain close (the common case) is not logged and skips the call.
  if (reason != "closed" && reason != "closed by peer") remote();
  // close() ends both directions and leaves the poller's set. A last answer
  // held back by MSG_MORE goes out with the FIN in one segment (one trip
  // through the peer's receive path instead of two, as nginx's corked
  // answers do). That is shutdown()'s FIN: close() alone would answer bytes
  // the peer sent meanwhile with a reset that discards the unsent answer;
  // after shutdown() the answer is out first. Nothing can follow an end of
  // stream, so a peer that finished needs no shutdown().
  poller_.remove(*this);
  if (corked_ && !peer_finished_) ::shutdown(fd_, SHUT_WR);
  ::close(fd_);
  fd_ = -1;
  // What waited ends on the next turn, not inside the caller's call.
  if (parked_) {
    asio::post(poller_.io(), [self = shared_from_this()] { self->unpark(); });
  }
  if (reader_) {
    asio::post(poller_.io(), [reader = std::move(reader_)] {
      reader->complete(asio::error::operation_aborted);
    });
  }
  if (writing_) {
    writing_ = false;
    asio::post(poller_.io(), [self = std::move(out_->writing_self)] {});
  }
  if (out_ && out_->drained) out_->drained->notify();
}

bool tcp_connection::write_now(std::string_view& bytes, std::error_code& ec, bool last) {
  int fd = fd_;
  // Nagle's algorithm only holds data back while earlier data is unacknowledged:
  // a first answer in one segment never waits, so a one-request connection
  // skips the setsockopt.
  if (!nodelay_ && (wrote_ || bytes.size() > 1400)) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    nodelay_ = true;
  }
  wrote_ = true;
  int flags = MSG_DONTWAIT | MSG_NOSIGNAL;
  if (last) {
    flags |= MSG_MORE;
    corked_ = true;
  }
  while (!bytes.empty()) {
    auto n = ::send(fd, bytes.data(), bytes.size(), flags);
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
    bool ok = write_now(rest, ec, closing_ && o.pending.empty());
    o.written = o.writing.size() - rest.size();
    if (!ok) {
      shut("error", ec);
      return;
    }
    if (!rest.empty()) {
      if (!poller_.add(*this, ec)) {
        shut("error", ec);
        return;
      }
      writing_ = true;
      o.writing_self = shared_from_this();
      wrote_some();
      return;
    }
  }
  wrote_some();
  if (closing_ && queued_bytes() == 0) {
    shut(peer_finished_ ? "closed by peer" : "closed");
    return;
  }
  // A reply usually goes out after its connection parked.
  if (parked_) release_output_if_idle();
}

// An idle connection keeps no output buffers (~150 B with a reply's bytes).
void tcp_connection::release_output_if_idle() {
  if (out_ && !writing_ && !flush_scheduled_ && out_->pending.empty() && !out_->drained &&
      out_->written == out_->writing.size()) {
    out_.reset();
  }
}

void tcp_connection::on_writable() {
  writing_ = false;
  auto self = std::move(out_->writing_self);
  if (open_) flush();
}

void tcp_connection::wrote_some() {
  if (out_ && out_->drained) out_->drained->notify();
}

void after_turn(asio::io_context& io, std::function<void()> task) {
  tcp_poller::of(io).after_turn(std::move(task));
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

void tcp_listener::set_defer_accept(std::chrono::seconds wait) {
#ifdef TCP_DEFER_ACCEPT
  int seconds = static_cast<int>(wait.count());
  ::setsockopt(acceptor_.native_handle(), IPPROTO_TCP, TCP_DEFER_ACCEPT, &seconds,
               sizeof seconds);
#else
  (void)wait;
#endif
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

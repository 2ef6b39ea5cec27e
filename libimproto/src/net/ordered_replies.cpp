#include "improto/net/ordered_replies.hpp"

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <deque>

#include "improto/net/event.hpp"

namespace improto::net {
namespace {
// A streamed body goes out in pieces of at most this: large enough to keep
// the writer busy, small enough that one piece never fills the queue alone.
constexpr std::size_t stream_piece = 256 * 1024;
}  // namespace

struct ordered_replies::state : std::enable_shared_from_this<state> {
  struct entry {
    bool done = false;  // bytes (or start) is the reply
    std::string bytes;  // the reply; for a stream, its head while it waits to fit
    stream_start start;
    bool started = false;
    stream_body body;
    std::size_t sent = 0;
  };

  state(std::shared_ptr<const settings> s, std::shared_ptr<tcp_connection> c)
      : shared(std::move(s)),
        executor(shared->executor),
        conn(std::move(c)),
        max_queued(shared->max_queued_bytes),
        policy(shared->policy),
        log(shared->log),
        changed(executor) {}

  std::shared_ptr<const settings> shared;
  const asio::any_io_executor& executor;
  std::shared_ptr<tcp_connection> conn;
  std::size_t max_queued;
  overflow policy;
  const logger& log;
  std::deque<entry> slots;
  slot first = 0;  // the number of slots.front()
  bool blocked = false;
  bool draining = false;
  event changed;
  std::string head;  // a stream's head is built here: no allocation once warm

  // Whether `n` bytes can be queued now. Into an empty queue always: a reply
  // larger than the whole bound can never fit, and send() then refuses it.
  bool fits(std::size_t n) const {
    std::size_t queued = conn->queued_bytes();
    return queued == 0 || queued + n <= max_queued;
  }

  // Queues `bytes`; false when the connection refused them (and is closed now).
  bool send(std::string_view bytes) {
    if (!conn->is_open() || conn->send(bytes)) return true;
    if (log) {
      log(to_string(conn->remote()) +
          (policy == overflow::close
               ? std::string(": reply queue full, closing")
               : ": reply refused (" + std::to_string(bytes.size()) + " bytes), closing"));
    }
    conn->close();
    if (policy == overflow::close) {
      // Nothing owed can be sent any more; late fills find their slot gone.
      first += slots.size();
      slots.clear();
    }
    return false;
  }

  // Sends what it can of the stream at the front; true once all of it is
  // queued (or the connection is gone), false when the queue is full.
  bool send_stream(entry& e) {
    if (!conn->is_open()) return true;
    if (!e.started) {
      e.started = true;
      head.clear();
      e.body = e.start(head);
      e.start = nullptr;
      if (fits(head.size())) {
        if (!send(head)) return true;
      } else {
        e.bytes = head;
      }
    }
    if (!e.bytes.empty()) {
      if (!fits(e.bytes.size())) return false;
      if (!send(e.bytes)) return true;
      e.bytes = std::string();
    }
    // The queue bound limits what waits for the peer, not the size of one answer.
    while (e.sent < e.body.size && conn->is_open()) {
      std::size_t queued = conn->queued_bytes();
      if (queued >= max_queued) return false;
      std::size_t n = std::min({e.body.size - e.sent, stream_piece, max_queued - queued});
      if (!send(std::string_view(*e.body.bytes).substr(e.sent, n))) return true;
      e.sent += n;
    }
    e.body.bytes.reset();
    return true;
  }

  void flush() {
    blocked = false;
    while (!slots.empty() && slots.front().done) {
      auto& front = slots.front();
      if (front.started || front.start) {
        if (!send_stream(front)) {
          blocked = true;
          break;
        }
      } else if (conn->is_open()) {
        if (policy == overflow::wait && !fits(front.bytes.size())) {
          blocked = true;
          break;
        }
        if (!send(front.bytes) && slots.empty()) break;  // overflow::close dropped them all
      }
      if (slots.empty()) break;  // a stream's send() under overflow::close
      slots.pop_front();
      ++first;
    }
    if (blocked && !draining) {
      draining = true;
      asio::co_spawn(executor, drain(shared_from_this()), asio::detached);
    }
    changed.notify();
  }

  // Resumes a blocked front once half the queue has gone out: pieces stay
  // large, and the peer always has bytes to read.
  static asio::awaitable<void> drain(std::shared_ptr<state> self) {
    while (self->blocked && self->conn->is_open()) {
      co_await self->conn->wait_until_queued_at_most(self->max_queued / 2);
      self->flush();
    }
    self->draining = false;
    if (self->blocked) {
      // Closed: what is left can no longer be sent; waiters may go on.
      self->blocked = false;
      self->changed.notify();
    }
  }
};

ordered_replies::ordered_replies(const asio::any_io_executor& executor,
                                 std::shared_ptr<tcp_connection> conn,
                                 std::size_t max_queued_bytes, overflow policy, logger log)
    : ordered_replies(std::make_shared<settings>(
                          settings{executor, max_queued_bytes, policy, std::move(log)}),
                      std::move(conn)) {}

ordered_replies::ordered_replies(std::shared_ptr<const settings> shared,
                                 std::shared_ptr<tcp_connection> conn)
    : settings_(std::move(shared)), conn_(std::move(conn)) {}

ordered_replies::~ordered_replies() = default;

ordered_replies::state& ordered_replies::st() {
  if (!state_) state_ = std::make_shared<state>(settings_, conn_);
  return *state_;
}

void ordered_replies::release_if_idle() {
  if (state_ && state_.use_count() == 1 && state_->slots.empty() && !state_->draining &&
      !state_->changed.has_waiters()) {
    state_.reset();
  }
}

ordered_replies::slot ordered_replies::reserve() {
  auto& st = this->st();
  st.slots.emplace_back();
  return st.first + st.slots.size() - 1;
}

void ordered_replies::fill(slot s, std::string bytes) {
  if (!state_) return;
  auto& st = *state_;
  if (s < st.first || s - st.first >= st.slots.size()) return;
  auto& e = st.slots[static_cast<std::size_t>(s - st.first)];
  e.done = true;
  e.bytes = std::move(bytes);
  st.flush();
}

void ordered_replies::push(std::string_view bytes) {
  if (!state_) {
    // The common case: nothing owed, the reply goes out now. Sent as the
    // state would send it, without making one.
    if (settings_->policy == overflow::close || conn_->queued_bytes() == 0 ||
        conn_->queued_bytes() + bytes.size() <= settings_->max_queued_bytes) {
      if (!conn_->is_open() || conn_->send(bytes)) return;
    }
  }
  auto& st = this->st();
  if (st.slots.empty() && (st.policy == overflow::close || st.fits(bytes.size()))) {
    st.send(bytes);
    st.changed.notify();
    return;
  }
  // Behind other replies, or the queue is full of a stream.
  auto& e = st.slots.emplace_back();
  e.done = true;
  e.bytes.assign(bytes);
  if (st.slots.size() == 1) st.flush();
}

void ordered_replies::push_stream(stream_start start) {
  auto& st = this->st();
  auto& e = st.slots.emplace_back();
  e.done = true;
  e.start = std::move(start);
  if (st.slots.size() == 1) st.flush();
}

std::size_t ordered_replies::owed() const noexcept { return state_ ? state_->slots.size() : 0; }
bool ordered_replies::blocked() const noexcept { return state_ && state_->blocked; }

asio::awaitable<void> ordered_replies::wait() {
  auto keep = state_ ? state_ : (st(), state_);
  co_await keep->changed.wait();
}

void ordered_replies::wake() {
  if (state_) state_->changed.notify();
}

}  // namespace improto::net

#pragma once

// A condition variable for coroutines on one io_context thread: wait() until
// notify(). A notification wakes the coroutines waiting at that moment and is
// not remembered, so a waiter tests its condition in a loop:
//   while (!ready()) co_await ev.wait();
// (Asio has no such primitive; this is a timer that never expires, woken by
// cancelling its waits, kept in one place under a name that says what it is.)

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>

#include "improto/net/common.hpp"

namespace improto::net {

class event {
 public:
  explicit event(const asio::any_io_executor& executor) : timer_(executor) {
    timer_.expires_at(clock::time_point::max());
  }
  // Returns after the next notify() (or when the io_context stops).
  asio::awaitable<void> wait() {
    ++waiters_;
    co_await timer_.async_wait(use_nothrow);
    --waiters_;
  }
  // Wakes every coroutine waiting now.
  void notify() {
    if (waiters_ > 0) timer_.cancel();
  }
  bool has_waiters() const noexcept { return waiters_ > 0; }

 private:
  asio::steady_timer timer_;
  std::size_t waiters_ = 0;
};

}  // namespace improto::net

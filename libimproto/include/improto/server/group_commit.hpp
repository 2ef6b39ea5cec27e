#pragma once

// Groups store writes: writes that arrive while one transaction is being
// committed go together into the next one (one fsync per group). Each
// write's completion runs on the io_context with its own operation's result,
// after its group is committed, so a server answers "OK" only for committed
// changes. Results come back in commit order.
//
// Where the commits run (commit_thread):
//  * worker - on a thread of the committer's own: the io thread goes on
//    serving while a commit waits for fsync or for another process's lock.
//    Hand-offs cost more than the work on a busy core (each is a context
//    switch), so there are few: the worker is woken only when it sleeps, not
//    for every write queued while it commits, and a committed group goes
//    back to the io_context as one handler that completes all of its writes.
//  * io - on the io thread, once per turn of the event loop: the writes
//    queued by the handlers of one turn are one transaction, committed once
//    they have run (net::after_turn: at the end of the handler that served
//    the wake-up's connections, or by a handler posted behind them). No
//    thread hand-off at all, but the io thread waits for the commit. It suits commits that do not wait (no fsync:
//    sync_level normal or off; the server the only writer of its file), and
//    durable ones where CPU per change matters more than the latency of the
//    other requests (Redis's appendfsync always works this way): while the
//    io thread waits for fsync, the next turn's requests gather in the
//    sockets and are read, committed and answered together, one wake-up and
//    one fsync for all of them.
//
// Store is registry_store or buddy_store: anything with
//   result<std::vector<result<void>>> apply(std::span<const operation>).

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include <asio/async_result.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "improto/error.hpp"
#include "improto/net/tcp.hpp"

namespace improto::server {

enum class commit_thread { worker, io };

template <class Store>
class group_committer {
 public:
  using operation = typename Store::operation;

  group_committer(asio::io_context& io, Store store, std::size_t max_group = 512,
                  commit_thread where = commit_thread::worker)
      : io_(io), store_(std::move(store)), max_group_(max_group), where_(where) {
    if (where_ == commit_thread::worker) worker_ = std::thread([this] { run(); });
  }

  // Commits what is queued, then stops the thread. Results of the last
  // group are posted to the io_context like any other.
  ~group_committer() {
    if (where_ == commit_thread::io) {
      commit_pending();
      return;
    }
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    worker_.join();
  }
  group_committer(const group_committer&) = delete;
  group_committer& operator=(const group_committer&) = delete;

  // co_await committer.write(op) -> result<void>, resumed on the io_context.
  // After close(): overloaded at once, nothing written.
  asio::awaitable<result<void>> write(operation op) {
    return asio::async_initiate<const asio::use_awaitable_t<>, void(result<void>)>(
        [this](auto handler, operation o) {
          // The handler is move-only; a std::function must be copyable.
          auto shared = std::make_shared<decltype(handler)>(std::move(handler));
          submit(std::move(o), [shared](result<void> r) { (*shared)(std::move(r)); });
        },
        asio::use_awaitable, std::move(op));
  }

  // Queues `op`; `done(result<void>)` runs on the io_context once its group
  // is committed (or failed). Cheaper than write() for a caller that needs
  // no coroutine. After close(): done(overloaded) is posted, nothing written.
  // With commit_thread::io, call it on the io thread only.
  void submit(operation op, std::function<void(result<void>)> done) {
    bool queued = where_ == commit_thread::io ? enqueue_here(std::move(op), done)
                                              : enqueue(std::move(op), done);
    if (!queued) {
      asio::post(io_, [done = std::move(done)] {
        done(fail(errc::overloaded, "the server is shutting down"));
      });
    }
  }

  // Commits what is queued, posts its results, and takes no more writes;
  // returns once the worker is idle. Called on the io_context's thread when
  // the server goes: from then on no thread posts to the io_context, which
  // may then be destroyed without running (the results queued on it are
  // freed with it). Safe to call twice.
  void close() {
    if (where_ == commit_thread::io) {
      closed_ = true;
      commit_pending();
      return;
    }
    std::unique_lock lock(mutex_);
    closed_ = true;
    idle_.wait(lock, [this] { return queue_.empty() && !busy_; });
  }

  std::size_t groups_committed() const noexcept { return groups_.load(); }

 private:
  struct entry {
    operation op;
    std::function<void(result<void>)> done;
  };

  // One handler per group: completes its writes in commit order.
  struct completions {
    std::vector<std::function<void(result<void>)>> done;
    std::vector<result<void>> results;
    void operator()() {
      for (std::size_t i = 0; i < done.size(); ++i) done[i](std::move(results[i]));
    }
  };

  // Applies `group` as one transaction; its completions, in order.
  completions commit(std::vector<entry>& group, std::vector<operation>& ops) {
    ops.clear();
    for (auto& e : group) ops.push_back(std::move(e.op));
    auto results = store_.apply(std::span<const operation>(ops));
    completions batch;
    batch.done.reserve(group.size());
    batch.results.reserve(group.size());
    for (std::size_t i = 0; i < group.size(); ++i) {
      batch.done.push_back(std::move(group[i].done));
      batch.results.push_back(results ? std::move((*results)[i])
                                      : result<void>(tl::unexpected(results.error())));
    }
    group.clear();
    ++groups_;
    return batch;
  }

  // ------------------------------------------------------ commit_thread::io

  bool enqueue_here(operation op, std::function<void(result<void>)>& done) {
    if (closed_) return false;
    pending_.push_back({std::move(op), std::move(done)});
    if (!commit_posted_) {
      commit_posted_ = true;
      // After the turn that queued it: the connections' readiness of one
      // wake-up is handed out by one handler (net/tcp.cpp's poller,
      // sessions resumed inline), so its requests are all queued by then,
      // and the commit runs at the end of that handler (net::after_turn),
      // its replies written right after. A handler of its own would cost
      // an epoll_wait (Asio polls its reactor between generations of
      // handlers), as would each pass more through the queue, which added
      // no request to a group. Weak: the committer may go first (its
      // destructor commits what is pending).
      net::after_turn(io_, [this, alive = std::weak_ptr<void>(alive_)] {
        if (!alive.lock()) return;
        commit_posted_ = false;
        commit_here(alive);
      });
    }
    return true;
  }

  // The next group of at most max_group_ pending writes into `group`.
  bool take_pending(std::vector<entry>& group) {
    if (pending_.empty()) return false;
    auto end = pending_.begin() + static_cast<std::ptrdiff_t>(std::min(pending_.size(), max_group_));
    group.assign(std::make_move_iterator(pending_.begin()), std::make_move_iterator(end));
    pending_.erase(pending_.begin(), end);
    return true;
  }

  // Completed at once: we are on the io thread, in a handler of our own. A
  // completion may free the committer's owner, and so the committer.
  void commit_here(const std::weak_ptr<void>& alive) {
    std::vector<entry> group;
    std::vector<operation> ops;
    while (!alive.expired() && take_pending(group)) commit(group, ops)();
  }

  // close() and the destructor: committed now, completed through the
  // io_context like the worker's results.
  void commit_pending() {
    std::vector<entry> group;
    std::vector<operation> ops;
    while (take_pending(group)) asio::post(io_, commit(group, ops));
  }

  // -------------------------------------------------- commit_thread::worker

  bool enqueue(operation op, std::function<void(result<void>)>& done) {
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return false;
      queue_.push_back({std::move(op), std::move(done)});
      wake = sleeping_;
      sleeping_ = false;  // one notification is enough until it sleeps again
    }
    if (wake) wake_.notify_one();
    return true;
  }

  void run() {
    std::vector<entry> group;
    std::vector<operation> ops;
    while (true) {
      {
        std::unique_lock lock(mutex_);
        while (!stopping_ && queue_.empty()) {
          sleeping_ = true;
          wake_.wait(lock);
        }
        sleeping_ = false;
        if (queue_.empty()) return;  // stopping, nothing left
        while (!queue_.empty() && group.size() < max_group_) {
          group.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        busy_ = true;
      }
      // Cleared by commit() before idle: a completion may own the
      // committer's owner, and it is freed on the io thread.
      asio::post(io_, commit(group, ops));
      {
        std::lock_guard lock(mutex_);
        busy_ = false;
      }
      idle_.notify_all();
    }
  }

  asio::io_context& io_;
  Store store_;
  std::size_t max_group_;
  commit_thread where_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<entry> queue_;
  std::condition_variable idle_;  // close() waits here for the worker
  bool stopping_ = false;
  bool closed_ = false;  // close(): no more writes
  bool busy_ = false;    // the worker holds a group
  bool sleeping_ = false;  // the worker waits for wake_ and has not been notified
  std::atomic<std::size_t> groups_ = 0;  // written by the committing thread, read by anyone
  // commit_thread::io: the writes of this turn, and whether their commit is posted.
  std::vector<entry> pending_;
  bool commit_posted_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  std::thread worker_;  // last: starts once everything above exists
};

}  // namespace improto::server

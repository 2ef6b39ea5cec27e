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
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <type_traits>
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

// Done: what runs once a write's group is committed, called with the
// write's result, and also with its operation (`done(result, op&)`, e.g. to
// keep its strings without a copy of its own) when it takes one.
template <class Store, class Done = std::function<void(result<void>)>>
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
        // `self`, not `this`: clang 14 sees no use of a captured `this` in a
        // generic lambda that calls a member template.
        [self = this](auto handler, operation o) {
          // The handler is move-only; a std::function must be copyable.
          auto shared = std::make_shared<decltype(handler)>(std::move(handler));
          self->submit(std::move(o), [shared](result<void> r) { (*shared)(std::move(r)); });
        },
        asio::use_awaitable, std::move(op));
  }

  // Queues `op`; `done` runs on the io_context once its group is committed
  // (or failed). Cheaper than write() for a caller that needs no coroutine.
  // After close(): done(overloaded) is posted, nothing written. With
  // commit_thread::io, call it on the io thread only.
  template <class Op>
  void submit(Op&& op, Done done) {
    if (where_ == commit_thread::io ? enqueue_here<Op>(op, done) : enqueue<Op>(op, done)) return;
    asio::post(io_, [done = std::move(done), o = operation(std::forward<Op>(op))]() mutable {
      call(done, fail(errc::overloaded, "the server is shutting down"), o);
    });
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
  // Writes side by side with their completions: the store reads the
  // operations where they were queued, with no move into a list of its own.
  struct batch {
    std::vector<operation> ops;
    std::vector<Done> done;
    bool empty() const noexcept { return ops.empty(); }
    void clear() noexcept {
      ops.clear();
      done.clear();
    }
    template <class Op>
    void push(Op&& op, Done& d) {
      ops.emplace_back(std::forward<Op>(op));
      done.push_back(std::move(d));
    }
  };

  static void call(Done& done, result<void> r, operation& op) {
    if constexpr (std::is_invocable_v<Done&, result<void>, operation&>) {
      done(std::move(r), op);
    } else {
      done(std::move(r));
    }
  }

  // One handler per group: completes its writes in commit order.
  struct completions {
    batch group;
    result<std::vector<result<void>>> results;
    void operator()() {
      for (std::size_t i = 0; i < group.ops.size(); ++i) {
        call(group.done[i],
             results ? std::move((*results)[i]) : result<void>(tl::unexpected(results.error())),
             group.ops[i]);
      }
    }
  };

  // The next group of at most max_group_ writes of `from` into `into`
  // (empty): all of them, the usual case, by swapping the vectors.
  void take(batch& from, batch& into) const {
    if (from.ops.size() <= max_group_) {
      std::swap(from.ops, into.ops);
      std::swap(from.done, into.done);
      return;
    }
    auto n = static_cast<std::ptrdiff_t>(max_group_);
    into.ops.assign(std::make_move_iterator(from.ops.begin()),
                    std::make_move_iterator(from.ops.begin() + n));
    into.done.assign(std::make_move_iterator(from.done.begin()),
                     std::make_move_iterator(from.done.begin() + n));
    from.ops.erase(from.ops.begin(), from.ops.begin() + n);
    from.done.erase(from.done.begin(), from.done.begin() + n);
  }

  // Applies `group` as one transaction; its completions, in order.
  completions commit(batch& group) {
    completions c;
    take(group, c.group);
    c.results = store_.apply(std::span<const operation>(c.group.ops));
    ++groups_;
    return c;
  }

  // ------------------------------------------------------ commit_thread::io

  template <class Op>
  bool enqueue_here(Op& op, Done& done) {
    if (closed_) return false;
    pending_.push(std::forward<Op>(op), done);
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

  // Completed at once: we are on the io thread, in a handler of our own. A
  // completion may free the committer's owner, and so the committer: its
  // vectors are reused only while it lives.
  void commit_here(const std::weak_ptr<void>& alive) {
    while (!alive.expired() && !pending_.empty()) {
      completions c;
      c.group = std::move(spare_);
      take(pending_, c.group);
      c.results = store_.apply(std::span<const operation>(c.group.ops));
      ++groups_;
      c();
      if (alive.expired()) return;
      c.group.clear();
      if (pending_.ops.capacity() == 0) std::swap(pending_, c.group);
      else spare_ = std::move(c.group);
    }
  }

  // close() and the destructor: committed now, completed through the
  // io_context like the worker's results.
  void commit_pending() {
    while (!pending_.empty()) asio::post(io_, commit(pending_));
  }

  // -------------------------------------------------- commit_thread::worker

  template <class Op>
  bool enqueue(Op& op, Done& done) {
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return false;
      queue_.push(std::forward<Op>(op), done);
      wake = sleeping_;
      sleeping_ = false;  // one notification is enough until it sleeps again
    }
    if (wake) wake_.notify_one();
    return true;
  }

  void run() {
    while (true) {
      batch group;
      {
        std::unique_lock lock(mutex_);
        while (!stopping_ && queue_.empty()) {
          sleeping_ = true;
          wake_.wait(lock);
        }
        sleeping_ = false;
        if (queue_.empty()) return;  // stopping, nothing left
        take(queue_, group);
        busy_ = true;
      }
      // The group's completions (which may own the committer's owner) are
      // freed on the io thread.
      asio::post(io_, commit(group));
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
  batch queue_;
  std::condition_variable idle_;  // close() waits here for the worker
  bool stopping_ = false;
  bool closed_ = false;  // close(): no more writes
  bool busy_ = false;    // the worker holds a group
  bool sleeping_ = false;  // the worker waits for wake_ and has not been notified
  std::atomic<std::size_t> groups_ = 0;  // written by the committing thread, read by anyone
  // commit_thread::io: the writes of this turn, and whether their commit is posted.
  batch pending_;
  batch spare_;  // an earlier group's vectors, cleared, for the next one
  bool commit_posted_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  std::thread worker_;  // last: starts once everything above exists
};

}  // namespace improto::server

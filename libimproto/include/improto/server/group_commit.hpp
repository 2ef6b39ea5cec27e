#pragma once

// Keeps SQLite commits off the io thread, and groups them: writes that
// arrive while one transaction is being committed go together into the next
// one (one fsync per group). Each awaiting coroutine resumes on the
// io_context with its own operation's result, after its group is on disk,
// so a server answers "OK" only for committed changes.
//
// Store is registry_store or buddy_store: anything with
//   result<std::vector<result<void>>> apply(std::span<const operation>).

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
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

namespace improto::server {

template <class Store>
class group_committer {
 public:
  using operation = typename Store::operation;

  group_committer(asio::io_context& io, Store store, std::size_t max_group = 512)
      : io_(io), store_(std::move(store)), max_group_(max_group), worker_([this] { run(); }) {}

  // Commits what is queued, then stops the thread. Results of the last
  // group are posted to the io_context like any other.
  ~group_committer() {
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
          // The handler is move-only; queue entries must be copyable.
          auto shared = std::make_shared<decltype(handler)>(std::move(handler));
          auto done = [this, shared](result<void> r) {
            asio::post(io_, [shared, r = std::move(r)]() mutable { (*shared)(std::move(r)); });
          };
          if (!enqueue(std::move(o), done)) done(fail(errc::overloaded, "the server is shutting down"));
        },
        asio::use_awaitable, std::move(op));
  }

  // Commits what is queued, posts its results, and takes no more writes;
  // returns once the worker is idle. Called on the io_context's thread when
  // the server goes: from then on no thread posts to the io_context, which
  // may then be destroyed without running (the results queued on it are
  // freed with it). Safe to call twice.
  void close() {
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

  bool enqueue(operation op, std::function<void(result<void>)> done) {
    {
      std::lock_guard lock(mutex_);
      if (closed_) return false;
      queue_.push_back({std::move(op), std::move(done)});
    }
    wake_.notify_one();
    return true;
  }

  void run() {
    std::vector<entry> group;
    std::vector<operation> ops;
    while (true) {
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, nothing left
        while (!queue_.empty() && group.size() < max_group_) {
          group.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        busy_ = true;
      }
      ops.clear();
      for (auto& e : group) ops.push_back(e.op);
      auto results = store_.apply(std::span<const operation>(ops));
      for (std::size_t i = 0; i < group.size(); ++i) {
        group[i].done(results ? std::move((*results)[i]) : result<void>(tl::unexpected(results.error())));
      }
      ++groups_;
      group.clear();  // before idle: a result handler may own the committer's owner
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
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<entry> queue_;
  std::condition_variable idle_;  // close() waits here for the worker
  bool stopping_ = false;
  bool closed_ = false;  // close(): no more writes
  bool busy_ = false;    // the worker holds a group
  std::atomic<std::size_t> groups_ = 0;  // written by the worker, read by anyone
  std::thread worker_;      // last: starts once everything above exists
};

}  // namespace improto::server

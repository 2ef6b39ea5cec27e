#pragma once

// Helpers for the in-process server tests: a temporary data directory and a
// coroutine run on the test's io_context until it finishes.

#include <doctest/doctest.h>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <unistd.h>

namespace server_test {

using namespace std::chrono_literals;

// A fresh data directory, removed afterwards.
struct temp_dir {
  std::filesystem::path path;
  explicit temp_dir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() /
           ("improto-" + tag + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

// Runs `body` as a coroutine on `io` until it finishes; fails the test if it
// has not within `limit` (a generous bound, not a timing assertion).
inline void run(asio::io_context& io, std::function<asio::awaitable<void>()> body,
                std::chrono::seconds limit = 30s) {
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await body();
        done = true;
      },
      asio::detached);
  auto deadline = std::chrono::steady_clock::now() + limit;
  if (io.stopped()) io.restart();  // it ran out of work before (a server stopped)
  while (!done && std::chrono::steady_clock::now() < deadline) io.run_for(10ms);
  REQUIRE(done);
}

// Yields to the io_context for `d` (lets the server run between polls).
inline asio::awaitable<void> pause(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

// Polls `done` (an awaitable predicate) until it holds or `limit` passes.
template <class Predicate>
asio::awaitable<bool> eventually(Predicate done, std::chrono::seconds limit = 20s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (co_await done()) co_return true;
    co_await pause(20ms);
  }
  co_return false;
}

}  // namespace server_test

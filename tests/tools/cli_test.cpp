#include <doctest/doctest.h>

#include <chrono>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "cli.hpp"
#include "improto/version.hpp"

using namespace improto;
using namespace std::chrono_literals;

namespace {

// Sends what `stream` (std::cout or std::cerr) prints to a string while alive.
class capture {
 public:
  explicit capture(std::ostream& stream) : stream_(stream), saved_(stream.rdbuf(text_.rdbuf())) {}
  ~capture() { stream_.rdbuf(saved_); }
  capture(const capture&) = delete;
  capture& operator=(const capture&) = delete;
  std::string text() const { return text_.str(); }

 private:
  std::ostream& stream_;
  std::ostringstream text_;
  std::streambuf* saved_;
};

int parse(cli::parser& p, std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  auto code = p.parse(static_cast<int>(argv.size()), argv.data());
  return code ? *code : -1;
}

}  // namespace

TEST_CASE("parser: --version prints the library version and exits 0") {
  std::string value;
  cli::parser p("imtool", "[--name X]", "A tool.");
  p.option("name", "X", "a name", value);
  capture out(std::cout);
  CHECK(parse(p, {"imtool", "--version"}) == 0);
  CHECK(out.text() == "imtool (improto) " + std::string(version()) + "\n");
  CHECK(version().find('.') != std::string_view::npos);
}

TEST_CASE("parser: --help lists --version; options still parse") {
  std::string value;
  cli::parser p("imtool", "[--name X]", "A tool.");
  p.option("name", "X", "a name", value);
  {
    capture out(std::cout);
    CHECK(parse(p, {"imtool", "--help"}) == 0);
    CHECK(out.text().find("--version") != std::string::npos);
  }
  CHECK(parse(p, {"imtool", "--name=bob"}) == -1);
  CHECK(value == "bob");
  capture err(std::cerr);
  CHECK(parse(p, {"imtool", "--nope"}) == 2);
  CHECK(err.text().find("unknown option '--nope'") != std::string::npos);
}

TEST_CASE("command_loop: one command at a time, in the typed order, then on_end") {
  // The reader thread is detached and may still be reading when a test
  // returns, or as the process exits: like std::cin, its input is never
  // destroyed (and stays reachable, for the leak checker).
  static std::istringstream& in = *new std::istringstream("slow\r\nfast\n\nlast");
  asio::io_context io(1);
  std::vector<std::string> events;
  int ends = 0;
  cli::command_loop loop(
      io, "imtool",
      [&](std::string line) -> asio::awaitable<void> {
        events.push_back("start " + line);
        asio::steady_timer t(io, line == "slow" ? 30ms : 0ms);
        co_await t.async_wait(asio::use_awaitable);
        events.push_back("end " + line);
      },
      [&] { ++ends; });
  loop.start(in);
  io.run();  // returns once the input is done and on_end has run
  CHECK(events == std::vector<std::string>{"start slow", "end slow", "start fast", "end fast",
                                           "start ", "end ", "start last", "end last"});
  CHECK(ends == 1);
  CHECK_FALSE(loop.failed());
}

TEST_CASE("command_loop: stop() drops the lines not yet run") {
  static std::istringstream& in = *new std::istringstream("a\nquit\nb\nc\n");
  asio::io_context io(1);
  std::vector<std::string> ran;
  int ends = 0;
  cli::command_loop* self = nullptr;
  cli::command_loop loop(
      io, "imtool",
      [&](std::string line) -> asio::awaitable<void> {
        ran.push_back(line);
        if (line == "quit") self->stop();
        co_return;
      },
      [&] { ++ends; });
  self = &loop;
  loop.start(in);
  io.run();
  CHECK(ran == std::vector<std::string>{"a", "quit"});
  CHECK(ends == 1);
  CHECK_FALSE(loop.failed());
}

TEST_CASE("command_loop: a command that throws is reported and ends the loop as failed") {
  static std::istringstream& in = *new std::istringstream("ok\nboom\nnever\n");
  asio::io_context io(1);
  std::vector<std::string> ran;
  int ends = 0;
  cli::command_loop loop(
      io, "imtool",
      [&](std::string line) -> asio::awaitable<void> {
        ran.push_back(line);
        if (line == "boom") throw std::runtime_error("disk on fire");
        co_return;
      },
      [&] { ++ends; });
  capture err(std::cerr);
  loop.start(in);
  io.run();
  CHECK(ran == std::vector<std::string>{"ok", "boom"});
  CHECK(ends == 1);
  CHECK(loop.failed());
  CHECK(err.text() == "imtool: input line 2 failed: disk on fire; no further input is read\n");
}

TEST_CASE("command_loop: nothing runs once the loop is gone") {
  static std::istringstream& in = *new std::istringstream("a\nb\n");
  asio::io_context io(1);
  int ran = 0, ends = 0;
  {
    cli::command_loop loop(
        io, "imtool",
        [&](std::string) -> asio::awaitable<void> {
          ++ran;
          co_return;
        },
        [&] { ++ends; });
    loop.start(in);
  }
  // Whatever the reader posted before the loop went is dropped, and it
  // posts nothing after; the loop's hold on run() went with it.
  io.run();
  CHECK(ran == 0);
  CHECK(ends == 0);
}

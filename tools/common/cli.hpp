#pragma once

// What every tool shares: the command line (declarative flags, --help,
// --version, a clear sentence and exit status 2 for bad usage), output one
// flushed line at a time, a server's run-until-signal and a client's loop
// over the commands it reads from stdin.

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>

#include "improto/net/common.hpp"

namespace improto::cli {

// ------------------------------------------------------------ command line

class parser {
 public:
  parser(std::string program, std::string usage, std::string summary);

  // --name VALUE or --name=VALUE.
  parser& option(std::string name, std::string metavar, std::string help, std::string& target);
  parser& option(std::string name, std::string metavar, std::string help, std::uint16_t& port,
                 bool allow_zero = true);
  parser& option(std::string name, std::string metavar, std::string help, double& target);
  parser& flag(std::string name, std::string help, bool& target);
  // Positional arguments, in order; optional ones must come last.
  parser& positional(std::string name, std::string help, std::string& target, bool required);
  // Free text after the option table in --help.
  parser& epilog(std::string text);

  // nullopt: go on. Otherwise the process should exit with that code (0
  // after --help or --version, 2 after a usage error, with the message
  // printed).
  std::optional<int> parse(int argc, char** argv);

  // Prints "<program>: <message>" and the --help hint; returns 2.
  int usage_error(std::string_view message) const;
  const std::string& program() const noexcept { return program_; }

 private:
  struct spec {
    std::string name, metavar, help;
    std::function<std::optional<std::string>(std::string_view)> set;  // error text or nullopt
    bool takes_value = true;
    bool required = false;
  };
  void print_help(std::ostream& out) const;

  std::string program_, usage_, summary_, epilog_;
  std::vector<spec> options_;
  std::vector<spec> positionals_;
};

// Seconds given on the command line, as a duration.
inline std::chrono::milliseconds seconds(double s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000.0));
}

// ------------------------------------------------------------------ output

// Logger that writes one flushed line per event to stderr.
net::logger stderr_logger();
// The same, gathering the lines of one turn of `io`'s event loop into one
// write(2) (a handler posted behind that turn's handlers writes them): a busy
// server logs an event per request without a system call per line. Lines
// logged once `io` is stopped are written at once, the rest when the logger
// goes at the latest.
net::logger stderr_logger(asio::io_context& io);

// Prints "<program>: <message>" to stderr.
void complain(std::string_view program, std::string_view message);

// Writes one line to stdout and flushes it, so pipes see it at once.
void print_line(std::string_view line);

// ----------------------------------------------------------------- servers

// What serve_until_signal drives.
struct service {
  std::function<void()> start;    // starts serving and logs 'listening on ...'
  std::function<void()> stop;     // stops accepting; what is in progress may finish
  std::function<bool()> drained;  // true once every connection has closed
};

// Catches SIGINT and SIGTERM, then starts the service and runs `io` until
// one arrives; then stops the service and returns once it has drained, or
// after `grace` at the latest. Since the signals are caught before start()
// announces the service, a signal at any moment after that line is a clean
// stop. Returns the exit status (0).
int serve_until_signal(asio::io_context& io, const service& s, const net::logger& log,
                       std::chrono::milliseconds grace = std::chrono::seconds(2));

// ----------------------------------------------------------------- clients

// A client's commands, read line by line from an input stream (a terminal,
// a pipe or a file) on a thread of its own and run on the io_context's
// thread one at a time, in order: a line typed ahead waits until the
// commands before it are done, so answers print in the typed order.
//
// A command that throws is not lost with its coroutine: the loop reports it
// on stderr ("<program>: input line N failed: ..."), ends as failed() and
// runs `on_end`.
class command_loop {
 public:
  // Runs one command line (without its line end).
  using handler = std::function<asio::awaitable<void>(std::string line)>;

  // `on_end` runs once, on the io_context's thread, when the loop ends:
  // after the command of the last line at the end of input, after stop(),
  // or after a failure.
  command_loop(asio::io_context& io, std::string program, handler on_line,
               std::function<void()> on_end);
  // Once the loop is destroyed nothing more is posted to the io_context,
  // even by a reader thread still blocked on a terminal; destroy the loop
  // before the io_context.
  ~command_loop();
  command_loop(const command_loop&) = delete;
  command_loop& operator=(const command_loop&) = delete;

  // Starts reading `in`. The reader thread is detached and may block on a
  // terminal until the process exits, so `in` must never be destroyed
  // (std::cin never is). Until the input or the loop ends, the
  // io_context's run() does not run out of work.
  void start(std::istream& in);
  void start();  // reads std::cin

  // Drops the lines not yet run and ends the loop once the running command
  // (if any) returns.
  void stop();

  bool failed() const noexcept;

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace improto::cli

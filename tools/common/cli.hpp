#pragma once

// Command-line handling shared by the tools: declarative flags, --help,
// a clear sentence and exit code 2 for bad usage; stderr logging.

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <asio/io_context.hpp>

#include "improto/net/common.hpp"

namespace improto::cli {

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

  // nullopt: go on. Otherwise the process should exit with that code
  // (0 after --help, 2 after a usage error, with the message printed).
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

// Logger that writes one flushed line per event to stderr.
net::logger stderr_logger();

// Prints "<program>: <message>" to stderr.
void complain(std::string_view program, std::string_view message);

}  // namespace improto::cli


namespace improto::cli {

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

// Seconds given on the command line, as a duration.
inline std::chrono::milliseconds seconds(double s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000.0));
}

}  // namespace improto::cli

namespace improto::cli {

// Reads standard input line by line on its own thread (it may be a
// terminal, a pipe or a file) and hands each line to `on_line` on the
// io_context's thread; `on_end` runs there after the last line.
void read_lines_async(asio::io_context& io, std::function<void(std::string)> on_line,
                      std::function<void()> on_end);

// Writes one line to stdout and flushes it, so pipes see it at once.
void print_line(std::string_view line);

}  // namespace improto::cli

#include "cli.hpp"

#include <csignal>
#include <cstdio>
#include <deque>
#include <exception>
#include <iostream>
#include <mutex>
#include <thread>

#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include "improto/version.hpp"
#include "improto/wire/text.hpp"

namespace improto::cli {

parser::parser(std::string program, std::string usage, std::string summary)
    : program_(std::move(program)), usage_(std::move(usage)), summary_(std::move(summary)) {}

parser& parser::option(std::string name, std::string metavar, std::string help,
                       std::string& target) {
  options_.push_back({std::move(name), std::move(metavar), std::move(help),
                      [&target](std::string_view v) -> std::optional<std::string> {
                        target = std::string(v);
                        return std::nullopt;
                      }});
  return *this;
}

parser& parser::option(std::string name, std::string metavar, std::string help,
                       std::uint16_t& port, bool allow_zero) {
  options_.push_back({std::move(name), std::move(metavar), std::move(help),
                      [&port, allow_zero](std::string_view v) -> std::optional<std::string> {
                        auto p = net::parse_port(v, allow_zero);
                        if (!p) return p.error().detail();
                        port = *p;
                        return std::nullopt;
                      }});
  return *this;
}

parser& parser::option(std::string name, std::string metavar, std::string help, double& target) {
  options_.push_back({std::move(name), std::move(metavar), std::move(help),
                      [&target](std::string_view v) -> std::optional<std::string> {
                        try {
                          std::size_t used = 0;
                          double d = std::stod(std::string(v), &used);
                          if (used != v.size() || d < 0) throw std::invalid_argument("");
                          target = d;
                          return std::nullopt;
                        } catch (const std::exception&) {
                          return "'" + wire::escape(v) + "' is not a non-negative number";
                        }
                      }});
  return *this;
}

parser& parser::flag(std::string name, std::string help, bool& target) {
  spec s{std::move(name), "", std::move(help),
         [&target](std::string_view) -> std::optional<std::string> {
           target = true;
           return std::nullopt;
         }};
  s.takes_value = false;
  options_.push_back(std::move(s));
  return *this;
}

parser& parser::positional(std::string name, std::string help, std::string& target,
                           bool required) {
  spec s{std::move(name), "", std::move(help),
         [&target](std::string_view v) -> std::optional<std::string> {
           target = std::string(v);
           return std::nullopt;
         }};
  s.required = required;
  positionals_.push_back(std::move(s));
  return *this;
}

parser& parser::epilog(std::string text) {
  epilog_ = std::move(text);
  return *this;
}

void parser::print_help(std::ostream& out) const {
  out << "Usage: " << program_ << " " << usage_ << "\n\n" << summary_ << "\n";
  if (!positionals_.empty()) {
    out << "\nArguments:\n";
    for (const auto& p : positionals_) {
      std::string left = "  " + p.name;
      out << left << std::string(left.size() < 24 ? 24 - left.size() : 1, ' ') << p.help << "\n";
    }
  }
  out << "\nOptions:\n";
  for (const auto& o : options_) {
    std::string left = "  --" + o.name + (o.takes_value ? " " + o.metavar : "");
    out << left << std::string(left.size() < 24 ? 24 - left.size() : 1, ' ') << o.help << "\n";
  }
  out << "  --help                show this help and exit\n";
  out << "  --version             show the version and exit\n";
  if (!epilog_.empty()) out << "\n" << epilog_ << "\n";
}

int parser::usage_error(std::string_view message) const {
  complain(program_, message);
  std::cerr << "Try '" << program_ << " --help' for more information.\n";
  return 2;
}

std::optional<int> parser::parse(int argc, char** argv) {
  std::size_t next_positional = 0;
  bool only_positionals = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (!only_positionals && arg == "--") {
      only_positionals = true;
      continue;
    }
    if (!only_positionals && (arg == "--help" || arg == "-h")) {
      print_help(std::cout);
      return 0;
    }
    if (!only_positionals && arg == "--version") {
      std::cout << program_ << " (improto) " << version() << "\n";
      return 0;
    }
    if (!only_positionals && arg.size() > 1 && arg[0] == '-') {
      std::string_view body = arg.substr(arg[1] == '-' ? 2 : 1);
      std::optional<std::string_view> inline_value;
      if (auto eq = body.find('='); eq != std::string_view::npos) {
        inline_value = body.substr(eq + 1);
        body = body.substr(0, eq);
      }
      const spec* match = nullptr;
      for (const auto& o : options_) {
        if (o.name == body) match = &o;
      }
      if (match == nullptr) return usage_error("unknown option '" + std::string(arg) + "'");
      if (!match->takes_value) {
        if (inline_value) return usage_error("--" + match->name + " takes no value");
        match->set("");
        continue;
      }
      std::string_view value;
      if (inline_value) {
        value = *inline_value;
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return usage_error("--" + match->name + " needs a value (" + match->metavar + ")");
      }
      if (auto problem = match->set(value)) {
        return usage_error("--" + match->name + ": " + *problem);
      }
      continue;
    }
    if (next_positional == positionals_.size()) {
      return usage_error("unexpected argument '" + std::string(arg) + "'");
    }
    const auto& p = positionals_[next_positional++];
    if (auto problem = p.set(arg)) return usage_error(p.name + ": " + *problem);
  }
  for (std::size_t i = next_positional; i < positionals_.size(); ++i) {
    if (positionals_[i].required) return usage_error("missing " + positionals_[i].name);
  }
  return std::nullopt;
}

net::logger stderr_logger() {
  return [](std::string_view line) {
    static std::mutex lock;
    std::lock_guard guard(lock);
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fputc('\n', stderr);
    std::fflush(stderr);
  };
}

net::logger stderr_logger(asio::io_context& io) {
  struct sink {
    std::mutex lock;
    std::string lines;  // not written yet
    bool posted = false;
    void write_out() {  // with `lock` held
      std::fwrite(lines.data(), 1, lines.size(), stderr);
      std::fflush(stderr);
      lines.clear();
    }
    ~sink() { write_out(); }
  };
  auto out = std::make_shared<sink>();
  return [out, &io](std::string_view line) {
    std::lock_guard guard(out->lock);
    out->lines += line;
    out->lines += '\n';
    if (io.stopped()) {
      out->write_out();
    } else if (!out->posted) {
      out->posted = true;
      asio::post(io, [weak = std::weak_ptr<sink>(out)] {
        if (auto s = weak.lock()) {
          std::lock_guard g(s->lock);
          s->posted = false;
          s->write_out();
        }
      });
    }
  };
}

void complain(std::string_view program, std::string_view message) {
  std::cerr << program << ": " << message << std::endl;
}

void print_line(std::string_view line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}


// ------------------------------------------------------------------ servers

int serve_until_signal(asio::io_context& io, const service& s, const net::logger& log,
                       std::chrono::milliseconds grace) {
  {
    // Installed before start() logs 'listening on': from then on a signal is
    // queued for the wait below, never the default action (death by signal).
    asio::signal_set signals(io, SIGINT, SIGTERM);
    asio::steady_timer poll(io);
    net::clock::time_point give_up;
    // Connections that do not drain in time are cut when run() returns.
    std::function<void()> wait_drained = [&] {
      if (s.drained() || net::clock::now() >= give_up) {
        io.stop();
        return;
      }
      poll.expires_after(std::chrono::milliseconds(20));
      poll.async_wait([&](const std::error_code& e) {
        if (!e) wait_drained();
      });
    };
    std::function<void(const std::error_code&, int)> on_signal =
        [&](const std::error_code& ec, int signal) {
          if (ec) return;
          const char* name = signal == SIGINT ? "SIGINT" : "SIGTERM";
          if (give_up != net::clock::time_point{}) {
            // A second signal: stop waiting for connections to drain.
            if (log) log(std::string("not waiting for connections (") + name + ")");
            give_up = net::clock::now();
            return;
          }
          if (log) log(std::string("shutting down (") + name + ")");
          s.stop();
          give_up = net::clock::now() + grace;
          signals.async_wait(on_signal);
          wait_drained();
        };
    signals.async_wait(on_signal);
    s.start();
    io.run();
  }
  // The signal_set restored the default actions; a signal arriving while the
  // server tears down must not turn this clean exit into death by signal.
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGTERM, SIG_IGN);
  if (log) log("stopped");
  return 0;
}

// ------------------------------------------------------------------ clients

struct command_loop::state : std::enable_shared_from_this<state> {
  state(asio::io_context& context, std::string name, handler line_handler,
        std::function<void()> end_handler)
      : io(context), program(std::move(name)), on_line(std::move(line_handler)),
        on_end(std::move(end_handler)) {}

  asio::io_context& io;
  const std::string program;
  const handler on_line;
  const std::function<void()> on_end;

  // Used on the io_context's thread only.
  std::deque<std::string> lines;  // read, not yet run
  std::uint64_t started = 0;      // lines run so far, to name a failing one
  bool busy = false;
  bool input_done = false;
  bool stopping = false;
  bool ended = false;
  bool failed = false;

  // Shared with the reader thread.
  std::mutex lock;
  bool attached = true;  // false once the command_loop is gone
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;

  bool is_attached() {
    std::lock_guard guard(lock);
    return attached;
  }

  // Posts `f` to the io_context unless the loop is gone; false if it is.
  template <class F>
  bool post(F&& f) {
    std::lock_guard guard(lock);
    if (!attached) return false;
    asio::post(io, std::forward<F>(f));
    return true;
  }

  void release_input() {
    std::lock_guard guard(lock);
    work.reset();
  }

  void receive(std::string line) {
    if (!is_attached() || ended) return;
    lines.push_back(std::move(line));
    pump();
  }

  void input_ended() {
    release_input();
    if (!is_attached()) return;
    input_done = true;
    pump();
  }

  void pump() {
    if (busy || ended) return;
    if (stopping || (input_done && lines.empty())) {
      end();
      return;
    }
    if (lines.empty()) return;
    busy = true;
    std::string line = std::move(lines.front());
    lines.pop_front();
    asio::co_spawn(io, on_line(std::move(line)),
                   [self = shared_from_this(), number = ++started](std::exception_ptr e) {
                     self->busy = false;
                     if (!self->is_attached()) return;
                     if (e) {
                       self->fail(number, e);
                     } else {
                       self->pump();
                     }
                   });
  }

  void fail(std::uint64_t number, const std::exception_ptr& e) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      what = x.what();
    } catch (...) {
    }
    complain(program, "input line " + std::to_string(number) + " failed: " + what +
                          "; no further input is read");
    failed = true;
    end();
  }

  void end() {
    if (ended) return;
    ended = true;
    lines.clear();
    release_input();
    if (on_end) on_end();
  }
};

command_loop::command_loop(asio::io_context& io, std::string program, handler on_line,
                           std::function<void()> on_end)
    : state_(std::make_shared<state>(io, std::move(program), std::move(on_line),
                                     std::move(on_end))) {}

command_loop::~command_loop() {
  // The reader thread and handlers already posted hold the state, but find
  // it detached; the work guard must go before the io_context does.
  std::lock_guard guard(state_->lock);
  state_->attached = false;
  state_->work.reset();
}

void command_loop::start(std::istream& in) {
  {
    std::lock_guard guard(state_->lock);
    state_->work.emplace(state_->io.get_executor());
  }
  // Detached: a read from a terminal cannot be interrupted, so the thread
  // may block until the process ends.
  std::thread([s = state_, &in] {
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!s->post([s, line = std::move(line)]() mutable { s->receive(std::move(line)); })) return;
    }
    s->post([s] { s->input_ended(); });
  }).detach();
}

void command_loop::start() { start(std::cin); }

void command_loop::stop() {
  state_->stopping = true;
  state_->lines.clear();
  // Later, so that on_end never runs inside the caller's stop().
  state_->post([s = state_] { s->pump(); });
}

bool command_loop::failed() const noexcept { return state_->failed; }

}  // namespace improto::cli

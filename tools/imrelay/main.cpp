// imrelay - interactive relay chat client (seed 003's client).
//
// Lines on stdin: `@bob text` (unicast), `@ALL text` (broadcast), `/who`,
// `/files`, `/get FILE [DIR]`, `/pause [ID]`, `/resume [ID]`, `/cancel [ID]`,
// `/transfers`, `/quit`. Received messages print as `alice: text`, one
// flushed line each, also when stdout is a pipe. Downloads run alongside
// the chat: a progress bar redrawn in place on a terminal, a plain
// `progress:` line a second when stdout is a pipe.

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <map>

#include "cli.hpp"
#include "improto/client/relay_client.hpp"

using namespace improto;

namespace {

constexpr std::string_view usage_hint =
    "usage: @NAME text | @ALL text | /who | /files | /get FILE [DIR] | /pause [ID] | "
    "/resume [ID] | /cancel [ID] | /transfers | /quit";

using steady = std::chrono::steady_clock;

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

struct download_view {
  client::download_progress p;
  steady::time_point started, last_drawn;
  std::uint64_t order = 0;  // /pause without an id takes the newest
  bool paused = false;
};

// Output shared by chat lines and progress: on a terminal one bar line,
// redrawn in place below the chat; on a pipe plain lines.
struct screen {
  bool tty = ::isatty(STDOUT_FILENO) == 1;
  bool bar_shown = false;
  std::map<std::uint32_t, download_view> downloads;
  std::uint64_t started = 0;

  void clear_bar() {
    if (bar_shown) std::fputs("\r\033[K", stdout);
    bar_shown = false;
  }
  void say(std::string_view line) {
    clear_bar();
    cli::print_line(line);
    draw();
  }
  static std::string describe(const download_view& d, bool bar) {
    const auto& p = d.p;
    double pct = p.size == 0 ? 100.0 : 100.0 * static_cast<double>(p.received) / static_cast<double>(p.size);
    double secs = std::chrono::duration<double>(steady::now() - d.started).count();
    double rate = secs > 0 ? static_cast<double>(p.received - p.start) / secs : 0;
    std::string eta = "?";
    if (rate > 0) eta = std::to_string(static_cast<std::uint64_t>(static_cast<double>(p.size - p.received) / rate)) + " s";
    char pc[16];
    std::snprintf(pc, sizeof pc, "%.0f%%", pct);
    std::string out;
    if (bar) {
      int filled = static_cast<int>(pct / 5);
      out = "[" + std::string(static_cast<std::size_t>(filled), '#') +
            std::string(static_cast<std::size_t>(20 - filled), ' ') + "] ";
    }
    out += p.file + " " + pc + " " + human_bytes(static_cast<double>(p.received)) + "/" +
           human_bytes(static_cast<double>(p.size)) + " " + human_bytes(rate) + "/s ETA " + eta;
    if (d.paused) out += " (paused)";
    return out;
  }
  void draw() {
    if (!tty || downloads.empty()) return;
    std::string line;
    for (auto& [id, d] : downloads) line += (line.empty() ? "" : " | ") + describe(d, downloads.size() == 1);
    std::fputs(("\r\033[K" + line).c_str(), stdout);
    std::fflush(stdout);
    bar_shown = true;
  }
  void progress(const client::download_progress& p) {
    auto now = steady::now();
    auto [it, fresh] = downloads.try_emplace(p.id);
    auto& d = it->second;
    d.p = p;
    if (fresh) {
      d.started = now;
      d.order = ++started;
      say("download " + std::to_string(p.id) + " " + p.file + ": " + std::to_string(p.size) +
          " bytes" + (p.start > 0 ? ", resuming at offset " + std::to_string(p.start) : ""));
      d.last_drawn = now;
      return;
    }
    auto gap = tty ? std::chrono::milliseconds(100) : std::chrono::milliseconds(1000);
    if (now - d.last_drawn < gap) return;
    d.last_drawn = now;
    if (tty) {
      draw();
    } else {
      cli::print_line("progress: " + describe(d, false));
    }
  }
  void done(std::uint32_t id) { downloads.erase(id); }
};

struct app {
  asio::io_context& io;
  std::shared_ptr<client::relay_client> client;
  cli::command_loop* input = nullptr;
  int exit_code = 0;
  screen out;
  double rate_limit = 0;

  // The download an optional ID names, else the only (or newest) one.
  std::optional<std::uint32_t> pick(std::string_view arg, std::string_view verb) {
    if (!arg.empty()) {
      std::uint32_t id = 0;
      for (char c : arg) {
        if (c < '0' || c > '9' || id > 429496729u) {
          out.say("! " + std::string(verb) + ": '" + std::string(arg) + "' is not a transfer id");
          return std::nullopt;
        }
        id = id * 10 + static_cast<std::uint32_t>(c - '0');
      }
      return id;
    }
    if (out.downloads.empty()) {
      out.say("! " + std::string(verb) + ": no download running");
      return std::nullopt;
    }
    auto newest = out.downloads.begin();
    for (auto it = out.downloads.begin(); it != out.downloads.end(); ++it) {
      if (it->second.order > newest->second.order) newest = it;
    }
    return newest->first;
  }

  asio::awaitable<void> get(std::string name, std::filesystem::path dir) {
    auto c = client;
    auto ids = std::make_shared<std::vector<std::uint32_t>>();  // a restart gets a new id
    std::function<void(const client::download_progress&)> on_progress =
        [this, ids](const client::download_progress& p) {
          if (ids->empty() || ids->back() != p.id) ids->push_back(p.id);
          out.progress(p);
        };
    // Built outside the co_await: g++ 12 mishandles temporaries inside it.
    auto op = c->download(name, dir, on_progress, client::download_options{rate_limit});
    auto got = co_await std::move(op);
    for (auto id : *ids) out.done(id);
    if (!got) {
      out.say("! download of " + name + " failed: " + got.error().message());
      co_return;
    }
    std::string last = got->last_offset
                           ? "last byte at offset " + std::to_string(*got->last_offset) + " (0x" +
                                 [&] {
                                   char b[4];
                                   std::snprintf(b, sizeof b, "%02x", got->last_byte);
                                   return std::string(b);
                                 }() + ")"
                           : "empty file, no last byte";
    out.say("downloaded " + got->file + ": " + std::to_string(got->size) + " bytes, sha256 " +
            got->sha256 + ", " + last + " -> " + got->path.string());
  }

  asio::awaitable<void> run(std::string line) {
    if (line.empty()) co_return;
    if (line == "/quit") {
      input->stop();
      co_return;
    }
    auto verb = line.substr(0, line.find(' '));
    std::string arg = verb.size() < line.size() ? line.substr(verb.size() + 1) : "";
    while (!arg.empty() && arg.back() == ' ') arg.pop_back();
    while (!arg.empty() && arg.front() == ' ') arg.erase(0, 1);
    if (verb == "/get") {
      if (arg.empty()) {
        out.say("! usage: /get FILE [DIR]");
        co_return;
      }
      // File names may hold spaces: the last word is the directory only when
      // it names an existing one.
      std::filesystem::path dir = ".";
      if (auto sp = arg.rfind(' '); sp != std::string::npos) {
        std::error_code ec;
        std::string tail = arg.substr(sp + 1);
        if (std::filesystem::is_directory(tail, ec)) {
          dir = tail;
          arg.resize(sp);
          while (!arg.empty() && arg.back() == ' ') arg.pop_back();
        }
      }
      // In the background: chat and other commands go on meanwhile.
      asio::co_spawn(io, get(arg, dir), asio::detached);
      co_return;
    }
    if (verb == "/pause" || verb == "/resume" || verb == "/cancel") {
      auto id = pick(arg, verb);
      if (!id) co_return;
      auto c = client;
      result<void> r;
      if (verb == "/pause") {
        r = co_await c->pause(*id);
      } else if (verb == "/resume") {
        r = co_await c->resume(*id);
      } else {
        r = co_await c->cancel(*id);
      }
      if (!r) {
        const auto& e = r.error();
        out.say("! " + verb.substr(1) + " " + std::to_string(*id) + " failed: " +
                (e == errc::rejected ? e.detail() : e.message()));
        co_return;
      }
      if (auto it = out.downloads.find(*id); it != out.downloads.end()) {
        it->second.paused = verb == "/pause";
      }
      out.say(verb == "/pause" ? "paused " + std::to_string(*id)
              : verb == "/resume" ? "resumed " + std::to_string(*id)
                                  : "cancelled " + std::to_string(*id));
      co_return;
    }
    if (line == "/transfers") {
      if (out.downloads.empty()) {
        out.say("transfers: none");
      } else {
        for (auto& [id, d] : out.downloads) {
          out.say("transfer " + std::to_string(id) + ": " + screen::describe(d, false));
        }
      }
      co_return;
    }
    if (line == "/who") {
      auto users = co_await client->users();
      if (!users) {
        out.say("! /who failed: " + users.error().message());
      } else {
        std::string text = "online:";
        for (auto& u : *users) text += " " + u;
        out.say(users->empty() ? "online: nobody" : text);
      }
      co_return;
    }
    if (line == "/files") {
      auto files = co_await client->files();
      if (!files) {
        out.say("! /files failed: " + files.error().message());
      } else if (files->empty()) {
        out.say("files: none");
      } else {
        for (auto& [size, name] : *files) out.say("file: " + name + " (" + std::to_string(size) + " bytes)");
      }
      co_return;
    }
    if (line.size() < 2 || line[0] != '@') {
      out.say(std::string("! ") + std::string(usage_hint));
      co_return;
    }
    auto space = line.find(' ');
    std::string to = line.substr(1, space == std::string::npos ? std::string::npos : space - 1);
    std::string text = space == std::string::npos ? "" : line.substr(space + 1);
    if (to.empty() || text.empty()) {
      out.say(std::string("! ") + std::string(usage_hint));
      co_return;
    }
    auto sent = co_await client->send(to, text);
    if (sent) {
      out.say("delivered to " + to);
    } else {
      const auto& e = sent.error();
      out.say("! not delivered to " + to + ": " + (e == errc::rejected ? e.detail() : e.message()));
    }
  }

  void finish() {
    out.clear_bar();
    if (client) client->close();
    io.stop();
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string name, host;
  std::uint16_t port = 50000;
  bool quiet_presence = false;
  double rate_limit = 0;
  cli::parser args("imrelay", "NAME HOST [--port PORT]",
                   "Relay chat client (seed 003). Registers NAME on the server at HOST, then\n"
                   "reads lines from stdin: '@bob text' sends to bob, '@ALL text' to everyone,\n"
                   "'/who' lists online users, '/files' the server's files, '/quit' leaves.\n"
                   "'/get FILE [DIR]' downloads FILE into DIR (default .) in the background,\n"
                   "resuming FILE.part if one is left; '/pause [ID]', '/resume [ID]',\n"
                   "'/cancel [ID]' act on a download (default: the newest), '/transfers'\n"
                   "lists them. Received messages print as 'alice: text'; presence as\n"
                   "'* bob joined'.");
  args.positional("NAME", "user name: letters and digits, at most 32, not ALL", name, true)
      .positional("HOST", "server address, e.g. 127.0.0.1 or localhost", host, true)
      .option("port", "PORT", "server port (default 50000)", port, false)
      .flag("no-presence", "do not ask for join/leave notices", quiet_presence)
      .option("limit-rate", "BYTES", "download at most BYTES per second (default: no limit)",
              rate_limit);
  if (auto code = args.parse(argc, argv)) return *code;
  if (rate_limit < 0) return args.usage_error("--limit-rate: expected 0 or more bytes per second");

  asio::io_context io(1);
  app state{io, nullptr, nullptr, 0, {}, rate_limit};
  // One request at a time keeps the printed answers in the typed order.
  cli::command_loop input(
      io, args.program(), [&](std::string line) { return state.run(std::move(line)); },
      [&] { state.finish(); });
  state.input = &input;
  client::relay_events events;
  events.on_message = [&](std::string_view from, std::string_view body) {
    state.out.say(std::string(from) + ": " + std::string(body));
  };
  events.on_presence = [&](std::string_view user, bool joined) {
    state.out.say("* " + std::string(user) + (joined ? " joined" : " left"));
  };
  events.on_closed = [&](const error& why) {
    state.out.clear_bar();
    for (auto& [id, d] : state.out.downloads) {
      cli::print_line("! download of " + d.p.file + " interrupted at " +
                      std::to_string(d.p.received) + " of " + std::to_string(d.p.size) +
                      " bytes (" + d.p.file + ".part kept; /get it again to resume)");
    }
    cli::complain(args.program(), "connection to the server lost: " + why.message());
    state.exit_code = 1;
    io.stop();
  };

  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    auto connected = co_await client::relay_client::connect(host, port, name, events);
    if (!connected) {
      const auto& e = connected.error();
      std::string why = e.message();
      if (e == errc::name_taken) why = "the name '" + name + "' is already taken on this server";
      if (e == errc::invalid_name) why = "'" + name + "' is not a valid name (letters and digits, at most 32, not ALL)";
      cli::complain(args.program(), why);
      state.exit_code = 1;
      io.stop();
      co_return;
    }
    state.client = *connected;
    if (!quiet_presence) {
      // Older servers may not know SUBSCRIBE; chatting works without it.
      (void)co_await state.client->subscribe_presence();
    }
    state.out.say("connected as " + name + " (" + std::string(usage_hint) + ")");
    input.start();
  }, asio::detached);
  io.run();
  return input.failed() ? 1 : state.exit_code;
}

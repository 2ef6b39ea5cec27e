// imrelay - interactive relay chat client (seed 003's client).
//
// Lines on stdin: `@bob text` (unicast), `@ALL text` (broadcast), `/who`,
// `/files`, `/quit`. Received messages print as `alice: text`, one flushed
// line each, also when stdout is a pipe.

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "cli.hpp"
#include "improto/client/relay_client.hpp"

using namespace improto;

namespace {

constexpr std::string_view usage_hint = "usage: @NAME text | @ALL text | /who | /files | /quit";

struct app {
  asio::io_context& io;
  std::shared_ptr<client::relay_client> client;
  cli::command_loop* input = nullptr;
  int exit_code = 0;

  asio::awaitable<void> run(std::string line) {
    if (line.empty()) co_return;
    if (line == "/quit") {
      input->stop();
      co_return;
    }
    if (line == "/who") {
      auto users = co_await client->users();
      if (!users) {
        cli::print_line("! /who failed: " + users.error().message());
      } else {
        std::string text = "online:";
        for (auto& u : *users) text += " " + u;
        cli::print_line(users->empty() ? "online: nobody" : text);
      }
      co_return;
    }
    if (line == "/files") {
      auto files = co_await client->files();
      if (!files) {
        cli::print_line("! /files failed: " + files.error().message());
      } else if (files->empty()) {
        cli::print_line("files: none");
      } else {
        for (auto& [size, name] : *files) cli::print_line("file: " + name + " (" + std::to_string(size) + " bytes)");
      }
      co_return;
    }
    if (line.size() < 2 || line[0] != '@') {
      cli::print_line(std::string("! ") + std::string(usage_hint));
      co_return;
    }
    auto space = line.find(' ');
    std::string to = line.substr(1, space == std::string::npos ? std::string::npos : space - 1);
    std::string text = space == std::string::npos ? "" : line.substr(space + 1);
    if (to.empty() || text.empty()) {
      cli::print_line(std::string("! ") + std::string(usage_hint));
      co_return;
    }
    auto sent = co_await client->send(to, text);
    if (sent) {
      cli::print_line("delivered to " + to);
    } else {
      const auto& e = sent.error();
      cli::print_line("! not delivered to " + to + ": " + (e == errc::rejected ? e.detail() : e.message()));
    }
  }

  void finish() {
    if (client) client->close();
    io.stop();
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string name, host;
  std::uint16_t port = 50000;
  bool quiet_presence = false;
  cli::parser args("imrelay", "NAME HOST [--port PORT]",
                   "Relay chat client (seed 003). Registers NAME on the server at HOST, then\n"
                   "reads lines from stdin: '@bob text' sends to bob, '@ALL text' to everyone,\n"
                   "'/who' lists online users, '/files' the server's files, '/quit' leaves.\n"
                   "Received messages print as 'alice: text'; presence as '* bob joined'.");
  args.positional("NAME", "user name: letters and digits, at most 32, not ALL", name, true)
      .positional("HOST", "server address, e.g. 127.0.0.1 or localhost", host, true)
      .option("port", "PORT", "server port (default 50000)", port, false)
      .flag("no-presence", "do not ask for join/leave notices", quiet_presence);
  if (auto code = args.parse(argc, argv)) return *code;

  asio::io_context io(1);
  app state{io, nullptr, nullptr, 0};
  // One request at a time keeps the printed answers in the typed order.
  cli::command_loop input(
      io, args.program(), [&](std::string line) { return state.run(std::move(line)); },
      [&] { state.finish(); });
  state.input = &input;
  client::relay_events events;
  events.on_message = [](std::string_view from, std::string_view body) {
    cli::print_line(std::string(from) + ": " + std::string(body));
  };
  events.on_presence = [](std::string_view user, bool joined) {
    cli::print_line("* " + std::string(user) + (joined ? " joined" : " left"));
  };
  events.on_closed = [&](const error& why) {
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
    cli::print_line("connected as " + name + " (" + std::string(usage_hint) + ")");
    input.start();
  }, asio::detached);
  io.run();
  return input.failed() ? 1 : state.exit_code;
}

// impeer - the instant messenger peer of seeds 000 and 004 (protocol 1).
//
// listen: registers NAME at the local address of its TCP connection to the
//   registry, binds its UDP socket to that same ip:port and prints each
//   datagram `sender: text` on its own flushed line. SIGINT, SIGTERM or a
//   `logout` / `exit` line on stdin log it out of the registry and end it;
//   the end of stdin does not (it may run with stdin closed).
// send: reads commands from stdin (see --help) and sends datagrams
//   `NAME: text` to the peers the registry lists.

// Project headers first: Asio picks its allocator (aligned_alloc or not)
// from macros the standard library defines, and every translation unit
// must see the same choice.
#include "cli.hpp"
#include "improto/client/registry_client.hpp"
#include "improto/net/udp.hpp"
#include "improto/registry/decoder.hpp"
#include "improto/registry/messages.hpp"
#include "improto/wire/text.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <asio/signal_set.hpp>
#include <csignal>
#include <optional>

using namespace improto;

namespace {

constexpr std::string_view program = "impeer";
constexpr std::string_view commands_hint =
    "commands: list | unicast NAME \"text\" | multicast [NAME, NAME] \"text\" | "
    "broadcast \"text\" | logout | exit";

void complain(std::string_view message) { cli::complain(program, message); }

// What to tell a user about a failed request to the registry.
std::string server_problem(const error& e, const std::string& server) {
  // Connection errors name the address already.
  if (e.detail().find(server) != std::string::npos) return e.detail();
  return "the registry at " + server + ": " + e.message();
}

// `"text"` -> text; unquoted text is taken as it is.
std::string unquote(std::string_view text) {
  text = wire::trim(text);
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
    text = text.substr(1, text.size() - 2);
  }
  return std::string(text);
}

// ------------------------------------------------------------------ listen

struct listener_app {
  asio::io_context& io;
  client::registry_client& registry;
  std::string name;
  std::string server;
  std::optional<registry::entry> me;
  std::optional<net::udp_socket> udp;
  bool leaving = false;
  int exit_code = 0;

  asio::awaitable<void> run() {
    auto registered = co_await registry.register_here(name);
    if (!registered) {
      const auto& e = registered.error();
      if (e == errc::name_taken) {
        complain("the name '" + name + "' is already registered on " + server);
      } else if (e == errc::invalid_name) {
        complain("the registry refused the name '" + name + "': " + e.detail());
      } else {
        complain(server_problem(e, server));
      }
      exit_code = 1;
      io.stop();
      co_return;
    }
    me = *registered;
    // Like the seed: done with TCP, then UDP on the address just registered.
    registry.close();
    auto bound = net::udp_socket::bind(io, me->host, me->port);
    if (!bound) {
      complain("cannot receive on " + registry::to_string(*me) + ": " + bound.error().message());
      exit_code = 1;
      leave();
      co_return;
    }
    udp.emplace(std::move(*bound));
    // The log line tests and users wait for: from here on datagrams arrive.
    complain("registered " + registry::to_string(*me) + " on " + server +
             "; receiving messages ('logout' or Ctrl-C to leave)");
    asio::co_spawn(io, udp->serve([](std::string_view payload, const asio::ip::udp::endpoint& from,
                                     net::udp_replies&) {
                     if (auto m = registry::parse_peer_message(payload); m) {
                       cli::print_line(payload);
                     } else {
                       complain("ignored a datagram from " + net::to_string(from) + ": " +
                                m.error().message());
                     }
                   }),
                   asio::detached);
  }

  asio::awaitable<void> on_line(std::string line) {
    auto word = wire::trim(line);
    if (word == "logout" || word == "exit") {
      leave();
    } else if (!word.empty()) {
      complain("listen mode understands only 'logout' and 'exit'");
    }
    co_return;
  }

  // Logs out (so the list stays true), then stops.
  void leave() {
    if (leaving) return;
    leaving = true;
    if (udp) udp->close();
    if (!me) {
      io.stop();
      return;
    }
    asio::co_spawn(io, [this]() -> asio::awaitable<void> {
      auto out = co_await registry.logout(me->user, me->host, me->port);
      if (out) {
        complain("logged out " + registry::to_string(*me));
      } else if (out.error() == errc::not_found) {
        complain(registry::to_string(*me) + " was logged out already");
      } else {
        complain("could not log out " + registry::to_string(*me) + ": " +
                 server_problem(out.error(), server));
        exit_code = 1;
      }
      io.stop();
    }, asio::detached);
  }
};

// -------------------------------------------------------------------- send

struct sender_app {
  asio::io_context& io;
  client::registry_client& registry;
  std::string name;
  std::string server;
  asio::ip::udp::socket v4, v6;  // opened on first use
  cli::command_loop* input = nullptr;
  int exit_code = 0;

  sender_app(asio::io_context& context, client::registry_client& reg, std::string n, std::string s)
      : io(context), registry(reg), name(std::move(n)), server(std::move(s)), v4(context), v6(context) {}

  void finish() {
    registry.close();
    io.stop();
  }

  // The registry's list, or nullopt after saying why there is none.
  asio::awaitable<std::optional<std::vector<registry::entry>>> users() {
    auto got = co_await registry.list();
    if (!got) {
      complain(server_problem(got.error(), server));
      exit_code = 1;
      co_return std::nullopt;
    }
    co_return std::move(*got);
  }

  asio::awaitable<void> run(std::string line) {
    std::string_view text = wire::trim(line);
    if (text.empty()) co_return;
    auto [command, rest] = wire::split_first(text);
    if (command == "exit") {
      input->stop();
    } else if (command == "list") {
      auto all = co_await users();
      if (!all) co_return;
      if (all->empty()) {
        cli::print_line("There are no online users.");
        co_return;
      }
      cli::print_line("The online users are:");
      for (const auto& e : *all) cli::print_line(e.user);
    } else if (command == "unicast") {
      auto [to, message] = wire::split_first(rest);
      if (to.empty() || message.empty()) {
        cli::print_line("usage: unicast NAME \"text\"");
        co_return;
      }
      auto datagram = make_datagram(message);
      if (!datagram) co_return;
      auto all = co_await users();
      if (!all) co_return;
      send_to_named(*all, std::string(to), *datagram);
    } else if (command == "multicast") {
      auto close = rest.find(']');
      if (rest.empty() || rest.front() != '[' || close == std::string_view::npos) {
        cli::print_line("usage: multicast [NAME, NAME] \"text\"");
        co_return;
      }
      std::vector<std::string> names;
      std::string_view list = rest.substr(1, close - 1);
      while (!list.empty()) {
        auto comma = list.find(',');
        auto item = wire::trim(list.substr(0, comma));
        bool seen = false;
        for (const auto& n : names) seen = seen || n == item;
        if (!item.empty() && !seen) names.emplace_back(item);
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
      std::string_view message = wire::trim(rest.substr(close + 1));
      if (names.empty()) {
        cli::print_line("please name at least one user in [ ]");
        co_return;
      }
      if (message.empty()) {
        cli::print_line("usage: multicast [NAME, NAME] \"text\"");
        co_return;
      }
      auto datagram = make_datagram(message);
      if (!datagram) co_return;
      auto all = co_await users();
      if (!all) co_return;
      for (const auto& n : names) send_to_named(*all, n, *datagram);
    } else if (command == "broadcast") {
      if (rest.empty()) {
        cli::print_line("usage: broadcast \"text\"");
        co_return;
      }
      auto datagram = make_datagram(rest);
      if (!datagram) co_return;
      auto all = co_await users();
      if (!all) co_return;
      bool anyone = false;
      for (const auto& e : *all) {
        if (e.user == name) continue;  // not to ourselves
        anyone = true;
        send_datagram(e, *datagram);
      }
      if (!anyone) cli::print_line("There are no other online users.");
    } else if (command == "logout") {
      // Send mode is not registered itself; `logout` ends the registration
      // NAME holds (a listen-mode peer of the same name), then leaves.
      auto all = co_await users();
      if (!all) co_return;
      const registry::entry* mine = nullptr;
      for (const auto& e : *all) {
        if (e.user == name) mine = &e;
      }
      if (mine == nullptr) {
        cli::print_line(name + " is not registered");
      } else {
        auto out = co_await registry.logout(mine->user, mine->host, mine->port);
        if (out) {
          cli::print_line(name + " is logged out");
        } else if (out.error() == errc::not_found) {
          cli::print_line(name + " is not registered");
        } else {
          complain(server_problem(out.error(), server));
          exit_code = 1;
        }
      }
      input->stop();
    } else {
      cli::print_line("Invalid command! " + std::string(commands_hint));
    }
  }

  std::optional<std::string> make_datagram(std::string_view message) {
    std::string out;
    auto ok = registry::serialize(registry::peer_message{name, unquote(message)}, out);
    if (!ok) {
      cli::print_line("message not sent: " + ok.error().message());
      return std::nullopt;
    }
    return out;
  }

  void send_to_named(const std::vector<registry::entry>& all, const std::string& to,
                     const std::string& datagram) {
    for (const auto& e : all) {
      if (e.user == to) {
        send_datagram(e, datagram);
        return;
      }
    }
    cli::print_line("user " + to + " is not found");
  }

  void send_datagram(const registry::entry& to, const std::string& datagram) {
    auto target = resolve(to);
    if (!target) {
      cli::print_line("message not sent to " + to.user + ": " + target.error().message());
      return;
    }
    auto& socket = target->address().is_v6() ? v6 : v4;
    std::error_code ec;
    if (!socket.is_open()) socket.open(target->protocol(), ec);
    // A blocking send: a burst of datagrams waits for buffer space instead
    // of being dropped.
    if (!ec) socket.send_to(asio::buffer(datagram), *target, 0, ec);
    if (ec) {
      cli::print_line("message not sent to " + to.user + ": " + ec.message());
      return;
    }
    cli::print_line("message is sent to " + to.user);
  }

  result<asio::ip::udp::endpoint> resolve(const registry::entry& e) {
    if (auto address = net::parse_address(e.host)) return asio::ip::udp::endpoint(*address, e.port);
    asio::ip::udp::resolver resolver(io);
    std::error_code ec;
    auto found = resolver.resolve(e.host, std::to_string(e.port), ec);
    if (ec || found.empty()) {
      return fail(errc::invalid_argument, "cannot resolve '" + e.host + "'");
    }
    return found.begin()->endpoint();
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string name, address, mode;
  double timeout = 5;
  cli::parser args(
      "impeer", "NAME HOST:PORT listen|send [--timeout SECONDS]",
      "Instant messenger peer (seeds 000, 004) for the registry at HOST:PORT.\n"
      "\n"
      "listen: registers NAME@IP:PORT, where IP:PORT is the local address of its\n"
      "  TCP connection to the registry, then receives UDP datagrams on that same\n"
      "  IP:PORT and prints each as one line 'sender: text'. SIGINT, SIGTERM or a\n"
      "  line 'logout' or 'exit' on stdin logs NAME out and ends it (the end of\n"
      "  stdin does not).\n"
      "send: reads commands from stdin, one per line, and sends datagrams\n"
      "  'NAME: text' to the peers the registry lists:\n"
      "    list                          print the names of the online users\n"
      "    unicast NAME \"text\"           send to one user\n"
      "    multicast [NAME, NAME] \"text\" send to each named user\n"
      "    broadcast \"text\"              send to every registered user but NAME\n"
      "    logout                        log NAME's listen-mode registration out, then end\n"
      "    exit                          end (so does the end of stdin)");
  args.positional("NAME", "your user name: no ':', '@', ',', blanks or control characters", name,
                  true)
      .positional("HOST:PORT", "the registry server, e.g. 127.0.0.1:65432", address, true)
      .positional("MODE", "listen or send", mode, true)
      .option("timeout", "SECONDS", "give up on the registry after this long (default 5)", timeout)
      .epilog("Exit status: 0 on success; 1 when the registry cannot be reached or refuses\n"
              "(e.g. the name is taken); 2 on bad arguments.");
  if (auto code = args.parse(argc, argv)) return *code;

  if (auto ok = registry::check_user(name); !ok) {
    return args.usage_error("NAME: '" + wire::escape(name) + "' is not a valid name: " +
                            ok.error().detail());
  }
  auto server = net::parse_host_port(address);
  if (!server) return args.usage_error("HOST:PORT: " + server.error().detail());
  if (server->port == 0) return args.usage_error("HOST:PORT: port 0 is not a server's port");
  if (mode != "listen" && mode != "send") {
    return args.usage_error("MODE: '" + wire::escape(mode) + "' is not listen or send");
  }
  if (timeout <= 0) return args.usage_error("--timeout: must be more than 0");

  client::registry_options options;
  options.connect_timeout = cli::seconds(timeout);
  options.reply_timeout = cli::seconds(timeout);
  asio::io_context io(1);
  client::registry_client registry(server->host, server->port, options);
  std::string where = net::to_string(
      asio::ip::tcp::endpoint(*net::parse_address(server->host), server->port));

  if (mode == "listen") {
    listener_app app{io, registry, name, where, std::nullopt, std::nullopt, false, 0};
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const std::error_code& ec, int) {
      if (!ec) app.leave();
    });
    // The end of stdin does not end listen mode (it may run with stdin
    // closed); a command that failed does.
    cli::command_loop input(
        io, args.program(), [&](std::string line) { return app.on_line(std::move(line)); },
        [&] {
          if (input.failed()) app.leave();
        });
    asio::co_spawn(io, app.run(), asio::detached);
    input.start();
    io.run();
    return input.failed() ? 1 : app.exit_code;
  }

  sender_app app(io, registry, name, where);
  // One command at a time keeps the output in the typed order.
  cli::command_loop input(
      io, args.program(), [&](std::string line) { return app.run(std::move(line)); },
      [&] { app.finish(); });
  app.input = &input;
  input.start();
  io.run();
  return input.failed() ? 1 : app.exit_code;
}

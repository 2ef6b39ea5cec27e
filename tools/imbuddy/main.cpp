// imbuddy - the menu client of seed 002: register, login, buddies, status,
// and direct chats with buddies.
//
// Input is line-oriented so that it reads the same from a terminal or a
// pipe: a command letter (or word) and its argument on one line, `a bob`,
// or the letter alone and the argument on the next line. While a chat is
// open every line goes to the buddy and `q` ends the chat. Output: one
// flushed line per event; received chat lines as `bob: text`, notices
// after `* `, failures after `! `.

// A standard header before Asio's: Asio picks its aligned allocator from
// libstdc++'s config macros, and every file must pick the same one.
#include <csignal>
#include <optional>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include "cli.hpp"
#include "improto/client/buddy_client.hpp"
#include "improto/wire/text.hpp"

using namespace improto;

namespace {

constexpr std::string_view menu =
    "commands (a letter or the word, then the argument on the same or the next line):\n"
    "  r USERID   register USERID with the server and use it\n"
    "  l USERID   login: use USERID without registering it\n"
    "  a BUDDY    add BUDDY to your buddy list\n"
    "  d BUDDY    delete BUDDY from your buddy list\n"
    "  o          go online: buddies may chat with you (refreshed while online)\n"
    "  f          go offline\n"
    "  s          show your buddies and their status\n"
    "  c BUDDY    chat with BUDDY: every line goes to BUDDY, q ends the chat\n"
    "  h          this help\n"
    "  x          go offline and quit (also at the end of input)";

// Command letter for a typed word, 0 if none.
char command_of(std::string_view word) {
  struct alias {
    std::string_view word;
    char letter;
  };
  static constexpr alias aliases[] = {
      {"r", 'r'},      {"register", 'r'}, {"l", 'l'},       {"login", 'l'},  {"a", 'a'},
      {"add", 'a'},    {"d", 'd'},        {"del", 'd'},     {"delete", 'd'}, {"o", 'o'},
      {"online", 'o'}, {"f", 'f'},        {"offline", 'f'}, {"s", 's'},      {"show", 's'},
      {"c", 'c'},      {"chat", 'c'},     {"h", 'h'},       {"help", 'h'},   {"?", 'h'},
      {"x", 'x'},      {"exit", 'x'},     {"quit", 'x'},
  };
  for (const auto& a : aliases) {
    if (wire::iequals(word, a.word)) return a.letter;
  }
  return 0;
}

bool needs_argument(char cmd) { return cmd == 'r' || cmd == 'l' || cmd == 'a' || cmd == 'd' || cmd == 'c'; }

std::string_view prompt_for(char cmd) {
  switch (cmd) {
    case 'r':
      return "userid to register?";
    case 'l':
      return "userid to use?";
    case 'a':
      return "buddy to add?";
    case 'd':
      return "buddy to delete?";
    default:
      return "buddy to chat with?";
  }
}

void say(std::string_view line) { cli::print_line(line); }

struct app {
  app(asio::io_context& context, client::buddy_options options, std::chrono::milliseconds every)
      : io(context), client(context.get_executor(), std::move(options)), refresh(context),
        refresh_every(every) {}

  asio::io_context& io;
  client::buddy_client client;
  std::shared_ptr<client::chat_listener> listener;
  std::uint16_t chat_port = 0;
  std::string user;
  bool online = false;
  asio::steady_timer refresh;
  std::chrono::milliseconds refresh_every;
  std::shared_ptr<client::chat> chat;  // the open chat, either direction
  cli::command_loop* input = nullptr;
  std::optional<char> awaiting;        // a command waiting for its argument line
  bool quitting = false;
  int exit_code = 0;

  void failed(std::string_view what) {
    say("! " + std::string(what));
    exit_code = 1;
  }

  bool in_chat() const { return chat && chat->is_open(); }

  void chat_line(const std::string& line) {
    if (line == "q") {
      chat->quit();
      return;
    }
    if (auto sent = chat->send(line); !sent) failed("not sent: " + sent.error().message());
  }

  // The loop runs one line at a time, so a line is read as chat text or as
  // a command only once the commands before it are done (`c bob` then
  // `hello` sends hello to bob).
  asio::awaitable<void> run(std::string line) {
    if (in_chat()) {
      chat_line(line);
      co_return;
    }
    char cmd = 0;
    std::string arg;
    if (awaiting) {
      cmd = *awaiting;
      awaiting.reset();
      arg = std::string(wire::trim(line));
      if (arg.empty()) {
        say("* " + std::string(1, cmd) + " cancelled");
        co_return;
      }
    } else {
      auto [word, rest] = wire::split_first(wire::trim(line));
      if (word.empty()) co_return;
      if (word == "q") {
        say("* no chat in progress (x quits)");
        co_return;
      }
      cmd = command_of(word);
      if (cmd == 0) {
        failed("unknown command '" + wire::escape(word) + "' (h for help)");
        co_return;
      }
      arg = std::string(wire::trim(rest));
      if (needs_argument(cmd) && arg.empty()) {
        awaiting = cmd;
        say(prompt_for(cmd));
        co_return;
      }
    }
    if (!needs_argument(cmd) && !arg.empty()) {
      failed("'" + std::string(1, cmd) + "' takes no argument (h for help)");
      co_return;
    }
    if (needs_argument(cmd) && arg.find_first_of(" \t") != std::string::npos) {
      failed("one userid, please: '" + wire::escape(arg) + "'");
      co_return;
    }
    co_await command(cmd, arg);
  }

  bool need_user() {
    if (!user.empty()) return true;
    failed("log in first: 'r USERID' registers an id, 'l USERID' uses an existing one");
    return false;
  }

  asio::awaitable<void> command(char cmd, const std::string& arg) {
    switch (cmd) {
      case 'r': {
        auto done = co_await client.register_user(arg);
        if (!done) {
          failed("cannot register " + arg + ": " + done.error().message());
        } else {
          say("registered " + arg);
          switch_user(arg);
        }
        break;
      }
      case 'l':
        if (!buddy::valid_user(arg)) {
          failed("'" + wire::escape(arg) + "' is not 1 to 32 characters of A-Z a-z 0-9 _ . -");
        } else {
          switch_user(arg);
        }
        break;
      case 'a':
      case 'd': {
        if (!need_user()) break;
        result<void> done;
        if (cmd == 'a') {
          done = co_await client.add_buddy(user, arg);
        } else {
          done = co_await client.delete_buddy(user, arg);
        }
        std::string verb = cmd == 'a' ? "add" : "delete";
        if (!done) {
          failed("cannot " + verb + " " + arg + ": " + done.error().message());
        } else {
          say(verb + (cmd == 'a' ? "ed " : "d ") + arg);
        }
        break;
      }
      case 'o':
        if (!need_user()) break;
        if (auto sent = client.set_status(user, buddy::presence::online, chat_port); !sent) {
          failed("cannot go online: " + sent.error().message());
          break;
        }
        if (!online) arm_refresh();
        online = true;
        say("online as " + user + ", chats on port " + std::to_string(chat_port));
        break;
      case 'f':
        if (!need_user()) break;
        go_offline();
        say("offline");
        break;
      case 's':
        if (!need_user()) break;
        co_await show();
        break;
      case 'c':
        if (!need_user()) break;
        co_await call(arg);
        break;
      case 'h':
        say(menu);
        break;
      default:
        quit();
        break;
    }
  }

  void switch_user(const std::string& id) {
    if (id == user) {
      say("you are " + user);
      return;
    }
    if (online) go_offline();
    user = id;
    say("you are " + user);
  }

  void go_offline() {
    refresh.cancel();
    if (!user.empty() && online) {
      (void)client.set_status(user, buddy::presence::offline, chat_port);
    }
    online = false;
  }

  // UDP may drop a SET, and the server forgets an ONLINE after its TTL.
  void arm_refresh() {
    refresh.expires_after(refresh_every);
    refresh.async_wait([this](std::error_code ec) {
      if (ec || !online || quitting) return;
      (void)client.set_status(user, buddy::presence::online, chat_port);
      arm_refresh();
    });
  }

  asio::awaitable<void> show() {
    auto list = co_await client.get_buddies(user);
    if (!list) {
      failed("cannot show buddies: " + list.error().message());
      co_return;
    }
    if (list->empty()) say("no buddies");
    for (const auto& b : *list) {
      if (b.status == buddy::presence::online) {
        say("buddy " + b.user + " online " + b.ip + " " + std::to_string(b.port));
      } else {
        say("buddy " + b.user + " offline");
      }
    }
  }

  asio::awaitable<void> call(const std::string& who) {
    if (in_chat()) {
      failed("already chatting with " + chat->buddy());
      co_return;
    }
    auto list = co_await client.get_buddies(user);
    if (!list) {
      failed("cannot look " + who + " up: " + list.error().message());
      co_return;
    }
    const buddy::buddy_entry* entry = nullptr;
    for (const auto& b : *list) {
      if (b.user == who) entry = &b;
    }
    if (!entry) {
      failed(who + " is not on your buddy list (a " + who + " adds them)");
      co_return;
    }
    if (entry->status != buddy::presence::online) {
      failed(who + " is offline");
      co_return;
    }
    // A named local: g++ 12 destroys temporaries in a co_await expression twice.
    client::chat_events handlers = events();
    auto c = co_await client::chat::call(entry->ip, entry->port, user, who, handlers);
    if (!c) {
      failed("cannot reach " + who + ": " + c.error().message());
      co_return;
    }
    if (!listener->occupy(*c)) {
      // Someone called us while we were dialling.
      (*c)->quit();
      failed("not calling " + who + ": already chatting with " + chat->buddy());
      co_return;
    }
    chat = *c;
    say("* chatting with " + who + "; every line goes to " + who + ", q ends the chat");
  }

  client::chat_events events() {
    client::chat_events ev;
    ev.on_open = [this](std::string_view buddy_id) {
      chat = listener->current();
      say("* " + std::string(buddy_id) + " started a chat; every line goes to " +
          std::string(buddy_id) + ", q ends the chat");
    };
    ev.on_line = [](std::string_view buddy_id, std::string_view text) {
      say(std::string(buddy_id) + ": " + std::string(text));
    };
    ev.on_end = [this](std::string_view buddy_id, std::string_view why) {
      say("* chat with " + std::string(buddy_id) + " ended: " + std::string(why));
      if (chat && !chat->is_open()) chat.reset();
    };
    return ev;
  }

  void quit() {
    if (quitting) return;
    quitting = true;
    input->stop();  // lines typed after the quit are not run
    go_offline();
    if (listener) listener->close();  // ends the open chat with q
    // Lets the q leave before the loop stops.
    refresh.expires_after(std::chrono::milliseconds(100));
    refresh.async_wait([this](std::error_code) { io.stop(); });
  }
};

}  // namespace

int main(int argc, char** argv) {
  client::buddy_options options;
  std::string initial_user, chat_host;
  std::uint16_t chat_port = 0;
  double refresh = 60;
  double timeout = 1;

  cli::parser args("imbuddy", "[--host HOST] [--tcp-port PORT] [--udp-port PORT] [options]",
                   "Buddy list client (seed 002). Reads commands from stdin, a terminal or a\n"
                   "pipe, one per line; while a chat is open every line goes to the buddy.");
  args.option("host", "HOST", "buddy server address (default 127.0.0.1)", options.host)
      .option("tcp-port", "PORT", "server TCP port (default 1234)", options.tcp_port, false)
      .option("udp-port", "PORT", "server UDP port (default 1235)", options.udp_port, false)
      .option("user", "USERID", "start logged in as USERID (like 'l USERID')", initial_user)
      .option("chat-host", "HOST",
              "address to accept chats on (default: the local\n"
              "                        address that reaches the server, which the server\n"
              "                        reports to buddies)",
              chat_host)
      .option("chat-port", "PORT", "TCP port to accept chats on (default: any free one)",
              chat_port)
      .option("refresh", "SECONDS",
              "resend ONLINE this often while online (default 60;\n"
              "                        the server forgets it after its TTL, 300 s by\n"
              "                        default)",
              refresh)
      .option("timeout", "SECONDS",
              "wait this long for a UDP answer, 3 tries (default 1);\n"
              "                        TCP requests wait 5 times as long",
              timeout)
      .epilog(std::string(menu) +
              "\n\n"
              "Examples: 'r alice', or 'r' then 'alice' on the next line; 'c bob', then\n"
              "lines for bob, then 'q'. Incoming chats are accepted one at a time (other\n"
              "callers get BUSY); their lines print as 'bob: text'. Notices start with\n"
              "'* ', failures with '! '. Exit status: 1 if any command failed, else 0;\n"
              "SIGINT or SIGTERM goes offline, ends the chat and exits 0.");
  if (auto code = args.parse(argc, argv)) return *code;
  if (refresh <= 0) return args.usage_error("--refresh: expected more than 0 seconds");
  if (timeout <= 0) return args.usage_error("--timeout: expected more than 0 seconds");
  if (!initial_user.empty() && !buddy::valid_user(initial_user)) {
    return args.usage_error("--user: '" + wire::escape(initial_user) +
                            "' is not 1 to 32 characters of A-Z a-z 0-9 _ . -");
  }
  if (!net::parse_address(options.host)) {
    return args.usage_error("--host: '" + wire::escape(options.host) +
                            "' is not an IP address or localhost");
  }
  options.get_timeout = cli::seconds(timeout);
  options.reply_timeout = cli::seconds(timeout * 5);
  options.connect_timeout = cli::seconds(timeout * 5);

  asio::io_context io(1);
  app state(io, options, cli::seconds(refresh));
  cli::command_loop input(
      io, args.program(), [&](std::string line) { return state.run(std::move(line)); },
      [&] { state.quit(); });
  state.input = &input;
  if (chat_host.empty()) {
    auto local = state.client.local_address();
    if (!local) {
      cli::complain(args.program(), "cannot reach " + options.host + ": " + local.error().message());
      return 1;
    }
    chat_host = local->to_string();
  }
  auto listener = client::chat_listener::listen(io, chat_host, chat_port, state.events());
  if (!listener) {
    const auto& e = listener.error();
    cli::complain(args.program(),
                  "cannot accept chats: " + (e == errc::address_in_use ? e.detail() : e.message()));
    return 1;
  }
  state.listener = *listener;
  state.chat_port = state.listener->local_endpoint().port();
  say("chats on " + net::to_string(state.listener->local_endpoint()) + " (h for help)");
  if (!initial_user.empty()) state.switch_user(initial_user);

  // SIGINT / SIGTERM: go offline, end the chat, exit 0.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  bool signalled = false;
  signals.async_wait([&](const std::error_code& ec, int) {
    if (ec) return;
    signalled = true;
    state.quit();
  });
  input.start();
  io.run();
  if (input.failed()) return 1;
  return signalled ? 0 : state.exit_code;
}

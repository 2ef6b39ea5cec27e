// imregistryd - the registry server of seeds 000 and 004 (protocol 1):
// HTTP/1.1 `POST /userlist.txt` REGISTER / LOGOUT, `GET /userlist.txt`.

// Project headers first: Asio picks its allocator (aligned_alloc or not)
// from macros the standard library defines, and every translation unit
// must see the same choice.
#include "cli.hpp"
#include "improto/server/registry_server.hpp"
#include "improto/wire/text.hpp"

#include <sys/resource.h>

#include <asio/io_context.hpp>
#include <filesystem>

using namespace improto;

int main(int argc, char** argv) {
  server::registry_config config;
  std::string address, host, port, data = ".", sync = "full", store_url;
  double idle_minutes = 5;
  double message_timeout = 30;
  std::string max_connections = "10000";
  std::string max_body = "4096";
  std::string max_line = "8192";
  std::string max_headers = "64";
  std::string max_users = "1000000";
  bool logout_from_any = false;
  bool commit_on_io = false;
  bool quiet = false;
  std::string defer_accept = "1";

  cli::parser args(
      "imregistryd", "[HOST:PORT] [--host HOST] [--port PORT] [--data DIR] [options]",
      "Registry server (seeds 000, 004): peers REGISTER name@ip:port and LOGOUT with\n"
      "'POST /userlist.txt', and read the list 'a@1.2.3.4:5,b@...,' with\n"
      "'GET /userlist.txt'. The list is kept in DIR/registry.sqlite3; a change is\n"
      "answered 200 OK only once it is on disk.");
  args.positional("HOST:PORT", "address to listen on, as the seed takes it (e.g. 127.0.0.1:65432)",
                  address, false)
      .option("host", "HOST", "address to listen on (default 127.0.0.1)", host)
      .option("port", "PORT", "TCP port, 0 for any free one (default 65432)", port)
      .option("data", "DIR", "directory of registry.sqlite3; must exist (default: .)", data)
      .option("store", "URL",
              "keep the list in this PostgreSQL database (postgresql://USER@HOST:PORT/DB)\n"
              "                        instead of DIR/registry.sqlite3; a database outage is\n"
              "                        answered 503 and the server reconnects by itself",
              store_url)
      .option("idle-timeout", "MIN", "close connections idle this many minutes (default 5)",
              idle_minutes)
      .option("message-timeout", "SEC",
              "drop clients that leave a request unfinished this many seconds\n"
              "                        (slow-loris bound; default 30)",
              message_timeout)
      .option("max-connections", "N", "connections served at once (default 10000)",
              max_connections)
      .option("max-body", "BYTES", "largest request body accepted, else 413 (default 4096)",
              max_body)
      .option("max-line", "BYTES", "longest request or header line, else 431 (default 8192)",
              max_line)
      .option("max-headers", "N", "most header lines in a request, else 431 (default 64)",
              max_headers)
      .option("max-users", "N",
              "entries the list may hold; a REGISTER past it is answered\n"
              "                        503 'user limit reached' (default 1000000)",
              max_users)
      .flag("logout-from-any",
            "accept a LOGOUT from any address (the seed's rule); by default only\n"
            "                        the IP address that registered the entry may (else 403)",
            logout_from_any)
      .option("sync", "LEVEL",
              "SQLite synchronous level: full (default; acknowledged changes survive\n"
              "                        power loss), normal (survive a crash of this process), off",
              sync)
      .flag("commit-on-io",
            "commit on the thread that serves requests, as Redis does: less CPU\n"
            "                        per change, but every request (GETs too) waits behind\n"
            "                        each fsync; the file is then locked for this server alone",
            commit_on_io)
      .flag("quiet",
            "no log line per accepted REGISTER/LOGOUT (start, stop, refusals\n"
            "                        and errors are still logged)",
            quiet)
      .option("defer-accept", "SEC",
              "accept a connection once its request has arrived (TCP_DEFER_ACCEPT);\n"
              "                        a silent client is accepted after about SEC seconds;\n"
              "                        0 accepts every connection at once (default 1)",
              defer_accept)
      .epilog("Logs one line per event to stderr; the first is 'listening on HOST:PORT'.\n"
              "SIGINT or SIGTERM stops it cleanly (exit 0). Exit 1 when the port is in use\n"
              "or the data directory (or --store database) cannot be used; exit 2 on bad\n"
              "arguments.\n"
              "Examples:\n"
              "  imregistryd 127.0.0.1:65432\n"
              "  curl http://127.0.0.1:65432/userlist.txt\n"
              "  curl --data 'REGISTER bob@127.0.0.1:4000' http://127.0.0.1:65432/userlist.txt");
  if (auto code = args.parse(argc, argv)) return *code;

  if (!address.empty()) {
    if (!host.empty() || !port.empty()) {
      return args.usage_error("give the address either as HOST:PORT or with --host/--port");
    }
    auto parsed = net::parse_host_port(address);
    if (!parsed) return args.usage_error("HOST:PORT: " + parsed.error().detail());
    config.host = parsed->host;
    config.port = parsed->port;
  }
  if (!host.empty()) {
    if (auto a = net::parse_address(host); !a) return args.usage_error("--host: " + a.error().detail());
    config.host = host;
  }
  if (!port.empty()) {
    auto p = net::parse_port(port, true);
    if (!p) return args.usage_error("--port: " + p.error().detail());
    config.port = *p;
  }
  struct count_flag {
    const char* name;
    const std::string& text;
    std::uint64_t max;
    std::uint64_t value = 0;
  };
  count_flag counts[] = {{"max-connections", max_connections, 1'000'000},
                         {"max-body", max_body, 1u << 30},
                         {"max-line", max_line, 1u << 20},
                         {"max-headers", max_headers, 10'000},
                         {"max-users", max_users, 1'000'000'000}};
  for (auto& c : counts) {
    auto v = wire::parse_decimal(c.text, c.max);
    if (!v || *v == 0) {
      return args.usage_error(std::string("--") + c.name + ": expected a whole number from 1 to " +
                              std::to_string(c.max));
    }
    c.value = *v;
  }
  if (sync == "full") {
    config.store.synchronous = store::sync_level::full;
  } else if (sync == "normal") {
    config.store.synchronous = store::sync_level::normal;
  } else if (sync == "off") {
    config.store.synchronous = store::sync_level::off;
  } else {
    return args.usage_error("--sync: expected full, normal or off, not '" + wire::escape(sync) + "'");
  }
  config.stream.max_connections = static_cast<std::size_t>(counts[0].value);
  config.http.max_body = static_cast<std::size_t>(counts[1].value);
  config.http.max_line = static_cast<std::size_t>(counts[2].value);
  config.http.max_headers = static_cast<std::size_t>(counts[3].value);
  config.max_users = static_cast<std::size_t>(counts[4].value);
  config.logout_from_any = logout_from_any;
  config.stream.idle_timeout = cli::seconds(idle_minutes * 60);
  config.stream.message_timeout = cli::seconds(message_timeout);
  if (!store_url.empty() && !store::is_postgresql_url(store_url)) {
    return args.usage_error("--store: expected a postgresql:// URL, not '" +
                            wire::escape(store::redact(store_url)) + "' (a file goes in --data)");
  }
  if (commit_on_io && !store_url.empty()) {
    return args.usage_error("--commit-on-io: only for the SQLite store in --data, not with --store");
  }
  config.commit_on_io = commit_on_io;
  config.log_changes = !quiet;
  auto defer = wire::parse_decimal(defer_accept, 3600);
  if (!defer) return args.usage_error("--defer-accept: expected whole seconds from 0 to 3600");
  config.defer_accept = std::chrono::seconds(static_cast<std::int64_t>(*defer));
  config.data_dir = data;
  config.store_url = store_url;
  asio::io_context io(1);
  // One write per turn of the event loop, not per logged change.
  config.log = cli::stderr_logger(io);

  std::error_code ec;
  if (store_url.empty() && !std::filesystem::is_directory(config.data_dir, ec)) {
    cli::complain(args.program(), "the data directory '" + data + "' does not exist or is not a directory");
    return 1;
  }

  // Each connection is a file descriptor: use what the hard limit allows,
  // and say so (after the first line, 'listening on') when it is too low.
  std::string fd_warning;
  if (rlimit fds{}; ::getrlimit(RLIMIT_NOFILE, &fds) == 0) {
    if (fds.rlim_cur < fds.rlim_max) {
      fds.rlim_cur = fds.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &fds);
      ::getrlimit(RLIMIT_NOFILE, &fds);
    }
    constexpr rlim_t spare = 32;  // store, listener, stdio
    if (fds.rlim_cur != RLIM_INFINITY && fds.rlim_cur < config.stream.max_connections + spare) {
      fd_warning = "warning: the file-descriptor limit (" + std::to_string(fds.rlim_cur) +
                   ") allows fewer than --max-connections " +
                   std::to_string(config.stream.max_connections) + " connections";
    }
  }

  auto server = server::registry_server::bind(io, config);
  if (!server) {
    const auto& e = server.error();
    if (!store_url.empty() && (e == errc::storage_error || e == errc::invalid_config)) {
      // The detail names the database (password hidden).
      cli::complain(args.program(), "cannot open the registry: " + e.detail());
    } else if (e == errc::storage_error) {
      cli::complain(args.program(), "cannot open the registry in '" + data + "': " + e.detail());
    } else {
      cli::complain(args.program(), "cannot listen: " + (e.detail().empty() ? e.message() : e.detail()));
    }
    return 1;
  }
  cli::service service;
  service.start = [&] {
    (*server)->start();
    if (!fd_warning.empty()) config.log(fd_warning);
  };
  service.stop = [&] { (*server)->stop(); };
  service.drained = [&] {
    return (*server)->connection_count() == 0 && (*server)->pending_writes() == 0;
  };
  return cli::serve_until_signal(io, service, config.log);
}

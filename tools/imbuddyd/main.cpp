// imbuddyd - the buddy list and status server of seed 002.

// A standard header before Asio's: Asio picks its aligned allocator from
// libstdc++'s config macros, and every file must pick the same one.
#include <string>

#include <asio/io_context.hpp>

#include "cli.hpp"
#include "improto/server/buddy_server.hpp"
#include "improto/wire/text.hpp"
#if IMPROTO_HAS_NATS
#include <nats/nats.h>

#include "improto/cluster/buddy_status.hpp"
#include "improto/cluster/nats.hpp"
#endif

using namespace improto;

int main(int argc, char** argv) {
  server::buddy_config config;
  std::string data = ".";
  std::string store_url;
  double ttl = 300;
  double idle_timeout = 120;
  double message_timeout = 30;
  double udp_rate = config.datagram.rate_per_source;
  std::string max_connections = "10000";
  std::string status_servers, replicas = "1";

  cli::parser args(
      "imbuddyd", "[--host HOST] [--tcp-port PORT] [--udp-port PORT] [--data DIR] [options]",
      "Buddy list and status server (seed 002). TCP, one request per connection:\n"
      "'REG userid', 'ADD userid buddyid', 'DEL userid buddyid', answered '200 OK',\n"
      "'201 INVALID', '202 NO SUCH USER' or '203 USER EXISTS' once stored. UDP:\n"
      "'SET userid 100|101 msgport' (no reply) and 'GET userid' (a line\n"
      "'buddyid status ip port' per buddy).");
  args.option("host", "HOST", "address to listen on (default 127.0.0.1)", config.host)
      .option("tcp-port", "PORT", "TCP port, 0 for any free one (default 1234)", config.tcp_port)
      .option("udp-port", "PORT", "UDP port, 0 for any free one (default 1235)", config.udp_port)
      .option("data", "DIR",
              "existing directory for buddy.sqlite3, the users and\n"
              "                        buddy lists (default: the current directory)", data)
      .option("store", "URL",
              "keep users and lists in this PostgreSQL database\n"
              "                        (postgresql://USER@HOST:PORT/DB) instead of DIR/buddy.sqlite3;\n"
              "                        nodes on one database serve the same users; a database\n"
              "                        outage is answered '503 UNAVAILABLE'",
              store_url)
      .option("ttl", "SECONDS",
              "an ONLINE status not refreshed this long reads\n"
              "                        OFFLINE (default 300)", ttl)
      .option("idle-timeout", "SECS",
              "close TCP connections that send nothing this\n"
              "                        long (default 120)", idle_timeout)
      .option("message-timeout", "SECS",
              "close TCP connections that leave a request\n"
              "                        line unfinished this long (default 30)",
              message_timeout)
      .option("max-connections", "N", "TCP connections served at once (default 10000)",
              max_connections)
      .option("udp-rate", "N",
              "datagrams accepted per second from one address, 0\n"
              "                        for no limit (default 200, bursts of twice that)",
              udp_rate)
      .option("status", "nats://HOST:PORT[,...]",
              "share SET statuses with the other nodes on these NATS\n"
              "                        servers (a KV bucket whose TTL is --ttl)",
              status_servers)
      .option("kv-replicas", "N", "replicas of the status bucket when this node creates it\n"
              "                        (default 1; 3 on a 3-server NATS cluster)", replicas)
      .epilog(
          "A UDP request longer than " + std::to_string(config.datagram.max_datagram) +
          " bytes is dropped unread, without an answer (a GET\n"
          "too); how many were dropped is logged at shutdown. A GET answer lists as many\n"
          "buddies as fit in one datagram (" + std::to_string(buddy::max_datagram) +
          " bytes).\n"
          "Logs one line per event to stderr; the first two are 'listening on HOST:PORT',\n"
          "TCP then UDP. SIGINT or SIGTERM stops it cleanly (exit 0); requests already\n"
          "being stored are answered first.");
  if (auto code = args.parse(argc, argv)) return *code;

  auto connections = wire::parse_decimal(max_connections, 1'000'000);
  if (!connections || *connections == 0) {
    return args.usage_error("--max-connections: expected 1 to 1000000");
  }
  if (ttl <= 0) return args.usage_error("--ttl: expected more than 0 seconds");
  if (idle_timeout <= 0 || message_timeout <= 0) {
    return args.usage_error("timeouts must be more than 0 seconds");
  }
  if (!store_url.empty() && !store::is_postgresql_url(store_url)) {
    return args.usage_error("--store: expected a postgresql:// URL, not '" +
                            wire::escape(store::redact(store_url)) + "' (a file goes in --data)");
  }
  config.data_dir = data;
  config.store_url = store_url;
  config.status_ttl = cli::seconds(ttl);
  config.stream.idle_timeout = cli::seconds(idle_timeout);
  config.stream.message_timeout = cli::seconds(message_timeout);
  config.stream.max_connections = static_cast<std::size_t>(*connections);
  config.datagram.rate_per_source = udp_rate;
  config.datagram.burst = udp_rate * 2;
  config.log = cli::stderr_logger();

  asio::io_context io(1);
  auto server = server::buddy_server::bind(io, config);
  if (!server) {
    const auto& e = server.error();
    std::string why = e == errc::address_in_use ? "cannot listen: " + e.detail()
                      : e == errc::invalid_argument ? "cannot listen: " + e.message()
                                                    : "cannot open the data store: " + e.message();
    cli::complain(args.program(), why);
    return 1;
  }
  if (!status_servers.empty()) {
#if IMPROTO_HAS_NATS
    auto urls = improto::cluster::parse_servers(status_servers);
    if (!urls) return args.usage_error("--status: " + urls.error().detail());
    auto r = wire::parse_decimal(replicas, 5);
    if (!r || *r == 0) return args.usage_error("--kv-replicas: expected 1 to 5");
    improto::cluster::buddy_status_options o;
    o.nats.servers = std::move(*urls);
    o.replicas = static_cast<int>(*r);
    o.ttl = config.status_ttl;
    o.log = config.log;
    auto status = improto::cluster::open_buddy_status(io, std::move(o));
    if (!status) {
      cli::complain(args.program(), "cannot share statuses: " + status.error().message());
      return 1;
    }
    (*server)->share_status(std::move(*status));
#else
    return args.usage_error(
        "--status: this build has no cluster support (built without libnats; install "
        "libnats-dev and rebuild)");
#endif
  }
  cli::service service;
  service.start = [&] { (*server)->start(); };
  service.stop = [&] { (*server)->stop(); };
  service.drained = [&] { return (*server)->connection_count() == 0; };
  int code = cli::serve_until_signal(io, service, config.log);
  server->reset();  // its status store (and NATS connection) first
#if IMPROTO_HAS_NATS
  nats_CloseAndWait(2000);
#endif
  return code;
}

// imrelayd - the relay chat server of seed 003 (with presence and user lists).

#include <asio/io_context.hpp>

#include "cli.hpp"
#include "improto/wire/text.hpp"
#include "improto/server/relay_server.hpp"
#if IMPROTO_HAS_NATS
#include <nats/nats.h>

#include "improto/cluster/relay_node.hpp"
#endif

using namespace improto;

int main(int argc, char** argv) {
  server::relay_config config;
  double receiver_timeout = 10;
  double idle_timeout = 3600;
  double message_timeout = 30;
  double pairing_timeout = 30;
  std::string max_connections = "10000";
  std::string max_body = "65536";
  std::string max_transfers = "64";
  std::string max_user_transfers = "4";
  double paused_timeout = 300;
  double transfer_timeout = 30;
  std::string cluster_servers, node;
  double heartbeat = 1, node_timeout = 3;
  std::string replicas = "1";

  cli::parser args("imrelayd", "[--host HOST] [--port PORT] [options]",
                   "Relay chat server (seed 003): users register a sending and a receiving\n"
                   "socket, then SEND messages that the server FORWARDs and acknowledges.");
  args.option("host", "HOST", "address to listen on (default 127.0.0.1)", config.host)
      .option("port", "PORT", "TCP port, 0 for any free one (default 50000)", config.port)
      .option("receiver-timeout", "SECONDS",
              "answer ERROR 102 when a receiver has not answered by then (default 10)",
              receiver_timeout)
      .option("pairing-timeout", "SECONDS",
              "close a socket whose name's other socket is not registered by then (default 30)",
              pairing_timeout)
      .option("idle-timeout", "SECONDS", "close connections silent this long (default 3600)",
              idle_timeout)
      .option("message-timeout", "SECONDS",
              "close connections that leave a message unfinished this long (default 30)",
              message_timeout)
      .option("max-body", "BYTES", "largest message body accepted (default 65536)", max_body)
      .option("max-connections", "N", "connections served at once (default 10000)",
              max_connections)
      .option("files", "DIR", "serve the regular files of DIR for download (default: none)",
              config.files.dir)
      .option("max-transfers", "N", "downloads at once, all users (default 64)", max_transfers)
      .option("max-user-transfers", "N", "downloads at once per user (default 4)",
              max_user_transfers)
      .option("paused-timeout", "SECONDS", "drop a download paused this long (default 300)",
              paused_timeout)
      .option("transfer-timeout", "SECONDS",
              "drop a download whose client is silent this long (default 30)", transfer_timeout)
      .option("cluster", "nats://HOST:PORT[,...]",
              "run as one node of a relay cluster on these NATS servers (JetStream on)",
              cluster_servers)
      .option("node", "NAME", "this node's name, unique in the cluster (with --cluster)", node)
      .option("heartbeat", "SECONDS", "cluster heartbeat period (default 1)", heartbeat)
      .option("node-timeout", "SECONDS",
              "a node silent this long is dead and its names are freed; a node that cannot "
              "hear itself fences itself one heartbeat sooner (default 3)",
              node_timeout)
      .option("kv-replicas", "N",
              "replicas of the names bucket when this node creates it (default 1; 3 on a "
              "3-server NATS cluster)",
              replicas)
      .epilog("Logs one line per event to stderr; the first is 'listening on HOST:PORT'.\n"
              "SIGINT or SIGTERM stops it cleanly (exit 0).");
  if (auto code = args.parse(argc, argv)) return *code;

  auto body = wire::parse_decimal(max_body, 1u << 30);
  if (!body || *body == 0) return args.usage_error("--max-body: expected 1 to 1073741824 bytes");
  auto connections = wire::parse_decimal(max_connections, 1'000'000);
  if (!connections || *connections == 0) {
    return args.usage_error("--max-connections: expected 1 to 1000000");
  }
  config.wire.max_body = static_cast<std::size_t>(*body);
  config.stream.max_connections = static_cast<std::size_t>(*connections);
  if (pairing_timeout <= 0 || pairing_timeout > 86400) {
    return args.usage_error("--pairing-timeout: expected more than 0, at most 86400 seconds");
  }
  auto transfers = wire::parse_decimal(max_transfers, 100'000);
  auto user_transfers = wire::parse_decimal(max_user_transfers, 100'000);
  if (!transfers || *transfers == 0) return args.usage_error("--max-transfers: expected 1 to 100000");
  if (!user_transfers || *user_transfers == 0) {
    return args.usage_error("--max-user-transfers: expected 1 to 100000");
  }
  if (paused_timeout <= 0 || paused_timeout > 86400) {
    return args.usage_error("--paused-timeout: expected more than 0, at most 86400 seconds");
  }
  config.files.max_transfers = static_cast<std::size_t>(*transfers);
  config.files.max_transfers_per_user = static_cast<std::size_t>(*user_transfers);
  if (transfer_timeout <= 0 || transfer_timeout > 3600) {
    return args.usage_error("--transfer-timeout: expected more than 0, at most 3600 seconds");
  }
  config.files.paused_timeout = cli::seconds(paused_timeout);
  config.files.idle_timeout = cli::seconds(transfer_timeout);
  config.receiver_timeout = cli::seconds(receiver_timeout);
  config.pairing_timeout = cli::seconds(pairing_timeout);
  config.stream.idle_timeout = cli::seconds(idle_timeout);
  config.stream.message_timeout = cli::seconds(message_timeout);
  config.log = cli::stderr_logger();

  asio::io_context io(1);
  std::unique_ptr<server::relay_cluster> cluster;
  if (!cluster_servers.empty() || !node.empty()) {
#if IMPROTO_HAS_NATS
    if (cluster_servers.empty() || node.empty()) {
      return args.usage_error("--cluster and --node go together");
    }
    auto urls = improto::cluster::parse_servers(cluster_servers);
    if (!urls) return args.usage_error("--cluster: " + urls.error().detail());
    auto r = wire::parse_decimal(replicas, 5);
    if (!r || *r == 0) return args.usage_error("--kv-replicas: expected 1 to 5");
    if (heartbeat <= 0 || heartbeat > 60) {
      return args.usage_error("--heartbeat: expected more than 0, at most 60 seconds");
    }
    if (node_timeout < 3 * heartbeat || node_timeout > 600) {
      return args.usage_error("--node-timeout: expected 3 heartbeats to 600 seconds");
    }
    improto::cluster::relay_node_options o;
    o.nats.servers = std::move(*urls);
    o.node = node;
    o.replicas = static_cast<int>(*r);
    o.heartbeat = cli::seconds(heartbeat);
    o.node_timeout = cli::seconds(node_timeout);
    o.forward_timeout = cli::seconds(receiver_timeout);
    o.log = config.log;
    auto opened = improto::cluster::open_relay_node(io, std::move(o));
    if (!opened) {
      cli::complain(args.program(), "cannot join the cluster: " + opened.error().message());
      return 1;
    }
    cluster = std::move(*opened);
#else
    return args.usage_error(
        "--cluster: this build has no cluster support (built without libnats; install "
        "libnats-dev and rebuild)");
#endif
  }
  auto server = server::relay_server::bind(io, config, std::move(cluster));
  if (!server) {
    cli::complain(args.program(), "cannot listen: " + server.error().message());
    return 1;
  }
  cli::service service;
  service.start = [&] { (*server)->start(); };
  service.stop = [&] { (*server)->stop(); };
  service.drained = [&] { return (*server)->connection_count() == 0; };
  int code = cli::serve_until_signal(io, service, config.log);
  server->reset();  // the cluster node gives back its names before NATS goes
#if IMPROTO_HAS_NATS
  nats_CloseAndWait(2000);
#endif
  return code;
}

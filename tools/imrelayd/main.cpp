// imrelayd - the relay chat server of seed 003 (with presence and user lists).

#include <asio/io_context.hpp>

#include "cli.hpp"
#include "improto/wire/text.hpp"
#include "improto/server/relay_server.hpp"

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
  auto server = server::relay_server::bind(io, config);
  if (!server) {
    cli::complain(args.program(), "cannot listen: " + server.error().message());
    return 1;
  }
  cli::service service;
  service.start = [&] { (*server)->start(); };
  service.stop = [&] { (*server)->stop(); };
  service.drained = [&] { return (*server)->connection_count() == 0; };
  return cli::serve_until_signal(io, service, config.log);
}

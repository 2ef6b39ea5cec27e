#pragma once

// The relay server of protocol 3 (seed 003) with the presence and user-list
// messages of protocol 4, as a library type: bind, start, stop, on any
// io_context. All state is in memory and lives on the io_context's thread;
// with a relay_cluster the server is one node of several.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include "improto/error.hpp"
#include "improto/net/common.hpp"
#include "improto/net/tcp.hpp"
#include "improto/server/file_service.hpp"
#include "improto/server/relay_cluster.hpp"
#include "improto/wire/framing.hpp"

namespace improto::server {

struct relay_config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 50000;  // 0 binds a free port
  net::stream_limits stream = [] {
    net::stream_limits s;
    // Chat clients sit quietly on their receiving socket for long stretches.
    s.idle_timeout = std::chrono::hours(1);
    return s;
  }();
  wire::limits wire;  // max_body: the largest message body accepted
  // A receiver must answer a FORWARD within this, else the sender gets ERROR 102.
  std::chrono::milliseconds receiver_timeout = std::chrono::seconds(10);
  // SENDs one sender may have awaiting replies; past it we stop reading from it.
  std::size_t max_in_flight = 1024;
  // FORWARDs one receiver may leave unanswered; past it, sends to it fail.
  std::size_t max_unanswered = 4096;
  // A name registered on one socket only is dropped (and that socket told
  // and closed) when its other socket has not registered within this.
  std::chrono::milliseconds pairing_timeout = std::chrono::seconds(30);
  // Protocol 4 downloads: files.dir is the served directory (empty: none).
  file_service_config files;
  net::logger log;  // one line per event; may be empty
};

class relay_server {
 public:
  // Binds the listening socket (address_in_use, invalid_argument as values).
  static result<std::unique_ptr<relay_server>> bind(asio::io_context& io, relay_config config);
  // A node of a cluster (cluster::open_relay_node): names are claimed
  // cluster-wide and users of other nodes are reached through it.
  static result<std::unique_ptr<relay_server>> bind(asio::io_context& io, relay_config config,
                                                    std::unique_ptr<relay_cluster> cluster);
  // Stops the server (as stop()); its io_context may then run on, run again
  // or be destroyed without running: the coroutines own what they touch.
  ~relay_server();

  asio::ip::tcp::endpoint local_endpoint() const;
  // Starts accepting; returns at once (the io_context runs the server).
  void start();
  // Stops accepting and closes every connection after flushing what is
  // queued. Safe to call twice; call on the io_context's thread.
  void stop();

  // Users registered on both sockets.
  std::size_t user_count() const;
  std::size_t connection_count() const;

  struct impl;

 private:
  explicit relay_server(std::shared_ptr<impl> impl);
  std::shared_ptr<impl> impl_;  // shared with the coroutines serving it
};

}  // namespace improto::server

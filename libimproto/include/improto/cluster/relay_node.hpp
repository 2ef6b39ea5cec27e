#pragma once

// One relay server as a node of a cluster on NATS (docs/cluster.md has the
// subjects, the messages between nodes and the guarantees). Give it to
// relay_server::bind; the server then claims names in the KV bucket, routes
// SENDs for users of other nodes through NATS, and answers theirs.

#include <chrono>
#include <memory>
#include <string>

#include <asio/io_context.hpp>

#include "improto/cluster/nats.hpp"
#include "improto/error.hpp"
#include "improto/server/relay_cluster.hpp"

namespace improto::cluster {

struct relay_node_options {
  nats_options nats;
  std::string node;                          // unique in the cluster: [A-Za-z0-9_-]{1,64}
  std::string prefix = "improto.relay";      // subjects: <prefix>.user.<name>, .all, ...
  std::string bucket = "improto_relay_names";  // the KV bucket of names
  int replicas = 1;                          // of a bucket this node creates (3 in production)
  std::chrono::milliseconds heartbeat = std::chrono::seconds(1);
  // A node not heard for this long is dead: its names are freed. A node
  // that has not heard its own heartbeat for node_timeout - heartbeat
  // fences itself first. At least 3 heartbeats.
  std::chrono::milliseconds node_timeout = std::chrono::seconds(3);
  // A FORWARD's deadline (the server's receiver_timeout); the sender's
  // node waits this plus reply_grace for the answer.
  std::chrono::milliseconds forward_timeout = std::chrono::seconds(10);
  std::chrono::milliseconds reply_grace = std::chrono::seconds(1);
  // LIST USERS waits this long for the other nodes' pages.
  std::chrono::milliseconds list_timeout = std::chrono::seconds(2);
  net::logger log;
};

// Checks the options (invalid_config with a sentence), connects to NATS
// and binds the bucket (blocking: before the io_context runs).
result<std::unique_ptr<server::relay_cluster>> open_relay_node(asio::io_context& io,
                                                               relay_node_options options);

}  // namespace improto::cluster

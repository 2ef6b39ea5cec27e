#pragma once

// Buddy statuses shared by several imbuddyd nodes through a JetStream KV
// bucket whose TTL is the status TTL (docs/cluster.md): each SET is put
// under the user's id; every node watches the bucket and answers GET from
// what it has seen, judging freshness by the SET's own time, not by expiry
// events (NATS 2.9 sends none).

#include <chrono>
#include <memory>
#include <string>

#include <asio/io_context.hpp>

#include "improto/cluster/nats.hpp"
#include "improto/error.hpp"
#include "improto/server/buddy_status.hpp"

namespace improto::cluster {

struct buddy_status_options {
  nats_options nats;
  std::string bucket = "improto_buddy_status";
  int replicas = 1;
  std::chrono::milliseconds ttl = std::chrono::seconds(300);  // the server's status TTL
  net::logger log;
};

// Connects and binds the bucket (blocking: before the io_context runs).
result<std::unique_ptr<server::buddy_status_store>> open_buddy_status(asio::io_context& io,
                                                                      buddy_status_options options);

}  // namespace improto::cluster

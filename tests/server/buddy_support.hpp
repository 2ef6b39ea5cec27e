#pragma once

// Helpers of the in-process buddy_server tests: a server on a test's
// io_context, a client of it, and the users most tests start from.

#include <doctest/doctest.h>

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <utility>

#include "improto/client/buddy_client.hpp"
#include "improto/server/buddy_server.hpp"
#include "improto/server/buddy_status.hpp"
#include "server_support.hpp"

namespace server_test {

// A buddy_server on `io` (ephemeral ports, data in a test directory, no
// fsync: these tests are not about it), stopped by stop() or the destructor.
struct buddy_node {
  asio::io_context& io;
  std::unique_ptr<improto::server::buddy_server> server;

  explicit buddy_node(asio::io_context& context) : io(context) {}
  ~buddy_node() { stop(); }
  buddy_node(const buddy_node&) = delete;
  buddy_node& operator=(const buddy_node&) = delete;

  void start(const temp_dir& dir, std::chrono::milliseconds ttl,
             std::unique_ptr<improto::server::buddy_status_store> status = nullptr) {
    improto::server::buddy_config config;
    config.tcp_port = 0;
    config.udp_port = 0;
    config.data_dir = dir.path;
    config.store.synchronous = improto::store::sync_level::off;
    config.status_ttl = ttl;
    auto s = improto::server::buddy_server::bind(io, std::move(config));
    REQUIRE_MESSAGE(s, s.error().message());
    server = std::move(*s);
    if (status) server->share_status(std::move(status));
    server->start();
  }
  void stop() {
    if (!server) return;
    server->stop();
    io.run_for(std::chrono::milliseconds(100));  // lets answers and closes go out
    server.reset();
  }

  improto::client::buddy_client client() const {
    improto::client::buddy_options o;
    o.tcp_port = server->tcp_endpoint().port();
    o.udp_port = server->udp_endpoint().port();
    o.get_timeout = std::chrono::milliseconds(500);
    o.get_attempts = 20;  // a loaded machine may be slow, never wrong
    return improto::client::buddy_client(io.get_executor(), o);
  }
};

// Registers alice and bob, and makes bob alice's buddy.
inline asio::awaitable<void> alice_with_buddy_bob(improto::client::buddy_client& c) {
  CHECK(co_await c.register_user("alice"));
  CHECK(co_await c.register_user("bob"));
  CHECK(co_await c.add_buddy("alice", "bob"));
}

}  // namespace server_test

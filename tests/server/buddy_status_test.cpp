// buddy_server's status seam (server/buddy_status.hpp) in process: servers
// joined by an in-memory status store that carries stamps in milliseconds,
// as the NATS bucket does (cluster/buddy_status.cpp), so the newest-wins
// rule and the precision of a SET's stamp are tested without NATS. The NATS
// store is tested end to end in tests/integration/test_cluster_buddy_status.py.

#include <doctest/doctest.h>

#include <algorithm>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "buddy_support.hpp"
#include "improto/client/buddy_client.hpp"
#include "improto/server/buddy_server.hpp"
#include "improto/server/buddy_status.hpp"
#include "server_support.hpp"

using namespace improto;
using namespace std::chrono_literals;
using server::buddy_status_update;
using server_test::alice_with_buddy_bob;
using server_test::eventually;
using server_test::run;
using server_test::temp_dir;
using std::chrono::milliseconds;
using std::chrono::system_clock;

namespace {

// The statuses every node shares: each SET put reaches every started node
// (its maker included), in order, on the io_context, with the stamp it
// travels with: whole milliseconds.
struct status_hub {
  explicit status_hub(asio::io_context& context) : io(context) {}
  asio::io_context& io;
  std::vector<server::buddy_status_sink*> sinks;
  std::vector<buddy_status_update> log;   // as delivered, for late starters
  std::vector<buddy_status_update> puts;  // as the nodes made them

  void publish(buddy_status_update u) {
    u.at = std::chrono::time_point_cast<milliseconds>(u.at);
    log.push_back(u);
    for (auto* sink : sinks) deliver(sink, u);
  }
  void deliver(server::buddy_status_sink* sink, const buddy_status_update& u) {
    asio::post(io, [this, sink, u] {
      // A node stopped since: its sink may be gone.
      if (std::find(sinks.begin(), sinks.end(), sink) != sinks.end()) sink->apply(u);
    });
  }
};

class hub_store final : public server::buddy_status_store {
 public:
  explicit hub_store(status_hub& h) : hub_(h) {}
  void start(server::buddy_status_sink& sink) override {
    sink_ = &sink;
    hub_.sinks.push_back(sink_);
    for (const auto& u : hub_.log) hub_.deliver(sink_, u);
  }
  void stop() override { std::erase(hub_.sinks, sink_); }
  void put(const buddy_status_update& u) override {
    hub_.puts.push_back(u);
    hub_.publish(u);
  }

 private:
  status_hub& hub_;
  server::buddy_status_sink* sink_ = nullptr;
};

// A buddy_server sharing statuses through the hub. Each node has its own
// users: register alice and bob on each, as one database would show them.
struct node : server_test::buddy_node {
  temp_dir dir;
  node(asio::io_context& context, status_hub& hub, const std::string& tag)
      : buddy_node(context), dir(tag) {
    start(dir, 300s, std::make_unique<hub_store>(hub));
  }
  ~node() { stop(); }  // before the directory goes
};

// What a node shows for bob (alice's only buddy).
asio::awaitable<std::optional<buddy::buddy_entry>> bob_as_seen(client::buddy_client& c) {
  auto list = co_await c.get_buddies("alice");
  if (!list || list->size() != 1) co_return std::nullopt;
  co_return (*list)[0];
}

// Lets every delivery posted before this call run (the io_context runs
// posted handlers in order).
asio::awaitable<void> settle() {
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
}

buddy_status_update bob_online(const std::string& ip, std::uint16_t port,
                               system_clock::time_point at, bool online = true) {
  return {"bob", online, ip, port, at};
}

buddy::buddy_entry bob_entry(const char* ip, std::uint16_t port) {
  return {"bob", buddy::presence::online, ip, port};
}

// Publishes a SET made on another node; what `c`'s node shows once it came.
asio::awaitable<std::optional<buddy::buddy_entry>> after(status_hub& hub, client::buddy_client& c,
                                                         buddy_status_update u) {
  hub.publish(std::move(u));
  co_await settle();
  co_return co_await bob_as_seen(c);
}

// Waits until `c`'s node shows bob online at ip:port (SET is not acknowledged).
asio::awaitable<bool> comes_to_show(client::buddy_client& c, const char* ip, std::uint16_t port) {
  co_return co_await eventually([&]() -> asio::awaitable<bool> {
    // (No braced temporary in a co_await expression: g++ 12 frees it twice.)
    co_return co_await bob_as_seen(c) == bob_entry(ip, port);
  });
}

}  // namespace

TEST_CASE("buddy status: the newest SET wins, an older one is ignored, an equal one applies") {
  asio::io_context io;
  status_hub hub(io);
  node a(io, hub, "buddy-status-order");
  auto c = a.client();
  const auto t = std::chrono::time_point_cast<milliseconds>(system_clock::now());
  run(io, [&]() -> asio::awaitable<void> {
    co_await alice_with_buddy_bob(c);
    // SETs made on other nodes.
    CHECK(co_await after(hub, c, bob_online("127.0.0.2", 1000, t)) ==
          bob_entry("127.0.0.2", 1000));
    // Older (a late delivery): ignored.
    CHECK(co_await after(hub, c, bob_online("127.0.0.3", 2000, t - 5ms)) ==
          bob_entry("127.0.0.2", 1000));
    // The same stamp: the later arrival applies.
    CHECK(co_await after(hub, c, bob_online("127.0.0.4", 3000, t)) ==
          bob_entry("127.0.0.4", 3000));
    CHECK(co_await after(hub, c, bob_online("127.0.0.5", 4000, t + 5ms)) ==
          bob_entry("127.0.0.5", 4000));
    // An older OFFLINE is ignored too.
    CHECK(co_await after(hub, c, bob_online("127.0.0.5", 4000, t + 1ms, false)) ==
          bob_entry("127.0.0.5", 4000));
  });
}

TEST_CASE("buddy status: a SET is stamped in the milliseconds it travels in") {
  asio::io_context io;
  status_hub hub(io);
  node a(io, hub, "buddy-status-ms");
  auto c = a.client();
  run(io, [&]() -> asio::awaitable<void> {
    co_await alice_with_buddy_bob(c);
    REQUIRE(c.set_status("bob", buddy::presence::online, 4000));
    CHECK(co_await comes_to_show(c, "127.0.0.1", 4000));
    REQUIRE(hub.puts.size() == 1);
    const auto stamp = hub.puts[0].at;
    // A finer stamp would make what follows fail (but for one stamp in a
    // million that falls on a whole millisecond).
    CHECK(stamp == std::chrono::time_point_cast<milliseconds>(stamp));
    // Another node's SET a moment later in the same millisecond travels
    // with the same stamp: it arrived later, so it wins.
    CHECK(co_await after(hub, c, bob_online("127.0.0.2", 5000, stamp)) ==
          bob_entry("127.0.0.2", 5000));
  });
}

TEST_CASE("buddy status: a SET on one node shows in GET on the other, both ways") {
  asio::io_context io;
  status_hub hub(io);
  node a(io, hub, "buddy-status-a");
  node b(io, hub, "buddy-status-b");
  auto ca = a.client();
  auto cb = b.client();
  run(io, [&]() -> asio::awaitable<void> {
    co_await alice_with_buddy_bob(ca);
    co_await alice_with_buddy_bob(cb);
    REQUIRE(ca.set_status("bob", buddy::presence::online, 4000));
    CHECK(co_await comes_to_show(cb, "127.0.0.1", 4000));
    // Right after, often within the same millisecond: B's SET is the newer one.
    REQUIRE(cb.set_status("bob", buddy::presence::online, 4001));
    CHECK(co_await eventually([&]() -> asio::awaitable<bool> {
      co_return co_await bob_as_seen(ca) == bob_entry("127.0.0.1", 4001) &&
                co_await bob_as_seen(cb) == bob_entry("127.0.0.1", 4001);
    }));
    CHECK(hub.puts.size() == 2);
  });
}

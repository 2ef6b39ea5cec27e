// relay_server's routing seam (server/relay_cluster.hpp) in process: two
// servers joined by an in-memory cluster, so the server's side of a cluster
// (claims held while a REGISTER waits, remote SEND / SEND ALL / LIST,
// presence from other nodes, fencing) is tested without NATS. The NATS
// implementation is tested end to end in tests/integration/test_cluster_relay.py.

#include <doctest/doctest.h>

#include <array>
#include <asio/buffer.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "improto/net/common.hpp"
#include "improto/relay/codes.hpp"
#include "improto/relay/decoder.hpp"
#include "improto/relay/messages.hpp"
#include "improto/server/relay_server.hpp"
#include "relay_peer.hpp"
#include "server_support.hpp"

using namespace improto;
using namespace std::chrono_literals;
using server::relay_cluster;
using server_test::eventually;
using server_test::peer;
using server_test::register_user;
using server_test::user;
using server_test::run;

namespace {

// Every node's view of the cluster: who holds which name.
struct hub {
  asio::io_context& io;
  std::map<std::string, int> owner;
  std::map<int, server::relay_local*> nodes;
  bool unavailable = false;
  std::size_t releases = 0;
};

class fake_cluster final : public relay_cluster {
 public:
  fake_cluster(hub& h, int id) : hub_(h), id_(id) {}
  void start(server::relay_local& local) override { hub_.nodes[id_] = &local; }
  void stop() override {}

  void claim(const std::string& user, std::function<void(claim_result)> done) override {
    asio::post(hub_.io, [this, user, done = std::move(done)] {
      if (hub_.unavailable) return done(claim_result::unavailable);
      if (hub_.owner.count(user) != 0) return done(claim_result::taken);
      hub_.owner[user] = id_;
      done(claim_result::claimed);
    });
  }
  void joined(const std::string& user) override { announce(user, true); }
  void release(const std::string& user, bool was_joined) override {
    ++hub_.releases;
    if (auto it = hub_.owner.find(user); it != hub_.owner.end() && it->second == id_) {
      hub_.owner.erase(it);
      if (was_joined) announce(user, false);
    }
  }
  void send(const std::string& from, const std::string& to, std::string body,
            std::function<void(bool)> done) override {
    auto it = hub_.owner.find(to);
    if (it == hub_.owner.end() || it->second == id_) {
      asio::post(hub_.io, [done = std::move(done)] { done(false); });
      return;
    }
    hub_.nodes[it->second]->deliver(from, to, std::move(body), net::clock::now() + 2s,
                                    std::move(done));
  }
  void send_all(const std::string& from, std::string body,
                std::function<void(bool)> done) override {
    auto left = std::make_shared<std::size_t>(hub_.nodes.size() - 1);
    auto failed = std::make_shared<bool>(false);
    auto shared_done = std::make_shared<std::function<void(bool)>>(std::move(done));
    for (auto& [id, node] : hub_.nodes) {
      if (id == id_) continue;
      node->deliver_all(from, body, net::clock::now() + 2s,
                        [left, failed, shared_done](std::size_t, std::size_t failures) {
                          if (failures > 0) *failed = true;
                          if (--*left == 0) (*shared_done)(!*failed);
                        });
    }
  }
  void list_users(const std::string& after, std::size_t max_bytes, user_page local,
                  std::function<void(user_page)> done) override {
    for (auto& [id, node] : hub_.nodes) {
      if (id == id_) continue;
      bool more = false;
      for (auto& u : node->local_users(after, max_bytes, more)) local.users.push_back(u);
    }
    std::sort(local.users.begin(), local.users.end());
    asio::post(hub_.io, [local = std::move(local), done = std::move(done)] { done(local); });
  }

 private:
  void announce(const std::string& user, bool joined) {
    for (auto& [id, node] : hub_.nodes) {
      if (id != id_) node->presence(user, joined);
    }
  }
  hub& hub_;
  int id_;
};

struct two_nodes {
  asio::io_context io;
  hub cluster{io, {}, {}};
  std::array<std::unique_ptr<server::relay_server>, 2> servers;
  std::array<std::uint16_t, 2> ports{};

  two_nodes() {
    for (int i = 0; i < 2; ++i) {
      server::relay_config config;
      config.port = 0;
      config.receiver_timeout = 2s;
      auto s = server::relay_server::bind(io, config, std::make_unique<fake_cluster>(cluster, i));
      REQUIRE(s);
      servers[static_cast<std::size_t>(i)] = std::move(*s);
      servers[static_cast<std::size_t>(i)]->start();
      ports[static_cast<std::size_t>(i)] = servers[static_cast<std::size_t>(i)]->local_endpoint().port();
    }
  }
  ~two_nodes() {
    for (auto& s : servers) s->stop();
    io.run_for(100ms);
  }
};

relay::message error_reply(int code) { return relay::error_for(code); }

}  // namespace

TEST_CASE("relay cluster seam: SEND across nodes, same bytes and answers, in order") {
  two_nodes n;
  run(n.io, [&]() -> asio::awaitable<void> {
    auto alice = co_await register_user(n.ports[0], "alice");
    auto bob = co_await register_user(n.ports[1], "bob");
    CHECK(n.cluster.owner == std::map<std::string, int>{{"alice", 0}, {"bob", 1}});

    alice.send->write(relay::send{"bob", "hello\nbob"});
    co_await bob.recv->next();
    CHECK(bob.recv->last() == relay::message(relay::forward{"alice", "hello\nbob"}));
    bob.recv->write(relay::received{"alice"});
    co_await alice.send->next();
    CHECK(alice.send->last() == relay::message(relay::sent{"bob"}));

    // Pipelined: a local failure between two remote deliveries keeps its place.
    alice.send->write_raw(
        "SEND bob\nContent-length: 1\n\naSEND carol\nContent-length: 1\n\nbSEND bob\n"
        "Content-length: 1\n\nc");
    co_await bob.recv->next();
    CHECK(bob.recv->last() == relay::message(relay::forward{"alice", "a"}));
    co_await bob.recv->next();
    CHECK(bob.recv->last() == relay::message(relay::forward{"alice", "c"}));
    bob.recv->write_raw("RECEIVED alice\n\nERROR 103 Header Incomplete\n\n");
    co_await alice.send->next();
    CHECK(alice.send->last() == relay::message(relay::sent{"bob"}));
    co_await alice.send->next();
    CHECK(alice.send->last() == error_reply(relay::codes::unable_to_send));
    co_await alice.send->next();
    CHECK(alice.send->last() == error_reply(relay::codes::unable_to_send));
  });
}

TEST_CASE("relay cluster seam: REGISTER waits for the claim; taken is 104, unavailable 109") {
  two_nodes n;
  run(n.io, [&]() -> asio::awaitable<void> {
    auto alice = co_await register_user(n.ports[0], "alice");
    peer other(co_await asio::this_coro::executor);
    co_await other.connect(n.ports[1]);
    other.write(relay::register_request{relay::role::to_send, "alice"});
    co_await other.next();
    CHECK(other.last() == error_reply(relay::codes::username_taken));

    // A request pipelined behind REGISTER sees its outcome, as on one
    // server: after 104 this socket is free to register another name.
    peer carol(co_await asio::this_coro::executor);
    co_await carol.connect(n.ports[1]);
    carol.write_raw("REGISTER TOSEND alice\n\nREGISTER TOSEND carol\n\nLIST USERS\n\n");
    co_await carol.next();
    CHECK(carol.last() == error_reply(relay::codes::username_taken));
    co_await carol.next();
    CHECK(carol.last() == relay::message(relay::registered{relay::role::to_send, "carol"}));
    co_await carol.next();  // carol has no receiving socket yet
    CHECK(carol.last() == error_reply(relay::codes::no_user_registered));

    n.cluster.unavailable = true;
    peer dave(co_await asio::this_coro::executor);
    co_await dave.connect(n.ports[0]);
    dave.write(relay::register_request{relay::role::to_send, "dave"});
    co_await dave.next();
    CHECK(dave.last() == error_reply(relay::codes::server_busy));
    CHECK(n.cluster.owner.count("dave") == 0);
  });
}

TEST_CASE("relay cluster seam: SEND ALL needs every node, presence and LIST are unions") {
  two_nodes n;
  run(n.io, [&]() -> asio::awaitable<void> {
    auto alice = co_await register_user(n.ports[0], "alice");
    alice.send->write(relay::subscribe{});
    co_await alice.send->next();
    CHECK(alice.send->last() == relay::message(relay::subscribed{}));
    auto bob = co_await register_user(n.ports[0], "bob");
    co_await alice.recv->next();
    CHECK(alice.recv->last() == relay::message(relay::joined{"bob"}));
    auto carol = co_await register_user(n.ports[1], "carol");
    co_await alice.recv->next();
    CHECK(alice.recv->last() == relay::message(relay::joined{"carol"}));

    alice.send->write(relay::list_users{});
    co_await alice.send->next();
    CHECK(alice.send->last() == relay::message(relay::user_list{{"alice", "bob", "carol"}, false}));

    alice.send->write(relay::send{"ALL", "hi"});
    co_await bob.recv->next();
    CHECK(bob.recv->last() == relay::message(relay::forward{"alice", "hi"}));
    co_await carol.recv->next();
    CHECK(carol.recv->last() == relay::message(relay::forward{"alice", "hi"}));
    bob.recv->write(relay::received{"alice"});
    carol.recv->write(relay::received{"alice"});
    co_await alice.send->next();
    CHECK(alice.send->last() == relay::message(relay::sent{"ALL"}));

    // The remote node's receiver fails: ERROR 102, once.
    alice.send->write(relay::send{"ALL", "again"});
    co_await bob.recv->next();
    co_await carol.recv->next();
    bob.recv->write(relay::received{"alice"});
    carol.recv->write_raw("ERROR 103 Header Incomplete\n\n");
    co_await alice.send->next();
    CHECK(alice.send->last() == error_reply(relay::codes::unable_to_send));
    alice.send->write(relay::list_users{});
    co_await alice.send->next();
    CHECK(alice.send->last() == relay::message(relay::user_list{{"alice", "bob", "carol"}, false}));
  });
}

TEST_CASE("relay cluster seam: fencing drops the node's sessions and gives its names back") {
  two_nodes n;
  run(n.io, [&]() -> asio::awaitable<void> {
    auto alice = co_await register_user(n.ports[0], "alice");
    alice.send->write(relay::subscribe{});
    co_await alice.send->next();
    auto bob = co_await register_user(n.ports[1], "bob");
    co_await alice.recv->next();
    CHECK(alice.recv->last() == relay::message(relay::joined{"bob"}));

    n.cluster.nodes[1]->fence("test");
    CHECK(co_await bob.send->closed());
    CHECK(co_await bob.recv->closed());
    CHECK(co_await eventually([&]() -> asio::awaitable<bool> {
      co_return n.cluster.owner.count("bob") == 0;
    }));
    co_await alice.recv->next();
    CHECK(alice.recv->last() == relay::message(relay::left{"bob"}));
    CHECK(n.servers[1]->user_count() == 0);
    // The name is free for anyone, anywhere.
    auto bob2 = co_await register_user(n.ports[0], "bob");
    CHECK(n.cluster.owner["bob"] == 0);
  });
}

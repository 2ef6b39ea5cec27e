// buddy_server in process, driven by the library's buddy_client over
// loopback: TCP REG / ADD / DEL, UDP SET / GET, the status TTL, and the
// store surviving a restart.

#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "buddy_support.hpp"
#include "improto/client/buddy_client.hpp"
#include "improto/server/buddy_server.hpp"
#include "server_support.hpp"

using namespace improto;
using namespace std::chrono_literals;
using server_test::alice_with_buddy_bob;
using server_test::eventually;
using server_test::run;
using server_test::temp_dir;

namespace {

struct io_owner {
  asio::io_context context;
};

// A test's io_context and the server on it.
struct fixture : private io_owner, public server_test::buddy_node {
  fixture(const temp_dir& dir, std::chrono::milliseconds ttl = 300s) : buddy_node(context) {
    start(dir, ttl);
  }
};

}  // namespace

TEST_CASE("buddy_server: REG, ADD and DEL over TCP with their answers") {
  temp_dir dir("buddy-tcp");
  fixture f(dir);
  auto c = f.client();
  run(f.io, [&]() -> asio::awaitable<void> {
    CHECK(co_await c.register_user("alice"));
    auto twice = co_await c.register_user("alice");
    REQUIRE_FALSE(twice);
    CHECK(twice.error() == errc::name_taken);  // 203 USER EXISTS

    auto nobody = co_await c.add_buddy("alice", "bob");
    REQUIRE_FALSE(nobody);
    CHECK(nobody.error() == errc::not_found);  // 202 NO SUCH USER
    CHECK(co_await c.register_user("bob"));
    CHECK(co_await c.register_user("carol"));
    CHECK(co_await c.add_buddy("alice", "bob"));
    CHECK(co_await c.add_buddy("alice", "carol"));
    CHECK(co_await c.add_buddy("alice", "bob"));  // twice: still OK
    CHECK(f.server->user_count() == 3);

    auto list = co_await c.get_buddies("alice");
    REQUIRE(list);
    REQUIRE(list->size() == 2);
    CHECK((*list)[0].user == "bob");  // first added first
    CHECK((*list)[1].user == "carol");
    CHECK((*list)[0].status == buddy::presence::offline);

    CHECK(co_await c.delete_buddy("alice", "bob"));
    CHECK(co_await c.delete_buddy("alice", "bob"));  // not a buddy: still OK
    list = co_await c.get_buddies("alice");
    REQUIRE(list);
    REQUIRE(list->size() == 1);
    CHECK((*list)[0].user == "carol");

    auto unknown = co_await c.get_buddies("zed");
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error() == errc::not_found);
  });
  // Every connection was answered and closed.
  f.io.run_for(0ms);
  CHECK(f.server->connection_count() == 0);
}

TEST_CASE("buddy_server: SET over UDP shows in GET with the source address") {
  temp_dir dir("buddy-udp");
  fixture f(dir);
  auto c = f.client();
  run(f.io, [&]() -> asio::awaitable<void> {
    co_await alice_with_buddy_bob(c);
    REQUIRE(c.set_status("bob", buddy::presence::online, 4000));
    // SET is not acknowledged: wait until GET shows it.
    buddy::buddy_entry seen;
    CHECK(co_await eventually([&]() -> asio::awaitable<bool> {
      auto list = co_await c.get_buddies("alice");
      if (!list || list->size() != 1) co_return false;
      seen = (*list)[0];
      co_return seen.status == buddy::presence::online;
    }));
    CHECK(seen == buddy::buddy_entry{"bob", buddy::presence::online, "127.0.0.1", 4000});

    // A new port changes bob's line: alice's prepared reply must follow it.
    REQUIRE(c.set_status("bob", buddy::presence::online, 4001));
    CHECK(co_await eventually([&]() -> asio::awaitable<bool> {
      auto list = co_await c.get_buddies("alice");
      co_return list && list->size() == 1 &&
          (*list)[0] == buddy::buddy_entry{"bob", buddy::presence::online, "127.0.0.1", 4001};
    }));

    REQUIRE(c.set_status("bob", buddy::presence::offline, 0));
    CHECK(co_await eventually([&]() -> asio::awaitable<bool> {
      auto list = co_await c.get_buddies("alice");
      co_return list && list->size() == 1 && (*list)[0].status == buddy::presence::offline;
    }));
    // And a list that changes after a GET: the next GET has the new buddy.
    REQUIRE(co_await c.register_user("carol"));
    REQUIRE(co_await c.add_buddy("alice", "carol"));
    auto two = co_await c.get_buddies("alice");
    REQUIRE(two);
    REQUIRE(two->size() == 2);
    CHECK((*two)[1] == buddy::buddy_entry{"carol", buddy::presence::offline, "0.0.0.0", 0});
  });
}

TEST_CASE("buddy_server: an ONLINE not refreshed within the TTL reads OFFLINE, address kept") {
  temp_dir dir("buddy-ttl");
  fixture f(dir, 200ms);
  auto c = f.client();
  run(f.io, [&]() -> asio::awaitable<void> {
    co_await alice_with_buddy_bob(c);
    REQUIRE(c.set_status("bob", buddy::presence::online, 4000));
    // The address is known only from that SET; OFFLINE with it means the SET
    // arrived and then expired.
    CHECK(co_await eventually([&]() -> asio::awaitable<bool> {
      auto list = co_await c.get_buddies("alice");
      co_return list && list->size() == 1 &&
          (*list)[0] == buddy::buddy_entry{"bob", buddy::presence::offline, "127.0.0.1", 4000};
    }));
  });
}

// A SET datagram that repeats, byte for byte and from the same host, the one
// that set the status shown is a refresh known without reading it
// (datagram_cache.hpp); any other datagram is read. The first one again
// after a change, or after the same status in other words, must be read.
TEST_CASE("buddy_server: a repeated SET datagram refreshes only the status it set") {
  temp_dir dir("buddy-repeat");
  fixture f(dir);
  auto c = f.client();
  asio::ip::udp::socket raw(f.io, asio::ip::udp::v4());
  const asio::ip::udp::endpoint server(asio::ip::make_address("127.0.0.1"),
                                       f.server->udp_endpoint().port());
  auto send = [&](std::string_view d) { raw.send_to(asio::buffer(d.data(), d.size()), server); };
  auto shows = [&](buddy::presence status, std::uint16_t port) {
    return eventually([&, status, port]() -> asio::awaitable<bool> {
      auto list = co_await c.get_buddies("alice");
      co_return list && list->size() == 1 &&
          (*list)[0] == buddy::buddy_entry{"bob", status, "127.0.0.1", port};
    });
  };
  const std::string online = "SET bob 100 4000";
  run(f.io, [&]() -> asio::awaitable<void> {
    co_await alice_with_buddy_bob(c);
    send(online);
    send(online);
    CHECK(co_await shows(buddy::presence::online, 4000));
    send("SET bob 101 4000");
    CHECK(co_await shows(buddy::presence::offline, 4000));
    send(online);  // the status shown is not its own any more
    CHECK(co_await shows(buddy::presence::online, 4000));
    send("SET bob ONLINE 4000");  // the same status in other words
    send(online);
    send("SET bob 100 4001");
    CHECK(co_await shows(buddy::presence::online, 4001));
    send(online);
    CHECK(co_await shows(buddy::presence::online, 4000));
    send("SET bob 101 4000");
    send("SET bob 100  4000");  // two blanks: read whole, the same status again
    send(online);
    CHECK(co_await shows(buddy::presence::online, 4000));
    send("SET bob OFFLINE 4000");
    CHECK(co_await shows(buddy::presence::offline, 4000));
  });
}

TEST_CASE("buddy_server: users and buddy lists survive a restart on the same directory") {
  temp_dir dir("buddy-restart");
  fixture f(dir);
  {
    auto c = f.client();
    run(f.io, [&]() -> asio::awaitable<void> {
      co_await alice_with_buddy_bob(c);
      CHECK(co_await c.add_buddy("bob", "alice"));
      CHECK(co_await c.delete_buddy("bob", "alice"));
    });
  }
  f.stop();
  f.start(dir, 300s);
  CHECK(f.server->user_count() == 2);
  auto c = f.client();
  run(f.io, [&]() -> asio::awaitable<void> {
    auto alice = co_await c.get_buddies("alice");
    REQUIRE(alice);
    REQUIRE(alice->size() == 1);
    CHECK((*alice)[0].user == "bob");
    auto bob = co_await c.get_buddies("bob");
    REQUIRE(bob);
    CHECK(bob->empty());
    auto again = co_await c.register_user("alice");
    REQUIRE_FALSE(again);
    CHECK(again.error() == errc::name_taken);
  });
}

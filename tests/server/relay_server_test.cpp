// relay_server in process, driven over loopback by raw sockets that speak
// the wire through the relay codec, so each test sees the exact messages.

#include <doctest/doctest.h>

#include <array>
#include <asio/buffer.hpp>
#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <memory>
#include <string>
#include <utility>

#include "improto/relay/codes.hpp"
#include "improto/relay/decoder.hpp"
#include "improto/relay/messages.hpp"
#include "improto/server/relay_server.hpp"
#include "relay_peer.hpp"
#include "server_support.hpp"

using namespace improto;
using namespace std::chrono_literals;
using server_test::eventually;
using server_test::peer;
using server_test::register_user;
using server_test::user;
using server_test::run;

namespace {

struct fixture {
  asio::io_context io;
  std::unique_ptr<server::relay_server> server;
  std::uint16_t port = 0;

  explicit fixture(server::relay_config config = {}) {
    config.port = 0;
    auto s = server::relay_server::bind(io, std::move(config));
    REQUIRE(s);
    server = std::move(*s);
    server->start();
    port = server->local_endpoint().port();
  }
  ~fixture() {
    server->stop();
    io.run_for(100ms);  // lets the closes go out
  }
};

relay::message error_reply(int code) { return relay::error_for(code); }

}  // namespace

TEST_CASE("relay_server: registration on both sockets, bad and taken names") {
  fixture f;
  run(f.io, [&]() -> asio::awaitable<void> {
    CHECK(f.server->user_count() == 0);
    auto alice = co_await register_user(f.port, "alice");
    CHECK(f.server->user_count() == 1);

    peer bad(co_await asio::this_coro::executor);
    co_await bad.connect(f.port);
    bad.write(relay::register_request{relay::role::to_send, "al ice"});
    co_await bad.next();
    CHECK(bad.last() == error_reply(relay::codes::malformed_username));

    peer taken(co_await asio::this_coro::executor);
    co_await taken.connect(f.port);
    taken.write(relay::register_request{relay::role::to_send, "alice"});
    co_await taken.next();
    CHECK(taken.last() == error_reply(relay::codes::username_taken));

    // SEND before REGISTER.
    peer anonymous(co_await asio::this_coro::executor);
    co_await anonymous.connect(f.port);
    anonymous.write(relay::send{"alice", "hi"});
    co_await anonymous.next();
    CHECK(anonymous.last() == error_reply(relay::codes::no_user_registered));
  });
}

TEST_CASE("relay_server: SEND -> FORWARD -> RECEIVED -> SENT, and to nobody ERROR 102") {
  fixture f;
  run(f.io, [&]() -> asio::awaitable<void> {
    auto alice = co_await register_user(f.port, "alice");
    auto bob = co_await register_user(f.port, "bob");

    alice.send->write(relay::send{"bob", "hello\nbob"});
    co_await bob.recv->next();
    CHECK(bob.recv->last() == relay::message(relay::forward{"alice", "hello\nbob"}));
    bob.recv->write(relay::received{"alice"});
    co_await alice.send->next();
    CHECK(alice.send->last() == relay::message(relay::sent{"bob"}));

    alice.send->write(relay::send{"nobody", "x"});
    co_await alice.send->next();
    CHECK(alice.send->last() == error_reply(relay::codes::unable_to_send));

    // Pipelined: answered in order, the failure between two deliveries.
    alice.send->write_raw(
        "SEND bob\nContent-length: 1\n\naSEND carol\nContent-length: 1\n\nbSEND bob\n"
        "Content-length: 1\n\nc");
    co_await bob.recv->next();
    CHECK(bob.recv->last() == relay::message(relay::forward{"alice", "a"}));
    co_await bob.recv->next();
    CHECK(bob.recv->last() == relay::message(relay::forward{"alice", "c"}));
    bob.recv->write_raw("RECEIVED alice\n\nRECEIVED alice\n\n");
    co_await alice.send->next();
    CHECK(alice.send->last() == relay::message(relay::sent{"bob"}));
    co_await alice.send->next();
    CHECK(alice.send->last() == error_reply(relay::codes::unable_to_send));
    co_await alice.send->next();
    CHECK(alice.send->last() == relay::message(relay::sent{"bob"}));
  });
}

TEST_CASE("relay_server: a receiver that does not answer gets the sender ERROR 102") {
  server::relay_config config;
  config.receiver_timeout = 200ms;
  fixture f(config);
  run(f.io, [&]() -> asio::awaitable<void> {
    auto alice = co_await register_user(f.port, "alice");
    auto bob = co_await register_user(f.port, "bob");
    alice.send->write(relay::send{"bob", "are you there?"});
    co_await bob.recv->next();
    CHECK(bob.recv->last() == relay::message(relay::forward{"alice", "are you there?"}));
    // bob says nothing: the timeout answers for him.
    co_await alice.send->next();
    CHECK(alice.send->last() == error_reply(relay::codes::unable_to_send));
  });
}

TEST_CASE("relay_server: SEND ALL reaches every other user, SENT ALL once all answered") {
  fixture f;
  run(f.io, [&]() -> asio::awaitable<void> {
    auto alice = co_await register_user(f.port, "alice");
    // Alone: answered at once.
    alice.send->write(relay::send{"ALL", "anyone?"});
    co_await alice.send->next();
    CHECK(alice.send->last() == relay::message(relay::sent{"ALL"}));

    auto bob = co_await register_user(f.port, "bob");
    auto carol = co_await register_user(f.port, "carol");
    alice.send->write(relay::send{"ALL", "hi all"});
    co_await bob.recv->next();
    CHECK(bob.recv->last() == relay::message(relay::forward{"alice", "hi all"}));
    co_await carol.recv->next();
    CHECK(carol.recv->last() == relay::message(relay::forward{"alice", "hi all"}));
    bob.recv->write(relay::received{"alice"});
    carol.recv->write(relay::received{"alice"});
    co_await alice.send->next();
    CHECK(alice.send->last() == relay::message(relay::sent{"ALL"}));

    // One receiver refusing turns the broadcast into ERROR 102.
    alice.send->write(relay::send{"ALL", "again"});
    co_await bob.recv->next();
    CHECK(bob.recv->last() == relay::message(relay::forward{"alice", "again"}));
    co_await carol.recv->next();
    CHECK(carol.recv->last() == relay::message(relay::forward{"alice", "again"}));
    bob.recv->write(relay::received{"alice"});
    carol.recv->write(error_reply(relay::codes::unable_to_send));
    co_await alice.send->next();
    CHECK(alice.send->last() == error_reply(relay::codes::unable_to_send));
  });
}

TEST_CASE("relay_server: presence subscribers hear JOINED and LEFT") {
  fixture f;
  run(f.io, [&]() -> asio::awaitable<void> {
    auto alice = co_await register_user(f.port, "alice");
    alice.send->write(relay::subscribe{});
    co_await alice.send->next();
    CHECK(alice.send->last() == relay::message(relay::subscribed{}));

    auto carol = co_await register_user(f.port, "carol");
    co_await alice.recv->next();
    CHECK(alice.recv->last() == relay::message(relay::joined{"carol"}));
    CHECK(f.server->user_count() == 2);

    carol.recv->close();
    co_await alice.recv->next();
    CHECK(alice.recv->last() == relay::message(relay::left{"carol"}));
    CHECK(co_await eventually([&]() -> asio::awaitable<bool> {
      co_return f.server->user_count() == 1;
    }));

    alice.send->write(relay::unsubscribe{});
    co_await alice.send->next();
    CHECK(alice.send->last() == relay::message(relay::unsubscribed{}));
    auto dave = co_await register_user(f.port, "dave");
    // No JOINED for dave: the next thing alice's receive socket gets is a FORWARD.
    dave.send->write(relay::send{"alice", "x"});
    co_await alice.recv->next();
    CHECK(alice.recv->last() == relay::message(relay::forward{"dave", "x"}));
  });
}

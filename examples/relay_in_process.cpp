// A relay server and two clients on one io_context: alice sends bob a
// message and waits for the end-to-end acknowledgement.

#include <improto/client/relay_client.hpp>
#include <improto/server/relay_server.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <iostream>

using namespace improto;

int main() {
  asio::io_context io;
  server::relay_config config;
  config.port = 0;  // any free port
  auto relay = server::relay_server::bind(io, config);
  if (!relay) {
    std::cerr << "cannot start the relay: " << relay.error().message() << "\n";
    return 1;
  }
  (*relay)->start();
  auto port = (*relay)->local_endpoint().port();

  int status = 1;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    client::relay_events bob_events;
    bob_events.on_message = [](std::string_view from, std::string_view body) {
      std::cout << "bob got '" << body << "' from " << from << "\n";
    };
    auto bob = co_await client::relay_client::connect("127.0.0.1", port, "bob", bob_events);
    auto alice = co_await client::relay_client::connect("127.0.0.1", port, "alice", {});
    if (!bob || !alice) {
      std::cerr << "cannot connect: " << (!bob ? bob.error() : alice.error()).message() << "\n";
      (*relay)->stop();
      co_return;
    }
    std::string to = "bob", text = "hello from alice";
    auto sent = co_await (*alice)->send(to, text);
    std::cout << (sent ? "delivered" : "failed: " + sent.error().message()) << "\n";
    status = sent ? 0 : 1;
    (*alice)->close();
    (*bob)->close();
    (*relay)->stop();
  }, asio::detached);
  io.run();
  return status;
}

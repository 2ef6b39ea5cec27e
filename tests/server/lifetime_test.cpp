// Servers destroyed with work in flight, in the three ways an embedder can
// end them: (a) destroyed without stop() while the io_context runs on,
// (b) stop(), destroyed, then the io_context run again, (c) destroyed, then
// the io_context destroyed without running. None may touch freed memory or
// leak (run under ASan + LeakSanitizer), and every client sees its
// connection end. Clients are blocking sockets on the test's thread, so the
// server's io_context runs only when the test drives it.

#include <doctest/doctest.h>

#include <sys/socket.h>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "improto/server/buddy_server.hpp"
#include "improto/server/registry_server.hpp"
#include "improto/server/relay_server.hpp"
#include "server_support.hpp"

using namespace improto;
using namespace std::chrono_literals;

namespace {

enum class ending { destroy_running, stop_destroy_rerun, destroy_unrun };

const char* name_of(ending e) {
  switch (e) {
    case ending::destroy_running: return "destroyed while the io_context runs on";
    case ending::stop_destroy_rerun: return "stopped, destroyed, io_context run again";
    case ending::destroy_unrun: return "destroyed, then the io_context destroyed unrun";
  }
  return "";
}

// A blocking client socket; reads never block (the server must be driven).
struct client {
  asio::io_context cio;
  asio::ip::tcp::socket socket{cio};
  std::string in;
  bool eof = false;

  explicit client(std::uint16_t port) {
    socket.connect({asio::ip::make_address("127.0.0.1"), port});
  }
  void send(std::string_view bytes) { asio::write(socket, asio::buffer(bytes)); }
  // Takes in what has arrived; true when `text` has.
  bool has(std::string_view text) {
    poll();
    return in.find(text) != std::string::npos;
  }
  void poll() {
    char buf[4096];
    while (!eof) {
      auto n = ::recv(socket.native_handle(), buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        in.append(buf, static_cast<std::size_t>(n));
      } else {
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) eof = true;
        break;
      }
    }
  }
  // Once the server's side is gone, the stream ends (bounded wait).
  bool ended() {
    auto until = std::chrono::steady_clock::now() + 30s;
    while (!eof && std::chrono::steady_clock::now() < until) {
      poll();
      if (!eof) ::usleep(1000);
    }
    return eof;
  }
};

// Runs `io` until `condition` holds (bounded: a generous limit, not timing).
template <class Condition>
bool drive(asio::io_context& io, Condition condition) {
  auto until = std::chrono::steady_clock::now() + 30s;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > until) return false;
    if (io.stopped()) io.restart();
    io.run_one_for(5ms);
  }
  return true;
}

// Ends the server as `how` says; afterwards every client's stream has ended
// and, where the io_context ran, it ran out of work (nothing left behind).
template <class Server>
void end_server(std::unique_ptr<asio::io_context>& io, std::unique_ptr<Server>& server,
                ending how, std::vector<client*> clients) {
  switch (how) {
    case ending::destroy_running:
      server.reset();
      break;
    case ending::stop_destroy_rerun:
      server->stop();
      io->run_for(1ms);  // stopped mid-flight: completions stay queued
      server.reset();
      break;
    case ending::destroy_unrun:
      server.reset();
      io.reset();
      break;
  }
  if (io) {
    io->restart();
    // Everything the server started ends: run() returns by running out of work.
    io->run_for(60s);
    CHECK_MESSAGE(io->stopped(), "work left on the io_context after the server was destroyed");
  }
  for (auto* c : clients) CHECK(c->ended());
  io.reset();
}

constexpr ending endings[] = {ending::destroy_running, ending::stop_destroy_rerun,
                              ending::destroy_unrun};

}  // namespace

TEST_CASE("relay_server destroyed with sessions, FORWARDs, pairing and a download in flight") {
  server_test::temp_dir dir("lifetime-relay");
  {
    std::ofstream f(dir.path / "big.bin", std::ios::binary);
    std::string block(64 * 1024, 'x');
    for (int i = 0; i < 64; ++i) f << block;  // 4 MiB: the download outlives the test's steps
  }
  for (auto how : endings) {
    CAPTURE(name_of(how));
    auto io = std::make_unique<asio::io_context>();
    server::relay_config config;
    config.port = 0;
    config.files.dir = dir.path.string();
    auto bound = server::relay_server::bind(*io, config);
    REQUIRE(bound);
    auto server = std::move(*bound);
    server->start();
    auto port = server->local_endpoint().port();

    client a_send(port), a_recv(port), b_send(port), b_recv(port), lone(port);
    a_send.send("REGISTER TOSEND alice\n\n");
    REQUIRE(drive(*io, [&] { return a_send.has("REGISTERED TOSEND alice"); }));
    a_recv.send("REGISTER TORECV alice\n\n");
    b_send.send("REGISTER TOSEND bob\n\n");
    b_recv.send("REGISTER TORECV bob\n\n");
    lone.send("REGISTER TOSEND carol\n\n");  // its pairing timer runs
    REQUIRE(drive(*io, [&] {
      return a_recv.has("REGISTERED TORECV alice") && b_send.has("REGISTERED TOSEND bob") &&
             b_recv.has("REGISTERED TORECV bob") && lone.has("REGISTERED TOSEND carol");
    }));
    // A FORWARD bob does not answer: alice's SENT is owed, its timer armed.
    a_send.send("SEND bob\nContent-length: 2\n\nhi");
    REQUIRE(drive(*io, [&] { return b_recv.has("FORWARD alice"); }));
    // A download into a UDP socket that never reads: the link keeps going.
    asio::ip::udp::socket sink(a_send.cio, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    b_send.send("DOWNLOAD big.bin\nUdp-port: " + std::to_string(sink.local_endpoint().port()) +
                "\nOffset: 0\n\n");
    REQUIRE(drive(*io, [&] { return b_send.has("TRANSFER "); }));
    CHECK(server->connection_count() == 5);

    end_server(io, server, how, {&a_send, &a_recv, &b_send, &b_recv, &lone});
  }
}

TEST_CASE("registry_server destroyed with idle connections and commits in flight") {
  for (auto how : endings) {
    CAPTURE(name_of(how));
    server_test::temp_dir dir("lifetime-registry");
    auto io = std::make_unique<asio::io_context>();
    server::registry_config config;
    config.port = 0;
    config.data_dir = dir.path;
    auto bound = server::registry_server::bind(*io, config);
    REQUIRE(bound);
    auto server = std::move(*bound);
    server->start();
    auto port = server->local_endpoint().port();

    client idle(port), writer(port), reader(port);
    std::string body = "REGISTER alice@127.0.0.1:5000";
    std::string post = "POST /userlist.txt HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n\r\n" + body;
    writer.send(post);
    REQUIRE(drive(*io, [&] { return writer.has("200 OK"); }));
    reader.send("GET /userlist.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(drive(*io, [&] { return reader.has("alice@127.0.0.1:5000"); }));
    // The silent client is accepted once the kernel stops deferring it
    // (registry_config::defer_accept, 1 s: the first SYN-ACK retransmission).
    auto connected = std::chrono::steady_clock::now();
    REQUIRE(drive(*io, [&] { return server->connection_count() == 3; }));
    CHECK(std::chrono::steady_clock::now() - connected < 10s);
    // The next write is handed to the committer as the server goes.
    std::string body2 = "REGISTER bob@127.0.0.1:5001";
    writer.send("POST /userlist.txt HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                std::to_string(body2.size()) + "\r\n\r\n" + body2);
    REQUIRE(drive(*io, [&] { return server->pending_writes() > 0; }));
    CHECK(server->connection_count() == 3);

    end_server(io, server, how, {&idle, &writer, &reader});
  }
}

TEST_CASE("buddy_server destroyed with a request half read and one being committed") {
  for (auto how : endings) {
    CAPTURE(name_of(how));
    server_test::temp_dir dir("lifetime-buddy");
    auto io = std::make_unique<asio::io_context>();
    server::buddy_config config;
    config.tcp_port = 0;
    config.udp_port = 0;
    config.data_dir = dir.path;
    auto bound = server::buddy_server::bind(*io, config);
    REQUIRE(bound);
    auto server = std::move(*bound);
    server->start();
    auto port = server->tcp_endpoint().port();

    client reg(port);
    reg.send("REG alice\r\n");
    REQUIRE(drive(*io, [&] { return reg.has("200 OK") && reg.eof; }));
    client half(port), committing(port);
    half.send("ADD ali");
    committing.send("REG bob\r\n");
    // The UDP side answers too, before the end.
    asio::ip::udp::socket udp(reg.cio, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    std::string get = "GET nobody\r\n";  // answered 202 (alice's empty list would be an empty datagram)
    udp.send_to(asio::buffer(get), server->udp_endpoint());
    std::size_t available = 0;
    REQUIRE(drive(*io, [&] {
      available = udp.available();
      // `committing` may have had its answer already; `half` waits.
      return available > 0 && server->connection_count() >= 1;
    }));

    end_server(io, server, how, {&half, &committing});
  }
}

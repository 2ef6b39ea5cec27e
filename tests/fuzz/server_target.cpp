// libFuzzer target that drives an in-process server with arbitrary bytes:
// built three times (IMPROTO_FUZZ_SERVER = 1 registry, 2 relay, 3 buddy TCP
// and UDP) as fuzz_<protocol>_server, linked against the whole library.
//
// The server is bound once on 127.0.0.1 port 0 and served by an io_context
// that runs on the fuzzer's own thread (the registry and buddy commit
// threads post back to it). For each input:
//  * connect, write the input in one to four chunks cut at points derived
//    from the input (letting the server read each chunk before the next),
//    half-close, and read until the server closes;
//  * invariants: no sanitizer report; the server closes the half-closed
//    connection within a generous deadline; then it has no connection left
//    (and, for the relay, no user, since users live only as long as their
//    sockets; for the registry, no write still queued);
//  * every 64 inputs, and after an input that left state behind, a fresh
//    well-formed request on a new connection gets a well-formed answer;
//  * buddy: the same chunks also go to the UDP side, each twice (a repeated
//    SET takes the refresh cache's path), then a GET from another socket
//    must be answered.
// State carries over between inputs (the registry and buddy stores grow), so
// a crash may need the inputs before it; the stores live in a directory
// under /dev/shm (or $TMPDIR) with synchronous=off, and are wiped and
// reopened whenever they pass max_users, which bounds both memory and disk.
// Any violation prints what happened and aborts, so libFuzzer keeps the input.

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <asio/buffer.hpp>
#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#if IMPROTO_FUZZ_SERVER == 1
#include "improto/server/registry_server.hpp"
#elif IMPROTO_FUZZ_SERVER == 2
#include "improto/server/relay_server.hpp"
#elif IMPROTO_FUZZ_SERVER == 3
#include "improto/server/buddy_server.hpp"
#else
#error "define IMPROTO_FUZZ_SERVER to 1 (registry), 2 (relay) or 3 (buddy)"
#endif

using namespace improto;
using namespace std::chrono_literals;
using asio::ip::tcp;

namespace {

// Long enough never to fire on a loaded machine unless the server is stuck.
constexpr auto deadline = 20s;
constexpr std::size_t check_every = 64;
// Small values reopen often, which exercises destroying a server while the
// io_context runs on (docs/fuzzing.md: -DIMPROTO_FUZZ_MAX_USERS=3).
#ifdef IMPROTO_FUZZ_MAX_USERS
constexpr std::size_t max_users = IMPROTO_FUZZ_MAX_USERS;
#else
constexpr std::size_t max_users = 2000;
#endif

[[noreturn]] void violated(const std::string& what) {
  std::fprintf(stderr, "fuzz_server: %s\n", what.c_str());
  std::abort();
}

#if IMPROTO_FUZZ_SERVER == 1
using server_type = server::registry_server;
constexpr const char* tag = "registry";
std::unique_ptr<server_type> make_server(asio::io_context& io, const std::filesystem::path& dir) {
  server::registry_config c;
  c.port = 0;
  c.data_dir = dir;
  c.store.synchronous = store::sync_level::off;  // durability is not what this checks
  auto s = server_type::bind(io, c);
  if (!s) violated("bind: " + s.error().message());
  return std::move(*s);
}
tcp::endpoint endpoint_of(const server_type& s) { return s.local_endpoint(); }
bool settled(const server_type& s) { return s.connection_count() == 0 && s.pending_writes() == 0; }
std::size_t users(const server_type& s) { return s.user_count(); }
std::string probe(std::size_t) { return "GET /userlist.txt HTTP/1.1\r\nConnection: close\r\n\r\n"; }
// The list, or 400 when it is empty; never a server error.
bool answer_ok(std::string_view a, std::size_t) {
  return a.size() >= 12 && a.substr(0, 9) == "HTTP/1.1 " && (a.substr(9, 3) == "200" || a.substr(9, 3) == "400");
}
#elif IMPROTO_FUZZ_SERVER == 2
using server_type = server::relay_server;
constexpr const char* tag = "relay";
std::unique_ptr<server_type> make_server(asio::io_context& io, const std::filesystem::path&) {
  server::relay_config c;
  c.port = 0;
  auto s = server_type::bind(io, c);
  if (!s) violated("bind: " + s.error().message());
  return std::move(*s);
}
tcp::endpoint endpoint_of(const server_type& s) { return s.local_endpoint(); }
// Users live only as long as their sockets.
bool settled(const server_type& s) { return s.connection_count() == 0 && s.user_count() == 0; }
std::size_t users(const server_type&) { return 0; }
std::string probe(std::size_t n) { return "REGISTER TOSEND fuzzprobe" + std::to_string(n) + "\n\n"; }
bool answer_ok(std::string_view a, std::size_t n) {
  return a.starts_with("REGISTERED TOSEND fuzzprobe" + std::to_string(n) + "\n");
}
#else
using server_type = server::buddy_server;
constexpr const char* tag = "buddy";
std::unique_ptr<server_type> make_server(asio::io_context& io, const std::filesystem::path& dir) {
  server::buddy_config c;
  c.tcp_port = 0;
  c.udp_port = 0;
  c.data_dir = dir;
  c.store.synchronous = store::sync_level::off;
  // Every datagram comes from one address, far over the per-source limit.
  c.datagram.rate_per_source = 0;
  auto s = server_type::bind(io, c);
  if (!s) violated("bind: " + s.error().message());
  return std::move(*s);
}
tcp::endpoint endpoint_of(const server_type& s) { return s.tcp_endpoint(); }
bool settled(const server_type& s) { return s.connection_count() == 0; }
std::size_t users(const server_type& s) { return s.user_count(); }
std::string probe(std::size_t n) { return "REG fuzzprobe" + std::to_string(n) + "\n"; }
// Registered now or by an earlier input (the store keeps names).
bool answer_ok(std::string_view a, std::size_t) {
  return a.starts_with("200 OK") || a.starts_with("203 USER EXISTS");
}
#endif

struct state {
  // One io_context for the whole run, outliving every server: see reopen().
  asio::io_context io;
  std::filesystem::path dir;
  std::unique_ptr<server_type> srv;
  std::size_t inputs = 0;
  std::size_t probes = 0;

  state() {
    std::filesystem::path base = std::filesystem::exists("/dev/shm") ? std::filesystem::path("/dev/shm")
                                                                      : std::filesystem::temp_directory_path();
    dir = base / ("improto-fuzz-" + std::string(tag) + "-" + std::to_string(::getpid()));
    reopen();
  }
  ~state() {
    srv.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  // A fresh store: keeps the lists (and so each GET) small and the disk use
  // bounded. The old server is stopped, drained and destroyed while the
  // io_context runs on: its completions still queued (the accept cancelled
  // by stop()) run on the next turns, on state their coroutines own (this
  // target found them resuming on freed memory, see docs/fuzzing.md).
  void reopen() {
    if (srv) {
      srv->stop();
      run_until([&] { return settled(*srv); }, "connections left after stop()");
      srv.reset();
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    std::filesystem::create_directories(dir);
    srv = make_server(io, dir);
    srv->start();
  }

  template <class Done>
  void run_until(Done done, const char* what) {
    auto until = std::chrono::steady_clock::now() + deadline;
    while (!done()) {
      if (std::chrono::steady_clock::now() > until) violated(what);
      if (io.stopped()) io.restart();  // it ran out of work between servers
      io.run_one_for(10ms);
    }
  }
};

state& the_state() {
  static state s;
  return s;
}

// Sends `chunks`, half-closes, and returns everything the server sent until
// it closed (capped: what matters is that it ends).
std::string converse(state& st, const std::vector<std::string_view>& chunks) {
  // Asynchronous calls throughout: libFuzzer's SIGALRM (its -timeout timer)
  // interrupts blocking ones with EINTR.
  tcp::socket sock(st.io);
  std::optional<std::error_code> done;
  sock.async_connect(endpoint_of(*st.srv), [&](std::error_code e) { done = e; });
  st.run_until([&] { return done.has_value(); }, "connect did not complete");
  if (*done) violated("connect: " + done->message());
  for (auto chunk : chunks) {
    done.reset();
    asio::async_write(sock, asio::buffer(chunk.data(), chunk.size()),
                      [&](std::error_code e, std::size_t) { done = e; });
    st.run_until([&] { return done.has_value(); }, "a write did not complete");
    // An error means the server already closed (a sticky decode error): fine.
    if (*done) break;
    // Let the server read this chunk before the next one arrives.
    while (st.io.poll() > 0) {
    }
  }
  std::error_code ec;
  sock.shutdown(tcp::socket::shutdown_send, ec);

  std::string answer;
  bool closed = false;
  char buf[16 * 1024];
  std::function<void()> read_more = [&] {
    sock.async_read_some(asio::buffer(buf), [&](std::error_code e, std::size_t n) {
      if (answer.size() < (1u << 20)) answer.append(buf, n);
      if (e) {
        closed = true;
        return;
      }
      read_more();
    });
  };
  read_more();
  auto until = std::chrono::steady_clock::now() + deadline;
  while (!closed) {
    if (std::chrono::steady_clock::now() > until) {
      violated("the server did not close a half-closed connection within the deadline");
    }
    st.io.run_one_for(10ms);
  }
  return answer;
}

// One to four chunks, cut where a hash of the input says.
std::vector<std::string_view> cut(std::string_view input) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : input) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  std::vector<std::string_view> out;
  std::size_t pieces = 1 + static_cast<std::size_t>(h & 3);
  std::size_t at = 0;
  for (std::size_t i = 1; i < pieces && at < input.size(); ++i) {
    h = h * 6364136223846793005ULL + 1442695040888963407ULL;
    std::size_t len = static_cast<std::size_t>((h >> 33) % (input.size() - at + 1));
    out.push_back(input.substr(at, len));
    at += len;
  }
  out.push_back(input.substr(at));
  return out;
}

#if IMPROTO_FUZZ_SERVER == 3
// Each chunk as a datagram, twice, then a GET from another socket: its
// answer (any: the probe user may not exist) shows the datagram loop lives.
void send_datagrams(state& st, const std::vector<std::string_view>& chunks) {
  using asio::ip::udp;
  const udp::endpoint to(asio::ip::make_address_v4("127.0.0.1"), st.srv->udp_endpoint().port());
  std::error_code ec;
  udp::socket fuzz(st.io, udp::v4());
  fuzz.non_blocking(true, ec);
  for (int round = 0; round < 2; ++round) {
    // Best effort: a full buffer drops one, which the server cannot tell.
    for (auto chunk : chunks) fuzz.send_to(asio::buffer(chunk.data(), chunk.size()), to, 0, ec);
  }
  udp::socket probe(st.io, udp::v4());
  probe.non_blocking(true, ec);
  const std::string get = "GET fuzzprobe0";
  // Non-blocking: libFuzzer's SIGALRM would interrupt a blocking call.
  auto until = std::chrono::steady_clock::now() + deadline;
  do {
    probe.send_to(asio::buffer(get), to, 0, ec);
  } while ((ec == asio::error::would_block || ec == asio::error::interrupted) &&
           std::chrono::steady_clock::now() < until);
  if (ec) violated("sending the UDP probe: " + ec.message());
  char buf[2048];
  udp::endpoint from;
  std::optional<std::error_code> done;
  probe.async_receive_from(asio::buffer(buf), from, [&](std::error_code e, std::size_t) { done = e; });
  st.run_until([&] { return done.has_value(); }, "no answer to a GET over UDP after fuzz datagrams");
  if (*done) violated("receiving the UDP probe's answer: " + done->message());
}
#endif

void check_probe(state& st) {
  std::size_t n = st.probes++;
  std::string request = probe(n);
  std::string answer = converse(st, {std::string_view(request)});
  if (!answer_ok(answer, n)) {
    violated("a well-formed request after fuzz input got: " + answer.substr(0, 200));
  }
  st.run_until([&] { return settled(*st.srv); }, "the probe's connection did not settle");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::signal(SIGPIPE, SIG_IGN);
  the_state();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  state& st = the_state();
  std::string_view input = size == 0 ? std::string_view()
                                     : std::string_view(reinterpret_cast<const char*>(data), size);
  const auto chunks = cut(input);
  converse(st, chunks);
#if IMPROTO_FUZZ_SERVER == 3
  send_datagrams(st, chunks);
#endif
  // The client side is closed: every connection must go, along with what
  // lives only as long as a connection.
  st.run_until([&] { return settled(*st.srv); },
               "connections (or relay users, or registry writes) left after the client closed");
  if (++st.inputs % check_every == 0) check_probe(st);
  if (users(*st.srv) > max_users) {
    check_probe(st);
    st.reopen();
  }
  return 0;
}

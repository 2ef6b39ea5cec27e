#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <cstring>
#include <optional>
#include <vector>

#include "improto/net/transfer.hpp"

using namespace improto;

namespace {

using transfer::memory_source;

std::vector<char> pattern(std::size_t n) {
  std::vector<char> v(n);
  std::uint32_t x = 12345;
  for (auto& c : v) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  return v;
}

struct outcome {
  std::optional<result<void>> sender, receiver;
  std::vector<char> got;
};

// Runs one loopback transfer of `data` from `offset`; `during` may act on
// the receiver link once the first bytes arrived.
outcome run(const std::vector<char>& data, std::uint64_t offset, bool gso, std::size_t dgram,
            std::function<void(net::transfer_link&)> during = {}) {
  asio::io_context io;
  auto lo = asio::ip::make_address("127.0.0.1");
  net::transfer_link_options opts;
  opts.gso = gso;
  opts.linger = std::chrono::milliseconds(50);
  auto snd = net::transfer_link::open(io.get_executor(), lo, opts);
  auto rcv = net::transfer_link::open(io.get_executor(), lo, opts);
  REQUIRE(snd);
  REQUIRE(rcv);
  if (!gso) CHECK_FALSE((*snd)->gso_in_use());
  outcome out;
  transfer::sender_config sc;
  sc.id = 7;
  sc.size = data.size();
  sc.offset = offset;
  sc.datagram_size = dgram;
  transfer::receiver_config rc;
  rc.id = 7;
  rc.key = 0x0123456789abcdefull;
  rc.size = data.size();
  rc.offset = offset;
  REQUIRE((*snd)->start_sender({lo, (*rcv)->local_port()}, sc,
                               std::make_unique<memory_source>(data),
                               [&](result<void> r) { out.sender = std::move(r); }));
  bool acted = false;
  auto link = *rcv;
  REQUIRE(link->start_receiver(
      {lo, (*snd)->local_port()}, rc,
      [&](std::span<const char> b) {
        out.got.insert(out.got.end(), b.begin(), b.end());
        return result<void>{};
      },
      [&] {
        if (during && !acted) {
          acted = true;
          during(*link);
        }
      },
      [&](result<void> r) { out.receiver = std::move(r); }));
  // Bounded: the engines time out after 30 s of silence at worst.
  io.run_for(std::chrono::seconds(60));
  return out;
}

}  // namespace

TEST_CASE("transfer_link moves a file over loopback, with and without GSO") {
  auto data = pattern(3 * 1024 * 1024 + 17);
  for (bool gso : {true, false}) {
    CAPTURE(gso);
    auto o = run(data, 0, gso, transfer::default_datagram);
    REQUIRE(o.sender);
    REQUIRE(o.receiver);
    CHECK(*o.sender);
    CHECK(*o.receiver);
    CHECK(o.got == data);
  }
}

TEST_CASE("transfer_link: large datagrams and a resumed offset") {
  auto data = pattern(2 * 1024 * 1024 + 5);
  const std::uint64_t offset = 1'000'001;
  auto o = run(data, offset, true, transfer::max_datagram);
  REQUIRE(o.receiver);
  CHECK(*o.receiver);
  CHECK(o.got == std::vector<char>(data.begin() + offset, data.end()));
}

TEST_CASE("transfer_link: a receiver's cancel ends both sides as cancelled") {
  auto data = pattern(64 * 1024 * 1024);
  auto o = run(data, 0, true, transfer::default_datagram,
               [](net::transfer_link& l) { l.cancel(); });
  REQUIRE(o.receiver);
  REQUIRE(o.sender);
  REQUIRE_FALSE(*o.receiver);
  REQUIRE_FALSE(*o.sender);
  CHECK(o.receiver->error() == errc::cancelled);
  CHECK(o.sender->error() == errc::cancelled);
  CHECK(o.got.size() < data.size());
}

TEST_CASE("transfer_link: a failing sink aborts the transfer with its error") {
  auto data = pattern(8 * 1024 * 1024);
  asio::io_context io;
  auto lo = asio::ip::make_address("127.0.0.1");
  auto snd = net::transfer_link::open(io.get_executor(), lo);
  auto rcv = net::transfer_link::open(io.get_executor(), lo);
  REQUIRE(snd);
  REQUIRE(rcv);
  std::optional<result<void>> s_done, r_done;
  transfer::sender_config sc;
  sc.id = 9;
  sc.size = data.size();
  transfer::receiver_config rc;
  rc.id = 9;
  rc.key = 42;
  rc.size = data.size();
  REQUIRE((*snd)->start_sender({lo, (*rcv)->local_port()}, sc,
                               std::make_unique<memory_source>(data),
                               [&](result<void> r) { s_done = std::move(r); }));
  REQUIRE((*rcv)->start_receiver(
      {lo, (*snd)->local_port()}, rc,
      [](std::span<const char>) -> result<void> { return fail(errc::io_error, "disk full"); },
      {}, [&](result<void> r) { r_done = std::move(r); }));
  io.run_for(std::chrono::seconds(60));
  REQUIRE(r_done);
  REQUIRE(s_done);
  CHECK(r_done->error() == errc::io_error);
  CHECK(s_done->error() == errc::io_error);
}

// Path MTU: a connected socket's route says how large a datagram may be
// without fragments; the sender fills it up to its configured size.
TEST_CASE("transfer_link sizes the sender's datagrams to the path MTU") {
  struct row {
    const char* address;
    bool path_mtu;
    std::size_t configured, expected;
  };
  // Loopback's MTU is 65,536: IPv4 carries 65,508 bytes of UDP payload
  // (the wire caps at 65,507), IPv6 65,488.
  for (auto r : {row{"127.0.0.1", true, transfer::max_datagram, transfer::max_datagram},
                 row{"127.0.0.1", true, 1232, 1232},
                 row{"127.0.0.1", false, transfer::max_datagram, transfer::max_datagram},
                 row{"::1", true, transfer::max_datagram, 65'536 - 40 - 8}}) {
    CAPTURE(r.address);
    CAPTURE(r.path_mtu);
    asio::io_context io;
    auto addr = asio::ip::make_address(r.address);
    net::transfer_link_options opts;
    opts.path_mtu = r.path_mtu;
    auto snd = net::transfer_link::open(io.get_executor(), addr, opts);
    auto peer = net::transfer_link::open(io.get_executor(), addr, opts);
    if (!snd && addr.is_v6()) {
      MESSAGE("no IPv6 loopback: " << snd.error().message());
      continue;
    }
    REQUIRE(snd);
    REQUIRE(peer);
    std::vector<char> data(1000, 'x');
    transfer::sender_config sc;
    sc.id = 7;
    sc.size = data.size();
    sc.datagram_size = r.configured;
    REQUIRE((*snd)->start_sender({addr, (*peer)->local_port()}, sc,
                                 std::make_unique<memory_source>(data), [](result<void>) {}));
    REQUIRE((*snd)->sender());
    CHECK((*snd)->sender()->datagram_size() == r.expected);
    (*snd)->close();
    (*peer)->close();
    io.run_for(std::chrono::seconds(1));
  }
}

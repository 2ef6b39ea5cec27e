// The sender and receiver over the simulated link: every run ends with the
// same bytes (SHA-256 compared) or a clean error on both sides, and the
// receiver never holds more than its window.

#include <doctest/doctest.h>

#include "improto/transfer/decoder.hpp"
#include "improto/transfer/engine.hpp"
#include "sim.hpp"

namespace tr = improto::transfer;
using improto::errc;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t id = 7;
constexpr std::uint64_t key = 0x5eed5eed12345678;

struct setup {
  std::size_t size = 3 << 20;
  std::uint64_t offset = 0;
  std::size_t window = 1 << 20;
  std::size_t datagram = tr::default_datagram;
  sim::link_config down{};
  sim::link_config up{};
  std::uint64_t seed = 1;
  sim::hooks hooks{};
};

struct outcome {
  sim::run_result run;
  tr::stats sender_stats;
  tr::stats receiver_stats;
  std::string expected;
};

outcome transfer(setup s) {
  std::string file = sim::random_bytes(s.size, s.seed);
  sim::memory_source source(file);
  auto snd = tr::sender::create(
      {.id = id, .key = 0, .size = s.size, .offset = s.offset, .datagram_size = s.datagram}, source);
  REQUIRE(snd.has_value());
  auto rcv = tr::receiver::create(
      {.id = id, .key = key, .size = s.size, .offset = s.offset, .window = s.window});
  REQUIRE(rcv.has_value());
  sim::simulation link(s.down, s.up, s.seed);
  outcome o;
  o.run = link.run(*snd, *rcv, s.window, s.hooks);
  o.sender_stats = snd->stats();
  o.receiver_stats = rcv->stats();
  o.expected = file.substr(s.offset);
  return o;
}

void check_identical(const outcome& o) {
  INFO("sender error: " << (o.run.sender_error ? o.run.sender_error->message() : "none"));
  INFO("receiver error: " << (o.run.receiver_error ? o.run.receiver_error->message() : "none"));
  REQUIRE(o.run.receiver_complete);
  REQUIRE(o.run.sender_complete);
  CHECK(o.run.received.size() == o.expected.size());
  CHECK(sim::hex_sha256(o.run.received) == sim::hex_sha256(o.expected));
}

double seconds(tr::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

TEST_CASE("memory_source reads inside its bytes and fails past them, offset overflow included") {
  const std::string bytes = "0123456789";
  tr::memory_source source(bytes);
  std::string out(4, '\0');
  REQUIRE(source.read(6, out));
  CHECK(out == "6789");
  CHECK(source.read(10, std::span<char>(out.data(), 0)));
  CHECK(source.read(7, out).error().code() == improto::errc::io_error);
  CHECK(source.read(11, std::span<char>(out.data(), 0)).error().code() == improto::errc::io_error);
  CHECK(source.read(~std::uint64_t{0} - 1, out).error().code() == improto::errc::io_error);
}

TEST_CASE("clean link: the file arrives whole, at the link's rate") {
  auto o = transfer({});
  check_identical(o);
  // Slow start overfills the bottleneck's queue once; nothing else is lost,
  // so every retransmission must answer a datagram the queue dropped.
  CHECK(o.sender_stats.bytes_retransmitted <= o.run.queue_drops * tr::default_datagram);
  CHECK(o.run.max_buffered <= (1u << 20));
  double goodput = static_cast<double>(o.expected.size()) / seconds(o.run.elapsed);
  MESSAGE("clean: " << seconds(o.run.elapsed) << " s, " << goodput / 1e6 << " MB/s");
  CHECK(goodput > 0.7 * 12.5e6 * (tr::default_datagram - tr::data_header_size) /
                      tr::default_datagram);
}

// Path-MTU sizing: on loopback the transport sends 64 KiB datagrams. The
// window counts bytes (the receiver's) and segments (CUBIC's), so a few
// large datagrams fill it as many small ones do: the run must keep the
// fast path's rate with ~50x fewer datagrams and no loss.
TEST_CASE("64 KiB datagrams (loopback's MTU): whole file, fast, few datagrams") {
  const sim::link_config fast{.delay = 50us, .rate = 1.25e9, .queue = 8 << 20};
  auto o = transfer({.size = 32 << 20, .window = 4 << 20, .datagram = tr::max_datagram,
                     .down = fast, .up = fast});
  check_identical(o);
  CHECK(o.run.max_buffered <= (4u << 20));
  const std::size_t payload = tr::max_datagram - tr::data_header_size;
  const std::size_t needed = ((32u << 20) + payload - 1) / payload;
  CHECK(o.sender_stats.datagrams_sent <= needed + 2);  // + the FIN, maybe a probe
  CHECK(o.sender_stats.bytes_retransmitted == 0);
  // At most one ACK per two datagrams in order, plus the opening and FIN's.
  CHECK(o.receiver_stats.datagrams_sent <= needed / 2 + 8);
  double goodput = static_cast<double>(o.expected.size()) / seconds(o.run.elapsed);
  MESSAGE("64 KiB datagrams: " << seconds(o.run.elapsed) * 1e3 << " ms, " << goodput / 1e6
                               << " MB/s");
  CHECK(goodput > 0.5 * 1.25e9);
}

// The route's MTU drops to 1,500 mid-transfer: the next 64 KiB datagrams
// fail (EMSGSIZE), the transport shrinks the sender's datagrams, and the
// bytes of the refused ones go again in 1,472-byte pieces.
TEST_CASE("route MTU drops mid-transfer: datagrams shrink, the file arrives whole") {
  constexpr std::size_t mtu_payload = 1500 - 20 - 8;
  sim::link_config down{.delay = 100us, .rate = 1.25e9, .queue = 8 << 20,
                        .mtu = mtu_payload, .mtu_from = tr::time_point{} + 1s + 5ms};
  const sim::link_config up{.delay = 100us, .rate = 1.25e9, .queue = 8 << 20};
  int shrinks = 0;
  sim::hooks h;
  h.too_large = [&](tr::time_point, tr::sender& s) {
    if (s.datagram_size() > mtu_payload) {
      REQUIRE(s.set_datagram_size(mtu_payload).has_value());
      ++shrinks;
    }
  };
  auto o = transfer({.size = 16 << 20, .window = 4 << 20, .datagram = tr::max_datagram,
                     .down = down, .up = up, .hooks = h});
  check_identical(o);
  CHECK(shrinks == 1);
  CHECK(o.run.too_large > 0);
  CHECK(o.run.largest_after_mtu <= mtu_payload);
  // Large datagrams went before the drop (else the test proves nothing).
  CHECK(o.sender_stats.datagrams_sent < (16u << 20) / 1000);
  CHECK(o.sender_stats.bytes_retransmitted >= o.run.too_large * 1000);
  MESSAGE("MTU drop: " << o.run.too_large << " datagrams refused, " << o.sender_stats.timeouts
                       << " timeouts, " << seconds(o.run.elapsed) * 1e3 << " ms");
}

TEST_CASE("set_datagram_size refuses sizes the wire cannot carry") {
  std::string file(100, 'x');
  sim::memory_source source(file);
  auto s = tr::sender::create({.id = 1, .size = 100, .datagram_size = tr::max_datagram}, source);
  REQUIRE(s.has_value());
  CHECK(s->set_datagram_size(tr::data_header_size).error().code() == errc::invalid_config);
  CHECK(s->set_datagram_size(tr::max_datagram + 1).error().code() == errc::invalid_config);
  CHECK(s->datagram_size() == tr::max_datagram);
  auto mss_before = s->congestion_window() / (tr::max_datagram - tr::data_header_size);
  REQUIRE(s->set_datagram_size(1232).has_value());
  CHECK(s->datagram_size() == 1232);
  // The window keeps its segments.
  CHECK(s->congestion_window() / (1232 - tr::data_header_size) == mss_before);
}

TEST_CASE("random loss 1% and 10%, bursts, reordering, duplication, jitter") {
  struct named {
    const char* name;
    sim::link_config down;
    sim::link_config up;
  };
  std::vector<named> links{
      {"1% loss both ways", {.loss = 0.01}, {.loss = 0.01}},
      {"10% loss both ways", {.loss = 0.10}, {.loss = 0.10}},
      {"bursts of 20 lost", {.burst_start = 0.002, .burst_length = 20}, {}},
      {"reordering 5%", {.reorder = 0.05}, {.reorder = 0.05}},
      {"duplication 5%", {.duplicate = 0.05}, {.duplicate = 0.05}},
      {"jitter 0-4 ms", {.delay = 10ms, .jitter = 4ms}, {.delay = 10ms, .jitter = 4ms}},
      {"everything", {.loss = 0.02, .burst_start = 0.001, .burst_length = 8, .duplicate = 0.02,
                      .reorder = 0.02, .jitter = 2ms},
       {.loss = 0.02, .duplicate = 0.02, .jitter = 2ms}},
  };
  for (const auto& l : links) {
    for (std::uint64_t seed : {1u, 2u}) {
      CAPTURE(l.name);
      CAPTURE(seed);
      auto o = transfer({.size = 1 << 20, .window = 256 << 10, .down = l.down, .up = l.up,
                         .seed = seed});
      check_identical(o);
      CHECK(o.run.max_buffered <= (256u << 10));
      CHECK(o.run.max_in_flight <= (256u << 10));
    }
  }
}

// The path: 100 Mbit/s, 2 ms RTT, a 128 KiB queue. CUBIC is loss-based: its
// Reno-friendly window at 1% random loss is about sqrt(1.5 / p) = 12
// datagrams, so the 2x bound holds on paths whose bandwidth-delay product is
// some tens of datagrams (LANs, loopback), as here; on long fat paths random
// loss costs more.
TEST_CASE("goodput at 1% loss stays within 2x of the loss-free run") {
  auto clean = transfer({.size = 4 << 20, .window = 4 << 20});
  check_identical(clean);
  auto lossy = transfer({.size = 4 << 20, .window = 4 << 20, .down = {.loss = 0.01},
                         .up = {.loss = 0.01}, .seed = 3});
  check_identical(lossy);
  double ratio = seconds(lossy.run.elapsed) / seconds(clean.run.elapsed);
  MESSAGE("clean " << seconds(clean.run.elapsed) << " s, 1% loss " << seconds(lossy.run.elapsed)
                   << " s, ratio " << ratio);
  CHECK(ratio < 2.0);
}

// A receiver that ACKs a whole burst of datagrams at once (as a transport
// reading them in one recvmmsg does) leaves the sender nothing to learn from
// when that one ACK is lost: without a probe it waits for the 200 ms RTO and
// restarts from one segment. Here ACKs are lost in bursts on a fast short
// path (a veth pair, loopback); the tail loss probes must win back most of
// that time.
TEST_CASE("tail loss probes: lost ACK bursts cost a few RTTs, not RTOs") {
  for (std::uint64_t seed : {1u, 2u}) {
    CAPTURE(seed);
    auto run = [&](bool tlp) {
      std::size_t size = 4 << 20;
      std::string file = sim::random_bytes(size, seed);
      sim::memory_source source(file);
      auto snd = tr::sender::create({.id = id, .key = 0, .size = size, .tail_loss_probe = tlp},
                                    source);
      REQUIRE(snd.has_value());
      auto rcv = tr::receiver::create({.id = id, .key = key, .size = size, .window = 4 << 20});
      REQUIRE(rcv.has_value());
      sim::simulation link({.loss = 0.01, .delay = 50us, .rate = 1e9, .queue = 1 << 20},
                           {.burst_start = 0.01, .burst_length = 8, .delay = 50us, .rate = 1e9,
                            .queue = 1 << 20},
                           seed);
      auto r = link.run(*snd, *rcv, 4 << 20);
      REQUIRE(r.sender_complete);
      REQUIRE(r.receiver_complete);
      CHECK(sim::hex_sha256(r.received) == sim::hex_sha256(file));
      return std::tuple{seconds(r.elapsed), snd->stats().timeouts, snd->stats().probes};
    };
    auto [with, timeouts_with, probes] = run(true);
    auto [without, timeouts_without, no_probes] = run(false);
    MESSAGE("with TLP " << with << " s (" << timeouts_with << " RTOs, " << probes
                        << " probes), without " << without << " s (" << timeouts_without
                        << " RTOs)");
    CHECK(no_probes == 0);
    CHECK(probes > 0);
    CHECK(timeouts_with <= timeouts_without);
    CHECK(with < 0.8 * without);
  }
}

TEST_CASE("large datagrams up to the 64 KiB cap") {
  auto o = transfer({.size = 2 << 20, .window = 1 << 20, .datagram = tr::max_datagram,
                     .down = {.loss = 0.01, .queue = 1 << 20}});
  check_identical(o);
}

TEST_CASE("a paused reader stops the sender; memory stays within the window") {
  bool reading = false;
  sim::hooks h;
  h.reader = [&](tr::time_point now, std::size_t n) {
    reading = now >= tr::time_point{} + 3s;  // nothing read for two seconds
    return reading ? std::min<std::size_t>(n, 4096) : 0;  // then a slow reader
  };
  auto o = transfer({.size = 2 << 20, .window = 128 << 10, .hooks = h});
  check_identical(o);
  CHECK(o.run.max_buffered == (128u << 10));  // filled up to the window, never past it
}

TEST_CASE("pause and resume on both sides; the idle timer sleeps meanwhile") {
  sim::hooks h;
  bool paused = false;
  bool resumed = false;
  h.step = [&](tr::time_point now, tr::sender& s, tr::receiver& r) {
    if (!paused && r.received() > (512u << 10)) {
      r.pause();
      s.pause();
      paused = true;
      CHECK(s.state() == tr::state::paused);
    }
    if (paused && !resumed && now > tr::time_point{} + 70s) {  // past the idle timeout
      r.resume(now);
      s.resume(now);
      resumed = true;
    }
  };
  auto o = transfer({.hooks = h});
  CHECK(paused);
  CHECK(resumed);
  check_identical(o);
  CHECK(seconds(o.run.elapsed) > 69);
}

TEST_CASE("a 3 s blackout: the RTO backs off, the transfer recovers") {
  tr::time_point from = tr::time_point{} + 1s + 100ms;
  tr::time_point to = from + 3s;
  std::vector<tr::time_point> expiries;
  sim::hooks h;
  std::uint64_t seen = 0;
  h.step = [&](tr::time_point now, tr::sender& s, tr::receiver&) {
    if (s.stats().timeouts > seen) {
      seen = s.stats().timeouts;
      expiries.push_back(now);
    }
  };
  auto o = transfer({.down = {.blackout_from = from, .blackout_to = to},
                     .up = {.blackout_from = from, .blackout_to = to}, .hooks = h});
  check_identical(o);
  // RFC 6298 (5.5): each expiry doubles the timeout, so the gaps between
  // expiries during the blackout at least double (the step hook sees them
  // within 10 ms).
  REQUIRE(expiries.size() >= 3);
  std::string gaps;
  for (std::size_t i = 1; i < expiries.size(); ++i) {
    gaps += std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                               expiries[i] - expiries[i - 1])
                               .count()) +
            " ms ";
  }
  MESSAGE("retransmission timeouts " << expiries.size() << ", gaps " << gaps);
  for (std::size_t i = 2; i < expiries.size() && expiries[i] < to; ++i) {
    auto before = expiries[i - 1] - expiries[i - 2];
    auto gap = expiries[i] - expiries[i - 1];
    CHECK(gap >= before * 2 - 20ms);
  }
  CHECK(o.run.elapsed < 3s + 3s);  // back within one backed-off RTO of the end
}

TEST_CASE("cancel on either side ends both with `cancelled`") {
  for (bool by_receiver : {true, false}) {
    CAPTURE(by_receiver);
    sim::hooks h;
    h.step = [&](tr::time_point, tr::sender& s, tr::receiver& r) {
      if (r.received() > (256u << 10)) {
        if (by_receiver) r.cancel(); else s.cancel();
      }
    };
    auto o = transfer({.hooks = h});
    REQUIRE(o.run.sender_error.has_value());
    REQUIRE(o.run.receiver_error.has_value());
    CHECK(o.run.sender_error->code() == errc::cancelled);
    CHECK(o.run.receiver_error->code() == errc::cancelled);
    CHECK(o.run.received.size() < o.expected.size());
  }
}

TEST_CASE("resume a broken transfer from the last verified offset") {
  // First attempt: the link dies after about a third of the file.
  const std::size_t size = 2 << 20;
  std::string file = sim::random_bytes(size, 9);
  sim::memory_source source(file);
  std::string kept;
  {
    auto snd = tr::sender::create({.id = id, .size = size}, source);
    auto rcv = tr::receiver::create({.id = id, .key = key, .size = size,
                                     .idle_timeout = 5s});
    REQUIRE(snd);
    REQUIRE(rcv);
    sim::simulation link({.burst_start = 0, .burst_length = 0}, {}, 4);
    sim::hooks h;
    h.reader = [&](tr::time_point, std::size_t n) { return n; };
    std::uint64_t cut = 0;
    h.step = [&](tr::time_point, tr::sender& s, tr::receiver& r) {
      if (!cut && r.received() > size / 3) cut = 1;
      if (cut) {  // the path is gone: nothing gets through any more
        s.pause();
      }
    };
    auto o = link.run(*snd, *rcv, 4 << 20, h);
    REQUIRE(o.receiver_error.has_value());
    CHECK(o.receiver_error->code() == errc::timeout);
    kept = o.received;
  }
  REQUIRE(kept.size() > size / 3);
  REQUIRE(kept.size() < size);
  CHECK(kept == file.substr(0, kept.size()));
  // Second attempt: DOWNLOAD with Offset = what was kept (a new id and key).
  auto snd = tr::sender::create({.id = 8, .size = size, .offset = kept.size()}, source);
  auto rcv = tr::receiver::create({.id = 8, .key = 99, .size = size, .offset = kept.size()});
  REQUIRE(snd);
  REQUIRE(rcv);
  sim::simulation link({.loss = 0.01}, {}, 5);
  auto o = link.run(*snd, *rcv, 4 << 20);
  REQUIRE(rcv->finished());
  CHECK(sim::hex_sha256(kept + o.received) == sim::hex_sha256(file));
  CHECK(snd->stats().bytes_sent >= size - kept.size());
  CHECK(snd->stats().bytes_sent < size - kept.size() / 2);  // not from the start again
}

TEST_CASE("empty file and a resume with nothing left: FIN only") {
  for (auto [size, offset] : {std::pair<std::size_t, std::uint64_t>{0, 0}, {5000, 5000}}) {
    auto o = transfer({.size = size, .offset = offset});
    check_identical(o);
    CHECK(o.sender_stats.bytes_sent == 0);
  }
}

TEST_CASE("forged and corrupt datagrams are dropped; the transfer completes") {
  sim::hooks h;
  auto at = [](int ms) { return tr::time_point{} + 1s + std::chrono::milliseconds(ms); };
  auto bytes = [](const tr::datagram& d) { return *tr::serialize(d); };
  std::string evil(1000, 'X');
  for (int i = 0; i < 50; ++i) {
    // Wrong key: data that would corrupt the file, a FIN, an ABORT.
    h.to_receiver.push_back({at(i * 5), bytes(tr::data{{id, key + 1}, 0, evil})});
    h.to_receiver.push_back({at(i * 5 + 1), bytes(tr::abort{{id, key ^ 1}, tr::abort_reason::cancelled})});
    h.to_receiver.push_back({at(i * 5 + 2), bytes(tr::fin{{id, 1}, 3 << 20, 0})});
    // Wrong id, garbage, truncated.
    h.to_receiver.push_back({at(i * 5 + 3), bytes(tr::data{{id + 1, key}, 0, evil})});
    h.to_receiver.push_back({at(i * 5 + 4), std::string("\x01\x01garbage")});
    // To the sender: ACKs of everything with a wrong key, a bad SACK, an ABORT.
    h.to_sender.push_back({at(i * 5 + 50), bytes(tr::ack{{id, key + 2}, 3 << 20, 1 << 20, 0, true, {}})});
    h.to_sender.push_back({at(i * 5 + 51), std::string("\x01\x02\x00\x00\x00\x07 short")});
    h.to_sender.push_back({at(i * 5 + 52), bytes(tr::abort{{id, 12345}, tr::abort_reason::io_error})});
  }
  auto o = transfer({.hooks = h});
  check_identical(o);
  CHECK(o.receiver_stats.dropped >= 250);
  CHECK(o.sender_stats.dropped >= 100);
}

TEST_CASE("bit flips on the link: identical bytes, a detected mismatch, or a clean error") {
  // UDP's checksum would catch most of these; the protocol must cope with
  // the rest. A flipped header bit makes a stranger's datagram (dropped); a
  // flipped offset or payload bit gives wrong bytes that the end-to-end
  // SHA-256 (and the FIN's last byte) reveal; an impossible field ends the
  // transfer with a typed error. Never a hang, never silent corruption.
  int identical = 0;
  int detected = 0;
  int errors = 0;
  sim::hooks untrusted;
  untrusted.trust_acks = false;
  for (std::uint64_t seed = 1; seed <= 12; ++seed) {
    CAPTURE(seed);
    auto o = transfer({.size = 512 << 10, .window = 256 << 10, .down = {.corrupt = 0.002},
                       .up = {.corrupt = 0.002}, .seed = seed, .hooks = untrusted});
    if (o.run.sender_error || o.run.receiver_error) {
      ++errors;
      continue;
    }
    REQUIRE(o.run.receiver_complete);
    bool same = sim::hex_sha256(o.run.received) == sim::hex_sha256(o.expected);
    if (o.run.corrupted == 0) CHECK(same);
    if (same) {
      ++identical;
    } else {
      ++detected;  // part_file::finish() answers hash_mismatch here
    }
  }
  MESSAGE(identical << " identical, " << detected << " caught by the hash, " << errors
                    << " clean errors");
  CHECK(identical + detected + errors == 12);
  CHECK(identical > 0);
}

TEST_CASE("authenticated nonsense ends both sides with a clean error") {
  SUBCASE("DATA past the end of the file") {
    sim::hooks h;
    h.to_receiver.push_back(
        {tr::time_point{} + 1s + 20ms, *tr::serialize(tr::data{{id, key}, 3 << 20, "x"})});
    auto o = transfer({.hooks = h});
    REQUIRE(o.run.receiver_error.has_value());
    CHECK(o.run.receiver_error->code() == errc::invalid_argument);
    REQUIRE(o.run.sender_error.has_value());
    CHECK(o.run.sender_error->code() == errc::invalid_argument);  // told by the ABORT
  }
  SUBCASE("an ACK of bytes never sent") {
    sim::hooks h;
    h.to_sender.push_back({tr::time_point{} + 1s + 20ms,
                           *tr::serialize(tr::ack{{id, key}, 3 << 20, 1 << 20, 0, false, {}})});
    auto o = transfer({.hooks = h});
    REQUIRE(o.run.sender_error.has_value());
    CHECK(o.run.sender_error->code() == errc::invalid_argument);
    REQUIRE(o.run.receiver_error.has_value());
  }
  SUBCASE("a FIN whose last byte differs") {
    sim::hooks h;
    bool sent = false;
    h.step = [&](tr::time_point now, tr::sender&, tr::receiver& r) {
      if (!sent && r.received() == (3u << 20)) {
        sent = true;
        r.on_datagram(*tr::serialize(tr::fin{{id, key}, 3 << 20, 0}), now);
        r.on_datagram(*tr::serialize(tr::fin{{id, key}, 3 << 20, 1}), now);
      }
    };
    auto o = transfer({.hooks = h});
    REQUIRE(o.run.receiver_error.has_value());
    CHECK(o.run.receiver_error->code() == errc::hash_mismatch);
  }
}

TEST_CASE("a vanished receiver: the sender times out, nothing else") {
  std::string file = sim::random_bytes(1 << 20, 1);
  sim::memory_source source(file);
  auto snd = tr::sender::create({.id = id, .size = file.size()}, source);
  REQUIRE(snd);
  std::vector<char> buf(tr::max_datagram);
  auto now = tr::time_point{} + 1s;
  CHECK(snd->poll_transmit(now, buf) == 0);  // waits for the opening ACK
  auto deadline = snd->next_deadline();
  REQUIRE(deadline);
  CHECK(*deadline == now + 30s);
  CHECK(snd->poll_transmit(*deadline, buf) == 0);
  REQUIRE(snd->failure().has_value());
  CHECK(snd->failure()->code() == errc::timeout);
}

TEST_CASE("configuration errors") {
  std::string file;
  sim::memory_source source(file);
  CHECK(tr::sender::create({.id = 0}, source).error().code() == errc::invalid_config);
  CHECK(tr::sender::create({.id = 1, .size = 5, .offset = 6}, source).error().code() ==
        errc::invalid_config);
  CHECK(tr::sender::create({.id = 1, .datagram_size = 22}, source).error().code() ==
        errc::invalid_config);
  CHECK(tr::sender::create({.id = 1, .datagram_size = 65508}, source).error().code() ==
        errc::invalid_config);
  CHECK(tr::receiver::create({.id = 1, .key = 0}).error().code() == errc::invalid_config);
  CHECK(tr::receiver::create({.id = 1, .key = 1, .window = 0}).error().code() ==
        errc::invalid_config);
}

// engine_cost: the transfer engine's own work per datagram, without sockets,
// for callgrind (instruction counts do not move with the machine's load).
//
//   engine_cost [MiB=64] [datagram=1472] [window=4194304]
//   valgrind --tool=callgrind --callgrind-out-file=cg.out build-bench/bin/engine_cost 32
//   callgrind_annotate --inclusive=yes cg.out | grep -E 'sender::|receiver::'
//
// A sender and a receiver joined back to back, as the transport drives them
// on a clean path: the sender fills a batch (up to 64 datagrams), the
// receiver takes them, consumes its bytes (as the file layer would, without
// the disk) and answers with its ACKs; a virtual clock moves 20 us a turn.
// Prints the datagram counts and exits non-zero unless the file arrived
// whole, so a broken engine cannot report a cheap run.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "improto/transfer/engine.hpp"

namespace tr = improto::transfer;

namespace {

using tr::memory_source;

}  // namespace

int main(int argc, char** argv) {
  const std::size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 64;
  const std::size_t datagram = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1472;
  const std::size_t window = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : (4u << 20);
  const std::size_t size = mib << 20;
  std::string file(size, '\0');
  std::uint64_t x = 0x9e3779b97f4a7c15;
  for (auto& c : file) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  memory_source source(file);
  auto snd =
      tr::sender::create({.id = 7, .key = 0, .size = size, .datagram_size = datagram}, source);
  auto rcv = tr::receiver::create({.id = 7, .key = 0x5eed, .size = size, .window = window});
  if (!snd || !rcv) {
    std::fprintf(stderr, "engine_cost: %s\n",
                 (!snd ? snd.error() : rcv.error()).message().c_str());
    return 2;
  }
  tr::time_point now{};
  std::vector<char> batch(64 * datagram);
  std::vector<std::size_t> sizes;
  std::vector<char> ack(tr::default_datagram);
  std::string got;
  got.reserve(size);
  std::uint64_t turns = 0;
  while (!rcv->finished() && turns < 100'000'000) {
    ++turns;
    now += std::chrono::microseconds(20);
    while (std::size_t n = rcv->poll_transmit(now, ack)) {
      snd->on_datagram(std::string_view(ack.data(), n), now);
    }
    sizes.clear();
    std::size_t used = 0;
    while (sizes.size() < 64) {
      std::span<char> room(batch.data() + used, batch.size() - used);
      std::size_t n = snd->poll_transmit(now, room);
      if (n == 0) break;
      sizes.push_back(n);
      used += n;
    }
    used = 0;
    for (std::size_t n : sizes) {
      rcv->on_datagram(std::string_view(batch.data() + used, n), now);
      used += n;
    }
    for (auto bytes = rcv->readable(); !bytes.empty(); bytes = rcv->readable()) {
      got.append(bytes.data(), bytes.size());
      rcv->consume(bytes.size());
    }
  }
  // The FIN's ACK, so that the sender completes too.
  for (int i = 0; i < 4 && snd->state() != tr::state::complete; ++i) {
    now += std::chrono::microseconds(20);
    while (std::size_t n = snd->poll_transmit(now, batch)) {
      rcv->on_datagram(std::string_view(batch.data(), n), now);
    }
    while (std::size_t n = rcv->poll_transmit(now, ack)) {
      snd->on_datagram(std::string_view(ack.data(), n), now);
    }
  }
  bool whole = got == file && snd->state() == tr::state::complete;
  std::printf("%zu MiB in %zu-byte datagrams: %llu DATA sent, %llu ACKs, %llu turns, %s\n", mib,
              datagram, static_cast<unsigned long long>(snd->stats().datagrams_sent),
              static_cast<unsigned long long>(rcv->stats().datagrams_sent),
              static_cast<unsigned long long>(turns), whole ? "whole" : "NOT WHOLE");
  return whole ? 0 : 1;
}

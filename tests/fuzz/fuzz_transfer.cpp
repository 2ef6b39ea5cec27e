// libFuzzer target for protocol 4's UDP part (datagrams and the engine).
//
// Invariant: any bytes parse to a datagram or a typed error, never a crash or
// a read out of bounds; whatever parses serializes back to the same bytes.
// The input is then cut into datagrams (a length byte before each) and fed to
// a receiver and a sender of one transfer, interleaved with their own
// poll_transmit() and a clock that moves on: they drop what is not theirs,
// end at most with a typed error, and the receiver never holds more than its
// window.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "improto/transfer/decoder.hpp"
#include "improto/transfer/engine.hpp"

using namespace improto;

namespace {

[[noreturn]] void die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_transfer: %s: %s\n", what, detail.c_str());
  std::abort();
}

class zero_source final : public transfer::data_source {
 public:
  result<void> read(std::uint64_t, std::span<char> out) override {
    for (auto& c : out) c = 'z';
    return {};
  }
};

void check_parse(std::string_view bytes) {
  auto d = transfer::parse_datagram(bytes);
  if (!d) return;
  auto again = transfer::serialize(*d);
  if (!again) die("parsed datagram does not serialize", transfer::describe(*d));
  if (*again != bytes) die("round trip changed the bytes", transfer::describe(*d));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check_parse(bytes);

  // Ids and keys the vectors use, so seeded inputs reach the engine's paths.
  constexpr std::uint32_t id = 7;
  constexpr std::uint64_t key = 0x0123456789abcdef;
  constexpr std::size_t window = 8192;
  zero_source source;
  auto snd = transfer::sender::create({.id = id, .size = 20000}, source);
  auto rcv = transfer::receiver::create({.id = id, .key = key, .size = 20000, .window = window});
  if (!snd || !rcv) die("create", "failed");
  std::vector<char> buf(transfer::max_datagram);
  auto now = transfer::time_point{} + std::chrono::seconds(1);
  std::string_view rest = bytes;
  bool to_sender = false;
  while (!rest.empty()) {
    std::size_t n = std::min<std::size_t>(static_cast<unsigned char>(rest[0]), rest.size() - 1);
    std::string_view d = rest.substr(1, n);
    rest.remove_prefix(1 + n);
    check_parse(d);
    if (to_sender) {
      snd->on_datagram(d, now);
    } else {
      rcv->on_datagram(d, now);
    }
    to_sender = !to_sender;
    // Each side's own output goes to the other, as on a perfect link.
    for (int i = 0; i < 64; ++i) {
      std::size_t k = snd->poll_transmit(now, buf);
      if (k == 0) break;
      rcv->on_datagram(std::string_view(buf.data(), k), now);
    }
    for (int i = 0; i < 64; ++i) {
      std::size_t k = rcv->poll_transmit(now, buf);
      if (k == 0) break;
      snd->on_datagram(std::string_view(buf.data(), k), now);
    }
    if (auto span = rcv->readable(); !span.empty()) rcv->consume(span.size() / 2 + 1);
    if (rcv->buffered() > window) die("receiver over its window", std::to_string(rcv->buffered()));
    for (auto* e : {&snd->failure(), &rcv->failure()}) {
      if (*e && std::string(name((*e)->code())) == "unknown") die("untyped error", (*e)->message());
    }
    now += std::chrono::milliseconds(n % 64);
  }
  return 0;
}

// libFuzzer target for the relay decoder (protocols 3 and 4).
//
// Invariant, for both directions: any bytes give typed errors or messages,
// never a crash or a read out of bounds, and never more buffered than the
// limits allow. Decoding the input whole, one byte at a time and cut at
// pseudo-random points (chunks.hpp), each in a fresh decoder that goes on
// after non-sticky errors and stops at a sticky one, gives the same sequence
// of describe() lines and the same final error (end of stream included),
// under small limits and under the defaults. Every decoded message passes
// check(), and its serialization decodes, whole and alone, to the same
// describe() line (under the same limits but for one more byte per line:
// the canonical bytes may be a little longer than the received ones, e.g.
// `After:x` becomes `After: x`). next_view() (whole, cut and byte by byte)
// gives what next() gives, with the fast path for whole SEND/FORWARD
// messages, and no view reaches past the bytes it consumed.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "chunks.hpp"
#include "improto/relay/codes.hpp"
#include "improto/relay/decoder.hpp"

using namespace improto;

namespace {

// Small limits reach the limit paths with small inputs.
constexpr wire::limits fuzz_limits{.max_line = 64, .max_headers = 8, .max_body = 256};

[[noreturn]] void die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_relay: %s: %s\n", what, detail.c_str());
  std::abort();
}

struct run {
  std::vector<std::string> lines;
  std::vector<relay::message> messages;
  bool stopped = false;  // a sticky error ended decoding
  bool recycle = false;  // hand each message back (decoder::recycle) instead of keeping it
  bool views = false;    // decode with next_view() (its one-pass path included)
};

void take(relay::decoder& d, wire::decode_result<relay::message> r, run& out) {
  if (!r) {
    out.lines.push_back("error " + std::string(name(r.error().code())));
    out.stopped = d.failed();
    return;
  }
  if (*r) {
    out.lines.push_back(relay::describe(**r));
    if (out.recycle) {
      d.recycle(std::move(**r));
    } else {
      out.messages.push_back(std::move(**r));
    }
  }
}

// next_view()'s answer as next() would give it. A SEND or FORWARD view
// must point into the chunk or the decoder, never at bytes already handed on.
wire::decode_result<relay::message> through_view(relay::decoder& d, std::string_view& chunk) {
  const std::string_view given = chunk;
  auto r = d.next_view(chunk);
  if (!r) return tl::unexpected<error>(r.error());
  if (!*r) return std::nullopt;
  const relay::message_view& v = **r;
  if (v.kind == relay::view_kind::other) {
    if (v.other == nullptr) die("other view without a message", "");
  } else if (!v.body.empty() && v.body.data() >= given.data() &&
             v.body.data() < given.data() + given.size() &&
             v.body.data() + v.body.size() > chunk.data()) {
    die("view body runs past the bytes consumed", relay::describe(v.to_message()));
  }
  return wire::decode_result<relay::message>(tl::in_place, v.to_message());
}

void feed(relay::decoder& d, std::string_view chunk, run& out) {
  // A non-sticky error consumes its message, so this loop ends; a decoder
  // that did not would show up as a fuzzer timeout.
  while (!out.stopped) {
    auto r = out.views ? through_view(d, chunk) : d.next(chunk);
    bool need_more = r && !*r;
    take(d, std::move(r), out);
    if (need_more) {
      if (!chunk.empty()) die("need more with input left", std::to_string(chunk.size()));
      return;
    }
  }
}

void finish(relay::decoder& d, run& out) {
  if (out.stopped) return;
  take(d, d.finish(), out);
}

run decode(const std::vector<std::string_view>& chunks, relay::direction dir, wire::limits lim,
           bool recycle = false, bool views = false) {
  relay::decoder d(dir, lim);
  run out;
  out.recycle = recycle;
  out.views = views;
  for (std::size_t i = 0; i < chunks.size() && !out.stopped; ++i) feed(d, chunks[i], out);
  finish(d, out);
  return out;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

// Re-decoded under the limits it was decoded with, widened by what the
// canonical form may add: a byte per line (`After:x` becomes `After: x`).
void round_trip(const relay::message& m, relay::direction dir, wire::limits lim) {
  std::string text = relay::describe(m);
  lim.max_line += 1;
  std::string bytes;
  if (auto ok = relay::serialize(m, bytes, lim); !ok) {
    die("decoded message fails serialize()", text + ": " + ok.error().message());
  }
  relay::decoder d(dir, lim);
  std::string_view in(bytes);
  auto r = d.next(in);
  if (!r) die("re-encoded message does not decode", text + ": " + r.error().message());
  if (!*r) die("re-encoded message is incomplete", text);
  if (!in.empty()) die("re-encoded message leaves bytes", text);
  if (relay::describe(**r) != text) die("round trip changed", text + " -> " + relay::describe(**r));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes = size == 0 ? std::string_view()
                                     : std::string_view(reinterpret_cast<const char*>(data), size);
  const auto whole = fuzz::whole(bytes);
  const auto bytewise = fuzz::bytewise(bytes);
  const auto cut = fuzz::random_cuts(bytes, 3);
  for (auto dir : {relay::direction::to_server, relay::direction::to_client}) {
    for (wire::limits lim : {fuzz_limits, wire::limits{}}) {
      run a = decode(whole, dir, lim);
      // Byte by byte (the costliest run) under the small limits only, where
      // every limit is in reach.
      if (lim.max_line == fuzz_limits.max_line) {
        run b = decode(bytewise, dir, lim);
        if (a.lines != b.lines) {
          die("whole and byte-by-byte differ", joined(a.lines) + "---\n" + joined(b.lines));
        }
        run bv = decode(bytewise, dir, lim, false, true);
        if (a.lines != bv.lines) {
          die("next() and next_view() byte by byte differ",
              joined(a.lines) + "---\n" + joined(bv.lines));
        }
      }
      run av = decode(whole, dir, lim, false, true);
      if (a.lines != av.lines) {
        die("next() and next_view() differ", joined(a.lines) + "---\n" + joined(av.lines));
      }
      run cv = decode(cut, dir, lim, false, true);
      if (a.lines != cv.lines) {
        die("next() and next_view() randomly cut differ",
            joined(a.lines) + "---\n" + joined(cv.lines));
      }
      // Recycling: a message decoded into the strings of the one before
      // must not keep anything of it.
      run c = decode(cut, dir, lim, true);
      if (a.lines != c.lines) {
        die("whole and randomly cut differ", joined(a.lines) + "---\n" + joined(c.lines));
      }
      for (const auto& m : a.messages) round_trip(m, dir, lim);
    }
  }
  return 0;
}

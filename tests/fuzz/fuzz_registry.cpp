// libFuzzer target for protocol 1 (registry HTTP subset and peer datagrams).
//
// Invariant: for any bytes,
//  * registry::request_decoder and registry::response_decoder give a typed error or
//    messages, never a crash, never an over-read, never a message past their
//    limits; fed the input whole, one byte at a time (small limits only) or
//    cut at pseudo-random points (chunks.hpp), a fresh decoder gives the same describe() sequence
//    and the same final error; a nullopt from next() means the whole chunk
//    was consumed; errors are sticky. All of it under small limits (short
//    inputs reach every limit error) and under each decoder's defaults;
//  * every decoded message is valid, and re-serializes to bytes that decode
//    to the same describe() under the same limits, widened only by what the
//    canonical form may add: one byte per line (`X:a` becomes `X: a`, a
//    status line without reason gets its space) and one header (the
//    Content-Length of a body that ran to the close);
//  * parse_entry/parse_command/parse_list/parse_peer_message (on the input
//    and on every decoded body) give an error or a value that serializes and
//    parses back to an equal value.
// Any violation aborts with a note on stderr.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "chunks.hpp"
#include "improto/registry/decoder.hpp"
#include "improto/registry/messages.hpp"

namespace {

using namespace improto;

[[noreturn]] void violated(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz_registry: %s %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

// Small limits so that short inputs reach every limit error.
constexpr wire::limits fuzz_limits{.max_line = 200, .max_headers = 8, .max_body = 1000};

template <class T, class Parse>
void check_body(std::string_view bytes, Parse parse) {
  result<T> first = parse(bytes);
  if (!first) return;
  std::string again;
  auto ok = registry::serialize(*first, again);
  if (!ok) violated("a parsed value does not serialize:", ok.error().message());
  result<T> second = parse(again);
  if (!second || !(*second == *first)) violated("body round trip differs:", registry::describe(*first));
}

void check_bodies(std::string_view bytes) {
  check_body<registry::entry>(bytes, [](std::string_view b) { return registry::parse_entry(b); });
  check_body<registry::command>(bytes, [](std::string_view b) { return registry::parse_command(b); });
  check_body<registry::user_list>(bytes, [](std::string_view b) { return registry::parse_list(b); });
  check_body<registry::peer_message>(bytes,
                                     [](std::string_view b) { return registry::parse_peer_message(b); });
}

// Bytes serialize() makes of a decoded message must decode to the same
// description (next(), then finish() for a body that runs to the close).
template <class Decoder, class Message>
void check_reencode(const Message& m, const std::string& text, wire::limits lim) {
  lim.max_line += 1;
  lim.max_headers += 1;
  std::string bytes;
  if (auto v = registry::serialize(m, bytes, lim); !v) {
    violated("decoded message fails serialize():", v.error().message());
  }
  Decoder fresh(lim);
  std::string_view in = bytes;
  auto r = fresh.next(in);
  if (r && !*r) r = fresh.finish();
  if (!r) violated("re-serialized message fails:", r.error().message());
  if (!*r) violated("re-serialized message is incomplete:", text);
  if (registry::describe(**r) != text) violated("re-serialized message differs:", text);
}

struct outcome {
  std::vector<std::string> messages;
  std::optional<errc> error;
};

// `check`: also re-encode each message and parse its body (the messages are
// the same in every run, so once is enough).
template <class Decoder, class Message>
void take(Decoder& d, result<std::optional<Message>>& r, outcome& o, bool& more, bool check) {
  more = false;
  if (!r) {
    if (!d.failed()) violated("an HTTP decode error is not sticky");
    o.error = r.error().code();
    return;
  }
  if (!*r) return;
  const Message& m = **r;
  const auto& lim = d.limits();
  if (m.body.size() > lim.max_body) violated("body beyond the limit");
  if (m.headers.size() > lim.max_headers) violated("headers beyond the limit");
  std::string text = registry::describe(m);
  if (check) {
    check_reencode<Decoder>(m, text, lim);
    check_bodies(m.body);
  }
  o.messages.push_back(std::move(text));
  more = true;
}

template <class Decoder>
outcome run(wire::limits lim, const std::vector<std::string_view>& chunks, bool check) {
  Decoder d(lim);
  outcome o;
  for (std::size_t i = 0; i < chunks.size() && !o.error; ++i) {
    std::string_view piece = chunks[i];
    bool more = true;
    while (more) {
      auto r = d.next(piece);
      if (r && !*r && !piece.empty()) violated("need-more left bytes unconsumed");
      take(d, r, o, more, check);
    }
  }
  bool more = !o.error;
  while (more) {
    auto r = d.finish();
    take(d, r, o, more, check);
  }
  if (o.error) {
    std::string_view tail = "GET / HTTP/1.1\r\n\r\n";
    auto again = d.next(tail);
    if (again || again.error().code() != *o.error) violated("error did not stick");
  }
  return o;
}

struct cuts {
  std::vector<std::string_view> whole, bytewise, random;
};

// next_view() hands out what next() copies: the same requests and error;
// and the Connection tokens the reader noted while the head passed give the
// keep_alive() a walk over the copied headers gives.
void check_views(const std::vector<std::string_view>& chunks, wire::limits lim,
                 const outcome& expect) {
  registry::request_decoder d(lim);
  outcome o;
  for (std::size_t i = 0; i < chunks.size() && !o.error; ++i) {
    std::string_view piece = chunks[i];
    for (;;) {
      auto r = d.next_view(piece);
      if (!r) {
        o.error = r.error().code();
        break;
      }
      if (!*r) break;
      const registry::request_view& v = **r;
      registry::request copy = v.to_request();
      if (v.keep_alive() != copy.keep_alive()) violated("view keep_alive differs:", describe(copy));
      for (const auto& h : copy.headers) {
        if (v.header(h.name) != copy.header(h.name)) violated("view header() differs:", h.name);
      }
      o.messages.push_back(registry::describe(copy));
    }
  }
  if (!o.error) {
    auto r = d.finish();
    if (!r) o.error = r.error().code();
  }
  if (o.messages != expect.messages) violated("next_view and next messages differ");
  if (o.error != expect.error) violated("next_view and next errors differ");
}

// Byte by byte is the costliest run: only under the small limits, where
// every limit is in reach.
template <class Decoder>
void check_decoder(const cuts& c, wire::limits lim, bool bytewise_too) {
  outcome whole = run<Decoder>(lim, c.whole, true);
  if constexpr (std::is_same_v<Decoder, registry::request_decoder>) {
    check_views(c.random, lim, whole);
  }
  if (bytewise_too) {
    outcome bytewise = run<Decoder>(lim, c.bytewise, false);
    if (whole.messages != bytewise.messages) violated("whole and byte-by-byte messages differ");
    if (whole.error != bytewise.error) violated("whole and byte-by-byte errors differ");
  }
  outcome random = run<Decoder>(lim, c.random, false);
  if (whole.messages != random.messages) violated("whole and randomly cut messages differ");
  if (whole.error != random.error) violated("whole and randomly cut errors differ");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input = size == 0 ? std::string_view()
                                     : std::string_view(reinterpret_cast<const char*>(data), size);
  const cuts c{fuzz::whole(input), fuzz::bytewise(input), fuzz::random_cuts(input, 1)};
  check_decoder<registry::request_decoder>(c, fuzz_limits, true);
  check_decoder<registry::request_decoder>(c, registry::default_request_limits, false);
  check_decoder<registry::response_decoder>(c, fuzz_limits, true);
  check_decoder<registry::response_decoder>(c, registry::default_response_limits, false);
  check_bodies(input);
  return 0;
}

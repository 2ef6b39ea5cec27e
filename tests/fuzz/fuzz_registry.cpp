// libFuzzer target for protocol 1 (registry HTTP subset and peer datagrams).
//
// Invariant: for any bytes,
//  * registry::request_decoder and registry::response_decoder give a typed error or
//    messages, never a crash, never an over-read, never a message past their
//    limits; fed the input whole or one byte at a time, a fresh decoder gives
//    the same describe() sequence and the same final error; a nullopt from
//    next() means the whole chunk was consumed; errors are sticky;
//  * every decoded message is valid, and re-serializes to bytes that decode
//    to the same describe();
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
#include <vector>

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
void check_reencode(const Message& m, const std::string& text) {
  std::string bytes;
  if (auto v = registry::serialize(m, bytes, fuzz_limits); !v) {
    violated("decoded message fails serialize():", v.error().message());
  }
  Decoder fresh(fuzz_limits);
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

template <class Decoder, class Message>
void take(Decoder& d, result<std::optional<Message>>& r, outcome& o, bool& more) {
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
  check_reencode<Decoder>(m, text);
  check_bodies(m.body);
  o.messages.push_back(std::move(text));
  more = true;
}

template <class Decoder>
outcome run(std::string_view input, std::size_t chunk) {
  Decoder d(fuzz_limits);
  outcome o;
  for (std::size_t at = 0; at < input.size() && !o.error; at += chunk) {
    std::string_view piece = input.substr(at, chunk);
    bool more = true;
    while (more) {
      auto r = d.next(piece);
      if (r && !*r && !piece.empty()) violated("need-more left bytes unconsumed");
      take(d, r, o, more);
    }
  }
  bool more = !o.error;
  while (more) {
    auto r = d.finish();
    take(d, r, o, more);
  }
  if (o.error) {
    std::string_view tail = "GET / HTTP/1.1\r\n\r\n";
    auto again = d.next(tail);
    if (again || again.error().code() != *o.error) violated("error did not stick");
  }
  return o;
}

template <class Decoder>
void check_decoder(std::string_view input) {
  outcome whole = run<Decoder>(input, input.size() == 0 ? 1 : input.size());
  outcome bytewise = run<Decoder>(input, 1);
  if (whole.messages != bytewise.messages) violated("whole and byte-by-byte messages differ");
  if (whole.error != bytewise.error) violated("whole and byte-by-byte errors differ");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  check_decoder<registry::request_decoder>(input);
  check_decoder<registry::response_decoder>(input);
  check_bodies(input);
  return 0;
}

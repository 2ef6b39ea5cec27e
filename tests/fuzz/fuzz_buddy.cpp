// libFuzzer target for protocol 2 (buddy list and status).
//
// Invariant, for any input bytes:
//  1. Each stream decoder (request, response, chat), with a small and with the
//     default line limit, gives the same sequence of describe() lines and
//     errors (by errc name), and the same failed() at the end, whether the
//     input is fed whole, one byte at a time (small limit only: the costliest
//     run) or cut at pseudo-random points (chunks.hpp), each run in a fresh
//     decoder.
//  2. Every message a decoder yields re-serializes to bytes that decode, in a
//     fresh decoder in the same phase (chat), to the same describe().
//  3. The datagram and line parsers return a message or a typed error (the
//     one-pass request view, the general reading behind its common-shape
//     one and the word-by-word reading agree on verdict, verb and fields,
//     also for the input behind "SET " and "GET "); a parsed message
//     re-serializes to bytes that parse to the same describe() (a GET
//     reply may only fail to fit when the input was a full datagram without
//     a final line end).
//  4. describe() is one line.
// Memory errors and undefined behaviour are caught by ASan/UBSan; a broken
// invariant calls abort(), so libFuzzer keeps the input.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "chunks.hpp"
#include "improto/buddy/decoder.hpp"

namespace buddy = improto::buddy;

namespace {

[[noreturn]] void broken(const char* what, const std::string& a, const std::string& b) {
  std::fprintf(stderr, "invariant broken: %s\n  got:      %s\n  expected: %s\n", what, a.c_str(),
               b.c_str());
  std::abort();
}

void check_one_line(const std::string& description) {
  if (description.find_first_of("\r\n") != std::string::npos) {
    broken("describe() is not one line", description, "");
  }
}

std::string error_line(const improto::error& e) {
  return "error " + std::string(improto::name(e.code()));
}

// What a decoder did with the input: one entry per message or error.
struct trace {
  std::vector<std::string> events;
  bool failed = false;

  std::string joined() const {
    std::string out;
    for (const auto& e : events) out += e + " | ";
    return out + (failed ? "failed" : "ok");
  }
};

// First message (or error) that a fresh decoder makes of `bytes`.
template <class Decoder>
std::string redecode(Decoder fresh, std::string_view bytes) {
  auto r = fresh.next(bytes);
  if (r && !*r) r = fresh.finish();
  if (!r) return error_line(r.error());
  if (!*r) return "<nothing>";
  return buddy::describe(**r);
}

// The phase a decoder reads its next line in; only the chat decoder has one.
int phase_of(const buddy::chat_decoder& d) { return static_cast<int>(d.current_phase()); }
template <class Decoder>
int phase_of(const Decoder&) {
  return 0;
}

// Decodes `chunks` like the vector harness: on after non-sticky errors, stop
// at a sticky one. `reencode(phase, message, description)` checks rule 2;
// nullptr skips it.
template <class Decoder, class Reencode>
trace run(improto::wire::limits lim, const std::vector<std::string_view>& chunks,
          Reencode reencode) {
  Decoder d(lim);
  trace t;
  auto step = [&](auto&& call) {
    while (!d.failed()) {
      // One call reads at most one line, so this is the phase of that line.
      int phase = phase_of(d);
      auto r = call();
      if (!r) {
        t.events.push_back(error_line(r.error()));
        continue;
      }
      if (!*r) return;
      std::string description = buddy::describe(**r);
      if constexpr (!std::is_same_v<Reencode, std::nullptr_t>) {
        check_one_line(description);
        reencode(phase, **r, description);
      }
      t.events.push_back(std::move(description));
    }
  };
  for (auto chunk : chunks) step([&] { return d.next(chunk); });
  step([&] { return d.finish(); });
  t.failed = d.failed();
  return t;
}

struct cuts {
  std::vector<std::string_view> whole, bytewise, random;
};

template <class Decoder, class Reencode>
void check_stream(const char* name, const cuts& c, Reencode reencode) {
  bool small = true;
  for (improto::wire::limits lim : {improto::wire::limits{.max_line = 48}, improto::wire::limits{}}) {
    trace whole = run<Decoder>(lim, c.whole, reencode);
    // Byte by byte (the costliest run) once, where every limit is in reach.
    if (std::exchange(small, false)) {
      trace one_by_one = run<Decoder>(lim, c.bytewise, nullptr);
      if (whole.events != one_by_one.events || whole.failed != one_by_one.failed) {
        broken(name, one_by_one.joined(), whole.joined());
      }
    }
    trace cut = run<Decoder>(lim, c.random, nullptr);
    if (whole.events != cut.events || whole.failed != cut.failed) {
      broken(name, "randomly cut: " + cut.joined(), whole.joined());
    }
  }
}

template <class Decoder, class Message>
void same_again(const char* what, Decoder fresh, const Message& m, const std::string& description) {
  std::string bytes = buddy::serialize(m).value();
  std::string again = redecode(std::move(fresh), bytes);
  if (again != description) broken(what, again, description);
}

void check_request_stream(const cuts& input) {
  check_stream<buddy::request_decoder>(
      "request_decoder whole vs cut", input,
      [](int, const buddy::request& m, const std::string& description) {
        same_again("request round trip", buddy::request_decoder{}, m, description);
      });
}

void check_response_stream(const cuts& input) {
  check_stream<buddy::response_decoder>(
      "response_decoder whole vs cut", input,
      [](int, const buddy::response& m, const std::string& description) {
        std::string bytes;
        if (!buddy::serialize(m, bytes)) broken("response does not serialize", "", description);
        std::string again = redecode(buddy::response_decoder{}, bytes);
        if (again != description) broken("response round trip", again, description);
      });
}

void check_chat_stream(const cuts& input) {
  using phase = buddy::chat_decoder::phase;
  check_stream<buddy::chat_decoder>(
      "chat_decoder whole vs cut", input,
      [](int before, const buddy::chat_message& m, const std::string& description) {
        // Re-decode in the phase the line was read in: past the first line,
        // BUSY and CHAT are text. An empty line moves a fresh decoder there.
        buddy::chat_decoder fresh;
        if (before == static_cast<int>(phase::talking)) {
          std::string_view opener = "\n";
          auto first = fresh.next(opener);
          if (!first || !*first || fresh.current_phase() != phase::talking) {
            broken("chat opener", "", "chat_text line=\"\"");
          }
        } else if (before == static_cast<int>(phase::ended)) {
          broken("chat message after the end", description, "an error");
        }
        same_again("chat round trip", std::move(fresh), m, description);
      });
}

void check_udp_request(std::string_view input) {
  auto r = buddy::parse_udp_request(input);
  // The one-pass view a server reads and the word-by-word reading agree.
  auto view = buddy::parse_udp_request_view(input);
  auto words = buddy::detail::parse_udp_request_words(input);
  if (view.valid != words.has_value() || r.has_value() != words.has_value()) {
    broken("udp request: one-pass and word-by-word verdicts differ",
           view.valid ? "view valid" : "view refused",
           words ? "words valid" : error_line(words.error()));
  }
  if (view.verb != buddy::udp_verb_of(input)) broken("udp request: view verb", "", "");
  // The common-shape reading (word loads) gives what the general one gives.
  auto general = buddy::detail::parse_udp_request_general(input);
  if (general.valid != view.valid || general.verb != view.verb ||
      general.user.data() != view.user.data() || general.user.size() != view.user.size() ||
      general.status != view.status || general.msgport != view.msgport) {
    broken("udp request: common-shape and general readings differ",
           view.valid ? "view valid" : "view refused",
           general.valid ? "general valid" : "general refused");
  }
  if (!r) return;
  std::string from_view =
      view.verb == buddy::udp_verb::set
          ? buddy::describe(buddy::set_request{std::string(view.user), view.status, view.msgport})
          : buddy::describe(buddy::get_request{std::string(view.user)});
  if (from_view != buddy::describe(*words) || buddy::describe(*r) != from_view) {
    broken("udp request: one-pass and word-by-word fields differ", from_view,
           buddy::describe(*words));
  }
  std::string description = buddy::describe(*r);
  check_one_line(description);
  auto again = buddy::parse_udp_request(buddy::serialize(*r).value());
  std::string got = again ? buddy::describe(*again) : error_line(again.error());
  if (got != description) broken("udp request round trip", got, description);
}

void check_status_reply(std::string_view input) {
  auto r = buddy::parse_status_reply(input);
  if (!r) return;
  std::string description = buddy::describe(*r);
  check_one_line(description);
  auto bytes = buddy::serialize(*r);
  if (!bytes) {
    // Canonical bytes are never longer than the input plus a final '\n'.
    if (bytes.error() == improto::errc::datagram_too_large && input.size() == buddy::max_datagram) {
      return;
    }
    broken("status reply does not serialize", error_line(bytes.error()), description);
  }
  auto again = buddy::parse_status_reply(*bytes);
  std::string got = again ? buddy::describe(*again) : error_line(again.error());
  if (got != description) broken("status reply round trip", got, description);
}

void check_lines(std::string_view input) {
  if (auto r = buddy::parse_request_line(input)) {
    std::string description = buddy::describe(*r);
    std::string bytes = buddy::serialize(*r).value();
    bytes.pop_back();  // the '\n'
    auto again = buddy::parse_request_line(bytes);
    std::string got = again ? buddy::describe(*again) : error_line(again.error());
    if (got != description) broken("request line round trip", got, description);
  }
  if (auto r = buddy::parse_response_line(input)) {
    std::string description = buddy::describe(*r);
    std::string bytes;
    if (!buddy::serialize(*r, bytes)) broken("response line does not serialize", "", description);
    bytes.pop_back();
    auto again = buddy::parse_response_line(bytes);
    std::string got = again ? buddy::describe(*again) : error_line(again.error());
    if (got != description) broken("response line round trip", got, description);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An empty input may come with a null pointer; keep the view well-formed.
  std::string_view input = size == 0 ? std::string_view()
                                     : std::string_view(reinterpret_cast<const char*>(data), size);
  const cuts c{improto::fuzz::whole(input), improto::fuzz::bytewise(input),
               improto::fuzz::random_cuts(input, 2)};
  check_request_stream(c);
  check_response_stream(c);
  check_chat_stream(c);
  check_udp_request(input);
  // The input behind each verb as clients write it, so that short inputs
  // reach the common-shape reading; in a buffer of exactly its size, so that
  // ASan sees any load past its end.
  if (input.size() <= 48) {
    for (std::string_view verb : {"SET ", "GET "}) {
      std::vector<char> shaped(verb.size() + input.size());
      std::copy(verb.begin(), verb.end(), shaped.begin());
      std::copy(input.begin(), input.end(), shaped.begin() + 4);
      check_udp_request(std::string_view(shaped.data(), shaped.size()));
    }
  }
  check_status_reply(input);
  check_lines(input);
  return 0;
}

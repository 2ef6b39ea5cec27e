#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "improto/relay/codes.hpp"
#include "improto/relay/decoder.hpp"
#include "improto/wire/text.hpp"
#include "samples.hpp"

using namespace improto;
using namespace improto::relay;

namespace {

struct outcome {
  std::vector<message> messages;
  std::optional<errc> failure;  // the sticky error that ended decoding
  std::vector<errc> skipped;    // non-sticky errors on the way
};

// Feeds `chunks` to one decoder, going on after non-sticky errors.
void feed(decoder& d, std::string_view chunk, outcome& out) {
  while (!out.failure) {
    auto r = d.next(chunk);
    if (!r) {
      if (d.failed()) {
        out.failure = r.error().code();
      } else {
        out.skipped.push_back(r.error().code());
      }
      continue;
    }
    if (!*r) {
      CHECK(chunk.empty());
      return;
    }
    out.messages.push_back(std::move(**r));
  }
}

outcome decode(std::string_view bytes, direction dir, wire::limits lim = {}, bool eof = true) {
  decoder d(dir, lim);
  outcome out;
  feed(d, bytes, out);
  if (eof && !out.failure) {
    auto r = d.finish();
    if (!r) {
      out.failure = r.error().code();
    } else {
      CHECK_FALSE(r->has_value());
    }
  }
  return out;
}

// finish() says the stream ended at a message boundary.
bool clean_end(decoder& d) {
  auto r = d.finish();
  return r.has_value() && !r->has_value();
}

std::string stream_of(direction dir, std::vector<message>& expected) {
  std::string bytes;
  for (const auto& s : test::relay_samples()) {
    if (direction_of(s.msg) != dir && !std::holds_alternative<error_reply>(s.msg)) continue;
    // Blank lines and CRLF between messages, as liberal peers send them.
    bytes += s.bytes;
    bytes += expected.size() % 3 == 0 ? "\r\n" : "";
    expected.push_back(s.msg);
  }
  return bytes;
}

}  // namespace

TEST_CASE("next returns one message and leaves the rest of the input") {
  decoder d(direction::to_server);
  std::string_view in = "SEND bob\nContent-length: 5\n\nhelloRECEIVED a\n\nLIST";
  auto first = d.next(in);
  REQUIRE(first);
  REQUIRE(first->has_value());
  CHECK(**first == message(relay::send{"bob", "hello"}));
  CHECK(in == "RECEIVED a\n\nLIST");
  auto second = d.next(in);
  REQUIRE(second);
  CHECK(**second == message(received{"a"}));
  CHECK(in == "LIST");
  auto third = d.next(in);
  REQUIRE(third);
  CHECK_FALSE(third->has_value());
  CHECK(in.empty());
  auto end = d.finish();
  REQUIRE_FALSE(end);
  CHECK(end.error() == errc::truncated);
  CHECK(d.failed());
}

TEST_CASE("sticky errors repeat, consume nothing more and never buffer a body") {
  struct sticky_case {
    std::string_view input;
    direction dir;
    errc code;
    std::string_view detail_has;
  };
  const sticky_case cases[] = {
      {"SEND bob\n\nhello", direction::to_server, errc::missing_content_length, "SEND"},
      {"FORWARD a\n\nhello", direction::to_client, errc::missing_content_length, "FORWARD"},
      {"USERS\n\n", direction::to_client, errc::missing_content_length, "USERS"},
      {"FILES\n\n", direction::to_client, errc::missing_content_length, "FILES"},
      {"SEND bob\nContent-length: x\n\n", direction::to_server, errc::bad_content_length, "x"},
      {"SEND bob\nContent-length: 65537\n\nhello", direction::to_server, errc::body_too_large,
       "65537"},
      {"SEND bob\nContent-length 5\n\nhello", direction::to_server, errc::malformed_header, ""},
  };
  for (const auto& c : cases) {
    CAPTURE(wire::escape(c.input));
    decoder d(c.dir);
    std::string_view in = c.input;
    auto r = d.next(in);
    REQUIRE_FALSE(r);
    CHECK(r.error() == c.code);
    CHECK(r.error().message().find(c.detail_has) != std::string::npos);
    CHECK(d.failed());
    // The body (if any) was not consumed, let alone buffered.
    std::string_view rest = in;
    auto again = d.next(in);
    REQUIRE_FALSE(again);
    CHECK(again.error() == c.code);
    CHECK(again.error().detail() == r.error().detail());
    CHECK(in == rest);
    std::string_view good = "RECEIVED a\n\n";
    CHECK_FALSE(d.next(good));
    CHECK(good.size() == 12);
    auto end = d.finish();
    REQUIRE_FALSE(end);
    CHECK(end.error() == c.code);
  }
  // body_too_large stops right after the head.
  decoder d(direction::to_server);
  std::string_view in = "SEND bob\nContent-length: 65537\n\nhello";
  CHECK_FALSE(d.next(in));
  CHECK(in == "hello");
}

TEST_CASE("non-sticky errors consume their whole message and decoding goes on") {
  struct grammar_case {
    std::string_view input;
    direction dir;
    errc code;
    std::string_view detail_has;
  };
  const grammar_case cases[] = {
      {"HELLO\nContent-length: 3\n\nabc", direction::to_server, errc::unknown_command, "HELLO"},
      {"SENT bob\n\n", direction::to_server, errc::unknown_command, "SENT"},
      {"SEND bob\nContent-length: 1\n\nx", direction::to_client, errc::unknown_command,
       "SEND"},
      {"RECEIVED a\n\n", direction::to_client, errc::unknown_command, "RECEIVED"},
      {" SEND bob\n\n", direction::to_server, errc::malformed_start_line, "verb"},
      {"REGISTER\n\n", direction::to_server, errc::malformed_start_line, "REGISTER"},
      {"RECEIVED a\x01\n\n", direction::to_server, errc::malformed_start_line, "control"},
      {"PAUSE 1 2\n\n", direction::to_server, errc::malformed_start_line, "PAUSE"},
      {"REGISTER TOALL a\n\n", direction::to_server, errc::invalid_argument, "TOALL"},
      {"ERROR 42 x\n\n", direction::to_client, errc::invalid_argument, "42"},
      {"CANCEL 0\n\n", direction::to_server, errc::invalid_argument, "0"},
      {"DOWNLOAD a\n\n", direction::to_server, errc::invalid_argument, "Udp-port"},
      {"RECEIVED a\nContent-length: 2\n\nxy", direction::to_server, errc::invalid_argument,
       "RECEIVED carries no body"},
      {"USERS\nContent-length: 3\n\na\n\n", direction::to_client, errc::invalid_argument,
       "empty line"},
      {"FILES\nContent-length: 4\n\nx y\n", direction::to_client, errc::invalid_argument, "x"},
      {"TRANSFER 1\nSize: 1\nOffset: 2\nSha256: 0\nUdp-port: 1\n\n", direction::to_client,
       errc::invalid_argument, "Offset"},
  };
  for (const auto& c : cases) {
    CAPTURE(wire::escape(c.input));
    std::string input(c.input);
    input += "ERROR 102 next\n\n";
    decoder d(c.dir);
    std::string_view in = input;
    auto r = d.next(in);
    REQUIRE_FALSE(r);
    CHECK(r.error() == c.code);
    CHECK_MESSAGE(r.error().message().find(c.detail_has) != std::string::npos,
                  r.error().message());
    CHECK_FALSE(d.failed());
    CHECK(in == "ERROR 102 next\n\n");
    auto next = d.next(in);
    REQUIRE(next);
    REQUIRE(next->has_value());
    CHECK(**next == message(error_reply{102, "next"}));
  }
}

TEST_CASE("end of stream") {
  decoder d(direction::to_client);
  CHECK(clean_end(d));
  CHECK(clean_end(d));  // may be asked again
  std::string_view in = "SENT a\n\n\r\n";
  REQUIRE(d.next(in)->has_value());
  CHECK_FALSE(d.next(in)->has_value());
  CHECK(clean_end(d));
  CHECK_FALSE(d.failed());

  // After a non-sticky error the stream may end cleanly.
  decoder e(direction::to_client);
  std::string_view bad = "NOPE\n\n";
  CHECK_FALSE(e.next(bad));
  CHECK(clean_end(e));

  for (std::string_view cut : {"F", "FORWARD a\n", "FORWARD a\nContent-length: 3\n\nab"}) {
    CAPTURE(cut);
    auto out = decode(cut, direction::to_client);
    CHECK(out.failure == errc::truncated);
  }
}

TEST_CASE("limits are enforced exactly") {
  const wire::limits lim{.max_line = 24, .max_headers = 3, .max_body = 10};
  SUBCASE("line length") {
    auto ok = decode("RECEIVED 123456789012345\r\n\r\n", direction::to_server, lim);  // 24
    CHECK_FALSE(ok.failure);
    CHECK(ok.messages.size() == 1);
    auto too_long = decode("RECEIVED 1234567890123456\n\n", direction::to_server, lim);
    CHECK(too_long.failure == errc::line_too_long);
    // A header line counts too.
    auto header = decode("SEND a\nX: 1234567890123456789012\nContent-length: 1\n\nx",
                         direction::to_server, lim);
    CHECK(header.failure == errc::line_too_long);
    // Caught before the line ends: a peer cannot make the decoder buffer more.
    decoder d(direction::to_server, lim);
    std::string endless(100, 'x');
    std::string_view in = endless;
    auto r = d.next(in);
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::line_too_long);
  }
  SUBCASE("header count") {
    auto ok = decode("SEND a\nA: 1\nB: 2\nContent-length: 1\n\nx", direction::to_server, lim);
    CHECK_FALSE(ok.failure);
    auto too_many =
        decode("SEND a\nA: 1\nB: 2\nC: 3\nContent-length: 1\n\nx", direction::to_server, lim);
    CHECK(too_many.failure == errc::too_many_headers);
  }
  SUBCASE("body size") {
    auto ok = decode("SEND a\nContent-length: 10\n\n0123456789", direction::to_server, lim);
    CHECK_FALSE(ok.failure);
    REQUIRE(ok.messages.size() == 1);
    CHECK(std::get<relay::send>(ok.messages[0]).body == "0123456789");
    auto big = decode("SEND a\nContent-length: 11\n\n01234567890", direction::to_server, lim);
    CHECK(big.failure == errc::body_too_large);
    auto list = decode("USERS\nContent-length: 11\n\n", direction::to_client, lim);
    CHECK(list.failure == errc::body_too_large);
    // Bodies of wrong messages are bounded too.
    auto junk = decode("JUNK\nContent-length: 11\n\n", direction::to_client, lim);
    CHECK(junk.failure == errc::body_too_large);
  }
  decoder d(direction::to_client, lim);
  CHECK(d.limits().max_body == 10);
  CHECK(d.dir() == direction::to_client);
}

TEST_CASE("a 64 KiB body at the default limit, fed in pieces") {
  std::string body(64 * 1024, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7 + i / 256);
  std::string bytes = serialize_unchecked(relay::send{"bob", body});
  for (std::size_t chunk : {std::size_t{1}, std::size_t{1000}, std::size_t{4096}, bytes.size()}) {
    CAPTURE(chunk);
    decoder d(direction::to_server);
    outcome out;
    for (std::size_t i = 0; i < bytes.size(); i += chunk) {
      feed(d, std::string_view(bytes).substr(i, chunk), out);
    }
    REQUIRE(out.messages.size() == 1);
    CHECK(out.messages[0] == message(relay::send{"bob", body}));
  }
}

TEST_CASE("a decoder moved between a head and its body keeps its message") {
  decoder d(direction::to_client);
  std::string_view head = "FORWARD alice\nContent-length: 5\n\nhe";
  CHECK_FALSE(d.next(head)->has_value());
  decoder moved = std::move(d);
  std::string_view rest = "llo";
  auto r = moved.next(rest);
  REQUIRE(r);
  REQUIRE(r->has_value());
  CHECK(**r == message(forward{"alice", "hello"}));
}

TEST_CASE("every chunking of a mixed stream gives the same messages") {
  for (auto dir : {direction::to_server, direction::to_client}) {
    std::vector<message> expected;
    std::string bytes = stream_of(dir, expected);
    // A fixed pseudo-random sequence of chunk sizes, so failures reproduce.
    std::uint32_t state = 12345;
    for (int round = 0; round < 50; ++round) {
      decoder d(dir);
      outcome out;
      std::size_t pos = 0;
      while (pos < bytes.size()) {
        state = state * 1103515245u + 12345u;
        std::size_t len = 1 + (state >> 16) % 97;
        feed(d, std::string_view(bytes).substr(pos, len), out);
        pos += len;
      }
      CHECK(clean_end(d));
      CHECK_FALSE(out.failure);
      CHECK(out.messages == expected);
    }
  }
}

TEST_CASE("a head whose body comes in a later chunk outlives the chunk it came in") {
  // The decoder reads the head's headers (More) and start line only when the
  // body is complete; the chunk that held them is gone by then.
  decoder d(direction::to_client);
  {
    auto chunk = std::make_unique<std::string>("USERS\nMore: yes\nContent-length: 6\n\nal");
    std::string_view in = *chunk;
    CHECK_FALSE(d.next(in)->has_value());
    std::fill(chunk->begin(), chunk->end(), 'X');
  }
  std::string_view rest = "ice\n";
  auto r = d.next(rest);
  REQUIRE(r);
  REQUIRE(r->has_value());
  CHECK(**r == message(user_list{{"alice"}, true}));

  decoder e(direction::to_server);
  {
    auto chunk = std::make_unique<std::string>("RECEIVED alice\nContent-length: 2\n\n");
    std::string_view in = *chunk;
    CHECK_FALSE(e.next(in)->has_value());
    std::fill(chunk->begin(), chunk->end(), 'X');
  }
  std::string_view body = "xy";
  auto bad = e.next(body);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().detail() == "RECEIVED carries no body");
}

// ----------------------------------------------------------------- next_view

namespace {

// What next() gives for `chunks`, as describe() lines and error names, going
// on after non-sticky errors; and the same through next_view().
std::vector<std::string> lines_of(direction dir, wire::limits lim,
                                  const std::vector<std::string_view>& chunks, bool views) {
  decoder d(dir, lim);
  std::vector<std::string> out;
  for (std::string_view chunk : chunks) {
    while (!d.failed()) {
      std::optional<message> got;
      bool more = false;
      if (views) {
        auto r = d.next_view(chunk);
        if (!r) {
          out.push_back("error " + std::string(name(r.error().code())));
          continue;
        }
        more = !*r;
        if (*r) got = (*r)->to_message();
      } else {
        auto r = d.next(chunk);
        if (!r) {
          out.push_back("error " + std::string(name(r.error().code())));
          continue;
        }
        more = !*r;
        if (*r) got = std::move(**r);
      }
      if (more) break;
      out.push_back(describe(*got));
    }
  }
  if (!d.failed()) {
    auto r = d.finish();
    out.push_back(r ? (r->has_value() ? "message at end" : "end")
                    : "error " + std::string(name(r.error().code())));
  }
  return out;
}

bool within(std::string_view part, std::string_view whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

}  // namespace

TEST_CASE("next_view hands out a whole SEND or FORWARD as views into the input") {
  std::string bytes = "SEND bob\nContent-length: 5\n\nhelloSEND\t ALL \r\ncontent-LENGTH:\t3 \r\n\r\nabc";
  decoder d(direction::to_server);
  std::string_view in = bytes;
  auto first = d.next_view(in);
  REQUIRE(first);
  REQUIRE(first->has_value());
  CHECK((*first)->kind == view_kind::send);
  CHECK((*first)->peer == "bob");
  CHECK((*first)->body == "hello");
  CHECK(within((*first)->peer, bytes));
  CHECK(within((*first)->body, bytes));
  auto second = d.next_view(in);
  REQUIRE(second);
  REQUIRE(second->has_value());
  CHECK((*second)->peer == "ALL");
  CHECK((*second)->body == "abc");
  CHECK(within((*second)->body, bytes));
  CHECK(in.empty());
  CHECK(clean_end(d));

  std::string fwd = "FORWARD alice\nContent-length: 2\n\nhi";
  decoder c(direction::to_client);
  std::string_view fin = fwd;
  auto f = c.next_view(fin);
  REQUIRE(f);
  REQUIRE(f->has_value());
  CHECK((*f)->kind == view_kind::forward);
  CHECK((*f)->to_message() == message(forward{"alice", "hi"}));
  CHECK(within((*f)->body, fwd));
}

TEST_CASE("next_view lends every other message and keeps the general path's answers") {
  decoder d(direction::to_server);
  std::string_view in = "RECEIVED alice\n\nSEND bob\nX: 1\nContent-length: 1\n\nz";
  auto r = d.next_view(in);
  REQUIRE(r);
  REQUIRE(r->has_value());
  REQUIRE((*r)->kind == view_kind::other);
  REQUIRE((*r)->other != nullptr);
  CHECK(*(*r)->other == message(received{"alice"}));
  // Another header: the general path, still a SEND view.
  auto s = d.next_view(in);
  REQUIRE(s);
  REQUIRE(s->has_value());
  CHECK((*s)->kind == view_kind::send);
  CHECK((*s)->to_message() == message(relay::send{"bob", "z"}));
}

TEST_CASE("next_view and next agree at every split point") {
  for (auto dir : {direction::to_server, direction::to_client}) {
    std::vector<message> expected;
    std::string bytes = stream_of(dir, expected);
    // Body messages with the one-header head the fast path reads, and
    // refused ones, between the samples.
    bytes += dir == direction::to_server
                 ? "SEND bob\r\nContent-length: 3\r\n\r\nabcSEND  \nContent-length: 0\n\n"
                   "FORWARD x\nContent-length: 1\n\nq"
                 : "FORWARD bob\r\nContent-length: 3\r\n\r\nabcSEND x\nContent-length: 1\n\nq";
    auto whole = lines_of(dir, {}, {bytes}, false);
    CHECK(whole.back() == "end");
    CHECK(lines_of(dir, {}, {bytes}, true) == whole);
    for (std::size_t i = 0; i <= bytes.size(); ++i) {
      std::string_view all = bytes;
      CAPTURE(i);
      REQUIRE(lines_of(dir, {}, {all.substr(0, i), all.substr(i)}, true) == whole);
    }
  }
}

TEST_CASE("next_view refuses and fails exactly as next on the fast path's edges") {
  const wire::limits small{.max_line = 24, .max_headers = 1, .max_body = 8};
  const wire::limits no_headers{.max_line = 64, .max_headers = 0, .max_body = 8};
  // Each is a SEND the fast path reads, or one it must leave to the general
  // path because some check refuses it or a limit is reached.
  const std::vector<std::string> cases = {
      "SEND bob\nContent-length: 8\n\n12345678",        // at the body limit
      "SEND bob\nContent-length: 9\n\n123456789",       // past it
      "SEND bob\nContent-length: 000000000000000003\n\nabc",   // 18 digits
      "SEND bob\nContent-length: 0000000000000000003\n\nabc",  // 19 digits
      "SEND bob\nContent-length: \n\n",                 // no digits
      "SEND bob\nContent-length: 3x\n\nabc",
      "SEND bob\nContent-length: 3\r\r\n\nabc",
      "SEND bob\nContent\rlength: 3\n\nabc",            // 0x0d folds onto '-'
      "SEND bob\nCONTENT-length: 1\n\na",
      "SEND bob\nContent-length : 1\n\na",
      "SEND bob\nContent-lengtx: 1\n\na",
      "SEND b\rob\nContent-length: 1\n\na",
      "SEND b\x7fob\nContent-length: 1\n\na",
      "SEND b\tob \t\nContent-length: 1\n\na",
      "SEND bob\n Content-length: 1\n\na",
      "SEND bob\nContent-length: 1\nContent-length: 2\n\nab",
      "SEND bob\nContent-length: 1\n\r\r\na",
      "SEND bob\n\n",
      "SEND\nContent-length: 1\n\na",
      "SENDbob\nContent-length: 1\n\na",
      "SEND 0123456789012345678\nContent-length: 1\n\na",   // start line of 24
      "SEND 01234567890123456789\nContent-length: 1\n\na",  // start line of 25
      "SEND bob\nContent-length:      1\n\na",           // header line of 24
      "SEND bob\nContent-length:       1\n\na",          // header line of 25
      "\r\nSEND bob\nContent-length: 1\n\na",
      "FORWARD bob\nContent-length: 1\n\na",
  };
  for (auto dir : {direction::to_server, direction::to_client}) {
    for (const auto& base : cases) {
      // The same bytes as a FORWARD in the other direction.
      std::string bytes = base;
      if (dir == direction::to_client && bytes.rfind("SEND", 0) == 0) {
        bytes = "FORWARD" + bytes.substr(4);
      }
      bytes += "SEND a\nContent-length: 1\n\nb";  // what follows, when anything does
      for (const auto& lim : {wire::limits{}, small, no_headers}) {
        CAPTURE(bytes);
        CAPTURE(lim.max_line);
        CAPTURE(lim.max_headers);
        auto whole = lines_of(dir, lim, {bytes}, false);
        CHECK(lines_of(dir, lim, {bytes}, true) == whole);
        std::vector<std::string_view> bytewise;
        for (std::size_t i = 0; i < bytes.size(); ++i) bytewise.push_back(std::string_view(bytes).substr(i, 1));
        CHECK(lines_of(dir, lim, bytewise, true) == whole);
      }
    }
  }
}

TEST_CASE("next_view after a message in pieces reuses the decoder's strings") {
  decoder d(direction::to_server);
  std::string_view head = "SEND bob\nContent-length: 5\n\nhe";
  CHECK_FALSE(d.next_view(head)->has_value());
  std::string_view rest = "lloSEND carol\nContent-length: 2\n\nhi";
  auto first = d.next_view(rest);
  REQUIRE(first);
  REQUIRE(first->has_value());
  CHECK((*first)->peer == "bob");
  CHECK((*first)->body == "hello");
  // The next one is whole in the chunk: viewed where it lies.
  std::string_view rest_before = rest;
  auto second = d.next_view(rest);
  REQUIRE(second);
  REQUIRE(second->has_value());
  CHECK((*second)->body == "hi");
  CHECK(within((*second)->body, rest_before));
  CHECK(clean_end(d));
}

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "improto/wire/framing.hpp"
#include "improto/wire/text.hpp"

using namespace improto;
using improto::wire::frame_reader;

namespace {

struct frame {
  std::string start;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool operator==(const frame&) const = default;
};

// Reads frames whose body length is Content-Length (absent: no body).
struct collector {
  frame_reader reader;
  std::vector<frame> frames;
  std::optional<errc> failure;

  explicit collector(wire::limits lim = {}) : reader(lim) {}

  void handle(result<frame_reader::event> r) {
    while (true) {
      if (!r) {
        failure = r.error().code();
        return;
      }
      if (*r == frame_reader::event::need_more) return;
      if (*r == frame_reader::event::head) {
        auto len = reader.content_length();
        if (!len) {
          failure = len.error().code();
          return;
        }
        if (auto e = reader.expect_body(len->value_or(0)); !e) {
          failure = e.error().code();
          return;
        }
        frames.push_back({std::string(reader.start_line()), {}, {}});
        for (auto h : reader.headers()) {
          frames.back().headers.emplace_back(std::string(h.name), std::string(h.value));
        }
        std::string_view none;
        r = reader.next(none);
        continue;
      }
      frames.back().body = reader.take_body();
      reader.reset();
      return;
    }
  }

  void feed(std::string_view in) {
    while (!failure) {
      bool was_empty = in.empty();
      handle(reader.next(in));
      if (was_empty || in.empty()) {
        if (in.empty() && !failure) {
          std::string_view none;
          handle(reader.next(none));
        }
        return;
      }
    }
  }
};

std::vector<frame> frames_of(std::string_view input, std::size_t chunk) {
  collector c;
  for (std::size_t i = 0; i < input.size(); i += chunk) c.feed(input.substr(i, chunk));
  REQUIRE_FALSE(c.failure.has_value());
  return c.frames;
}

}  // namespace

TEST_CASE("frame_reader reads heads and bodies at every chunk size") {
  const std::string input =
      "\r\nSEND bob\nContent-length: 5\n\nhelloPOST /x HTTP/1.1\r\nHost: a\r\n"
      "Content-Length: 3\r\n\r\nabcREGISTER TOSEND al\n\n";
  std::vector<frame> expected = {
      {"SEND bob", {{"Content-length", "5"}}, "hello"},
      {"POST /x HTTP/1.1", {{"Host", "a"}, {"Content-Length", "3"}}, "abc"},
      {"REGISTER TOSEND al", {}, ""},
  };
  for (std::size_t chunk = 1; chunk <= input.size(); ++chunk) {
    CAPTURE(chunk);
    CHECK(frames_of(input, chunk) == expected);
  }
}

TEST_CASE("frame_reader enforces its limits") {
  SUBCASE("line length") {
    collector c(wire::limits{.max_line = 8, .max_headers = 4, .max_body = 16});
    c.feed("0123456");
    CHECK_FALSE(c.failure);
    c.feed("78\r");  // 9 bytes plus a possible '\r'
    CHECK(c.failure == errc::line_too_long);
  }
  SUBCASE("exactly max_line with CRLF is fine") {
    collector c(wire::limits{.max_line = 8, .max_headers = 4, .max_body = 16});
    c.feed("01234567\r\n\r\n");
    CHECK_FALSE(c.failure);
    CHECK(c.frames.size() == 1);
  }
  SUBCASE("header count") {
    collector c(wire::limits{.max_line = 80, .max_headers = 2, .max_body = 16});
    c.feed("X\na: 1\nb: 2\nc: 3\n");
    CHECK(c.failure == errc::too_many_headers);
  }
  SUBCASE("body size") {
    collector c(wire::limits{.max_line = 80, .max_headers = 2, .max_body = 4});
    c.feed("X\nContent-Length: 5\n\n");
    CHECK(c.failure == errc::body_too_large);
  }
  SUBCASE("errors are sticky") {
    collector c(wire::limits{.max_line = 4, .max_headers = 2, .max_body = 4});
    c.feed("toolong\n");
    REQUIRE(c.failure == errc::line_too_long);
    std::string_view more = "A\n\n";
    auto r = c.reader.next(more);
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::line_too_long);
    c.reader.reset();
    CHECK_FALSE(c.reader.next(more));
  }
}

TEST_CASE("frame_reader rejects malformed headers") {
  for (std::string_view bad : {"X\n: v\n\n", "X\nno colon\n\n", "X\nna me: v\n\n",
                               "X\n folded\n\n", "X\nA: b\x01\n\n"}) {
    CAPTURE(wire::escape(bad));
    collector c;
    c.feed(bad);
    CHECK(c.failure == errc::malformed_header);
  }
}

TEST_CASE("a bad header line fails at the same point however the head arrives") {
  // The head never ends: the error must come from the bad line itself.
  const std::string input = "a\n\v\n";
  for (std::size_t chunk = 1; chunk <= input.size(); ++chunk) {
    CAPTURE(chunk);
    collector c;
    for (std::size_t i = 0; i < input.size(); i += chunk) c.feed(std::string_view(input).substr(i, chunk));
    CHECK(c.failure == errc::malformed_header);
  }
  const std::string many = "X\na: 1\nb: 2\nc: 3\n";
  for (std::size_t chunk = 1; chunk <= many.size(); ++chunk) {
    CAPTURE(chunk);
    collector c(wire::limits{.max_line = 80, .max_headers = 2, .max_body = 16});
    for (std::size_t i = 0; i < many.size(); i += chunk) c.feed(std::string_view(many).substr(i, chunk));
    CHECK(c.failure == errc::too_many_headers);
  }
}

TEST_CASE("frame_reader Content-Length handling") {
  for (std::string_view bad : {"X\nContent-Length: -1\n\n", "X\nContent-Length: 1x\n\n",
                               "X\nContent-Length:\n\n",
                               "X\ncontent-length: 1\nContent-Length: 2\n\n",
                               "X\nContent-Length: 99999999999999999999999\n\n"}) {
    CAPTURE(wire::escape(bad));
    collector c;
    c.feed(bad);
    CHECK(c.failure == errc::bad_content_length);
  }
  collector same;
  same.feed("X\ncontent-length: 1\nCONTENT-LENGTH: 1\n\nz");
  CHECK_FALSE(same.failure);
  REQUIRE(same.frames.size() == 1);
  CHECK(same.frames[0].body == "z");
}

TEST_CASE("frame_reader end of stream") {
  frame_reader r;
  CHECK(r.finish() == frame_reader::event::need_more);  // clean end
  std::string_view in = "HTTP/1.1 200 OK\r\n\r\nalice@1.2.3.4:5,";
  REQUIRE(r.next(in) == frame_reader::event::head);
  r.expect_body_until_eof();
  CHECK(r.next(in) == frame_reader::event::need_more);
  CHECK(r.finish() == frame_reader::event::body);
  CHECK(r.body() == "alice@1.2.3.4:5,");

  frame_reader cut;
  std::string_view partial = "SEND bob\nContent-length: 4\n\nab";
  REQUIRE(cut.next(partial) == frame_reader::event::head);
  REQUIRE(cut.expect_body(4));
  CHECK(cut.next(partial) == frame_reader::event::need_more);
  auto end = cut.finish();
  REQUIRE_FALSE(end);
  CHECK(end.error() == errc::truncated);

  frame_reader mid_head;
  std::string_view head = "SEND bob\nContent";
  CHECK(mid_head.next(head) == frame_reader::event::need_more);
  CHECK(mid_head.finish().error() == errc::truncated);
}

TEST_CASE("line_reader") {
  wire::line_reader lines(5);
  std::string_view in = "REG a\r\nADD";
  auto first = lines.next(in);
  REQUIRE(first);
  REQUIRE(first->has_value());
  CHECK(**first == "REG a");
  auto partial = lines.next(in);
  REQUIRE(partial);
  CHECK_FALSE(partial->has_value());
  std::string_view rest = " b\n";
  auto second = lines.next(rest);
  REQUIRE(second);
  CHECK(**second == "ADD b");
  std::string_view tail = "q";
  CHECK_FALSE(lines.next(tail)->has_value());
  CHECK(**lines.finish() == "q");
  CHECK_FALSE(lines.finish()->has_value());

  std::string_view longline = "123456\n";
  auto too_long = lines.next(longline);
  REQUIRE_FALSE(too_long);
  CHECK(too_long.error() == errc::line_too_long);
}

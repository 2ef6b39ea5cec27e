#include <doctest/doctest.h>

#include <string>

#include "improto/buddy/decoder.hpp"
#include "support.hpp"

namespace buddy = improto::buddy;
using improto::errc;
using buddy_test::decode_all;
using buddy_test::refused;

TEST_CASE("valid_user: 1 to 32 characters of A-Z a-z 0-9 _ . -") {
  CHECK(buddy::valid_user("a"));
  CHECK(buddy::valid_user("Az09_.-"));
  CHECK(buddy::valid_user(std::string(32, 'x')));
  CHECK_FALSE(buddy::valid_user(""));
  CHECK_FALSE(buddy::valid_user(std::string(33, 'x')));
  static constexpr char bad[] = " \t\n\r\0@:/!*+,;=~\x7f\x80\xff";
  for (char c : std::string_view(bad, sizeof bad - 1)) {
    CAPTURE(static_cast<int>(static_cast<unsigned char>(c)));
    CHECK_FALSE(buddy::valid_user(std::string("ab") + c));
  }
}

TEST_CASE("requests serialize exactly and decode back to themselves") {
  const buddy::request all[] = {
      buddy::register_request{"alice"},
      buddy::add_request{"alice", "bob"},
      buddy::delete_request{"alice", "b.o-b_2"},
  };
  const char* bytes[] = {"REG alice\n", "ADD alice bob\n", "DEL alice b.o-b_2\n"};
  for (std::size_t i = 0; i < std::size(all); ++i) {
    CAPTURE(bytes[i]);
    std::string wire = buddy::serialize(all[i]).value();
    CHECK(wire == bytes[i]);
    auto back = decode_all<buddy::request_decoder>(wire);
    CHECK(back.errors.empty());
    REQUIRE(back.messages.size() == 1);
    CHECK(back.messages[0] == all[i]);
    auto line = buddy::parse_request_line(std::string_view(wire).substr(0, wire.size() - 1));
    REQUIRE(line);
    CHECK(*line == all[i]);
  }
}

TEST_CASE("responses: canonical ones, exact bytes, round trip") {
  CHECK(buddy::response::ok() == buddy::response{200, "OK"});
  CHECK(buddy::response::invalid() == buddy::response{201, "INVALID"});
  CHECK(buddy::response::no_such_user() == buddy::response{202, "NO SUCH USER"});
  CHECK(buddy::response::user_exists() == buddy::response{203, "USER EXISTS"});
  const buddy::response all[] = {buddy::response::ok(), buddy::response::invalid(),
                                 buddy::response::no_such_user(),
                                 buddy::response::user_exists(), buddy::response{999, ""},
                                 buddy::response{100, "a\tb"}};
  const char* bytes[] = {"200 OK\n",          "201 INVALID\n", "202 NO SUCH USER\n",
                         "203 USER EXISTS\n", "999\n",         "100 a\tb\n"};
  for (std::size_t i = 0; i < std::size(all); ++i) {
    CAPTURE(bytes[i]);
    std::string wire;
    buddy::serialize(all[i], wire);
    CHECK(wire == bytes[i]);
    auto back = decode_all<buddy::response_decoder>(wire);
    CHECK(back.errors.empty());
    REQUIRE(back.messages.size() == 1);
    CHECK(back.messages[0] == all[i]);
  }
}

TEST_CASE("request_decoder: grammar errors are not sticky, framing errors are") {
  buddy::request_decoder d(improto::wire::limits{.max_line = 16});
  std::string_view in = "FOO\nREG alice\n";
  auto bad = d.next(in);
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == errc::unknown_command);
  CHECK_FALSE(d.failed());
  auto good = d.next(in);
  REQUIRE(good);
  REQUIRE(good->has_value());
  CHECK(**good == buddy::request{buddy::register_request{"alice"}});
  CHECK(in.empty());

  // 16 bytes plus a possible '\r' may wait for their line end; 18 may not.
  std::string_view longer = "REG 0123456789ab\r";
  auto waiting = d.next(longer);
  REQUIRE(waiting);
  CHECK_FALSE(waiting->has_value());
  std::string_view one_more = "d";
  auto too_long = d.next(one_more);
  REQUIRE_FALSE(too_long);
  CHECK(too_long.error() == errc::line_too_long);
  CHECK(d.failed());
  std::string_view after = "REG bob\n";
  auto again = d.next(after);
  REQUIRE_FALSE(again);
  CHECK(again.error() == errc::line_too_long);
  CHECK(d.finish().error() == errc::line_too_long);
}

TEST_CASE("request_decoder: a line of exactly max_line bytes is read, CRLF or not") {
  improto::wire::limits lim{.max_line = 9};
  auto lf = decode_all<buddy::request_decoder>("REG alice\n", lim);
  auto crlf = decode_all<buddy::request_decoder>("REG alice\r\n", lim);
  CHECK(lf.errors.empty());
  CHECK(crlf.errors.empty());
  CHECK(lf.messages.size() == 1);
  CHECK(crlf.messages.size() == 1);
  auto over = decode_all<buddy::request_decoder>("REG alice2\n", lim);
  CHECK(over.messages.empty());
  CHECK(over.errors == std::vector{errc::line_too_long});
}

TEST_CASE("request_decoder: end of stream") {
  buddy::request_decoder clean;
  auto nothing = clean.finish();
  REQUIRE(nothing);
  CHECK_FALSE(nothing->has_value());
  CHECK_FALSE(clean.failed());

  buddy::request_decoder cut;
  std::string_view in = "REG ali";
  CHECK_FALSE(cut.next(in)->has_value());
  auto end = cut.finish();
  REQUIRE_FALSE(end);
  CHECK(end.error() == errc::truncated);
  CHECK(cut.failed());
  CHECK(cut.finish().error() == errc::truncated);
  std::string_view more = "ce\n";
  CHECK(cut.next(more).error() == errc::truncated);
}

TEST_CASE("decoders accept an empty view that holds a null pointer") {
  std::string_view none;
  buddy::request_decoder r;
  CHECK_FALSE(r.next(none)->has_value());
  buddy::response_decoder s;
  CHECK_FALSE(s.next(none)->has_value());
  buddy::chat_decoder c;
  CHECK_FALSE(c.next(none)->has_value());
}

TEST_CASE("response_decoder: framing errors are sticky") {
  buddy::response_decoder d(improto::wire::limits{.max_line = 8});
  std::string_view in = "bad\n200 OK\n202 NO SUCH USER\n200 OK\n";
  auto first = d.next(in);
  CHECK(first.error() == errc::malformed_start_line);
  CHECK_FALSE(d.failed());
  CHECK(**d.next(in) == buddy::response::ok());
  CHECK(d.next(in).error() == errc::line_too_long);
  CHECK(d.failed());
  CHECK(d.next(in).error() == errc::line_too_long);
}

TEST_CASE("error details name the offending field, cut short") {
  auto bad_user = buddy::parse_request_line("REG " + std::string(100, '!'));
  REQUIRE_FALSE(bad_user);
  CHECK(bad_user.error() == errc::invalid_name);
  CHECK(bad_user.error().detail() ==
        "userid \"" + std::string(40, '!') + "\"... is not 1 to 32 characters of A-Z a-z 0-9 _ . -");
  auto bad_buddy = buddy::parse_request_line("ADD alice b\x01");
  REQUIRE_FALSE(bad_buddy);
  CHECK(bad_buddy.error().detail().rfind("buddyid \"b\\x01\"", 0) == 0);
  auto unknown = buddy::parse_request_line("PUT alice");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().message() ==
        "unknown command: unknown request \"PUT\"; expected REG, ADD or DEL");
}

TEST_CASE("requests with a bad userid are refused") {
  CHECK(refused(buddy::request{buddy::register_request{"bob\nDEL x y"}}) == errc::invalid_name);
  CHECK(refused(buddy::request{buddy::register_request{""}}) == errc::invalid_name);
  CHECK(refused(buddy::request{buddy::add_request{"alice", "b ob"}}) == errc::invalid_name);
  CHECK(refused(buddy::request{buddy::delete_request{std::string(33, 'a'), "bob"}}) ==
        errc::invalid_name);
  std::string out;
  REQUIRE(buddy::serialize(buddy::request{buddy::add_request{"alice", "bob"}}, out));
  CHECK(out == "ADD alice bob\n");
}

TEST_CASE("responses the peer would misread are refused") {
  CHECK(refused(buddy::response{99, "x"}) == errc::invalid_argument);
  CHECK(refused(buddy::response{200, "OK\n201 INVALID"}) == errc::invalid_argument);
  CHECK(refused(buddy::response{200, " OK"}) == errc::invalid_argument);
}

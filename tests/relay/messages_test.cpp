#include <doctest/doctest.h>

#include <cctype>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "improto/relay/codes.hpp"
#include "improto/relay/decoder.hpp"
#include "improto/wire/text.hpp"
#include "samples.hpp"

using namespace improto;
using namespace improto::relay;

namespace {

// Decodes all of `bytes` as one stream; fails the test on any error.
std::vector<message> decode_all(std::string_view bytes, direction dir) {
  decoder d(dir);
  std::vector<message> out;
  while (true) {
    auto r = d.next(bytes);
    REQUIRE_MESSAGE(r.has_value(), r.error().message());
    if (!*r) break;
    out.push_back(std::move(**r));
  }
  auto end = d.finish();
  REQUIRE(end.has_value());
  CHECK_FALSE(end->has_value());
  return out;
}

// serialize()'s checks alone.
result<void> check(const message& m, const wire::limits& lim = {}) {
  std::string out;
  auto r = serialize(m, out, lim);
  if (!r) CHECK(out.empty());  // nothing written
  return r;
}

std::string check_error(const message& m, const wire::limits& lim = {}) {
  auto r = check(m, lim);
  return r ? std::string("ok") : std::string(name(r.error().code()));
}

}  // namespace

TEST_CASE("every message type serializes to its exact bytes and decodes back") {
  std::set<std::size_t> types;
  for (const auto& s : test::relay_samples()) {
    CAPTURE(describe(s.msg));
    types.insert(s.msg.index());
    CHECK(serialize(s.msg) == s.bytes);
    CHECK(serialize_unchecked(s.msg) == s.bytes);
    // The per-type overloads append.
    std::string out = "prefix";
    std::visit([&out](const auto& v) { serialize_unchecked(v, out); }, s.msg);
    CHECK(out == "prefix" + s.bytes);

    auto back = decode_all(s.bytes, direction_of(s.msg));
    REQUIRE(back.size() == 1);
    CHECK(back[0] == s.msg);
    CHECK(check(s.msg).has_value());
  }
  CHECK(types.size() == std::variant_size_v<message>);
}

TEST_CASE("all samples in one stream per direction, CRLF-free and exact") {
  for (auto dir : {direction::to_server, direction::to_client}) {
    std::string stream;
    std::vector<message> expected;
    for (const auto& s : test::relay_samples()) {
      if (direction_of(s.msg) != dir && !std::holds_alternative<error_reply>(s.msg)) continue;
      stream += s.bytes;
      expected.push_back(s.msg);
    }
    CHECK(decode_all(stream, dir) == expected);
  }
}

TEST_CASE("error replies decode in both directions") {
  for (auto dir : {direction::to_server, direction::to_client}) {
    auto back = decode_all("ERROR 103 Header Incomplete\n\n", dir);
    REQUIRE(back.size() == 1);
    CHECK(back[0] == message(error_reply{103, "Header Incomplete"}));
  }
}

TEST_CASE("describe") {
  CHECK(describe(register_request{role::to_recv, "alice"}) ==
        "register role=TORECV user=\"alice\"");
  CHECK(describe(relay::send{"bob", "hi\n"}) == "send to=\"bob\" body=\"hi\\n\"");
  CHECK(describe(error_reply{102, "Unable to send"}) ==
        "error_reply code=102 text=\"Unable to send\"");
  CHECK(describe(error_reply{-1, ""}) == "error_reply code=-1 text=\"\"");
  CHECK(describe(file_list{{{"a b", 3}}, true}) ==
        "file_list count=1 more=yes file=\"a b\" size=3");
  CHECK(describe(user_list{}) == "user_list count=0 more=no");
  CHECK(describe(transfer{1, 2, 0, "ab", 3}) ==
        "transfer id=1 size=2 offset=0 sha256=\"ab\" udp_port=3");
  CHECK(describe(subscribe{}) == "subscribe");
  CHECK(describe(cancelled{9}) == "cancelled id=9");
  CHECK(role_name(role::to_send) == "TOSEND");
  CHECK(role_name(role::to_recv) == "TORECV");
}

TEST_CASE("direction_of") {
  for (const auto& s : test::relay_samples()) {
    CAPTURE(describe(s.msg));
    // A message decodes in its own direction and is refused in the other,
    // except ERROR, which goes both ways.
    direction own = direction_of(s.msg);
    direction other = own == direction::to_server ? direction::to_client : direction::to_server;
    decoder d(other);
    std::string_view in(s.bytes);
    auto r = d.next(in);
    if (std::holds_alternative<error_reply>(s.msg)) {
      CHECK(own == direction::to_client);
      CHECK(r.has_value());
    } else {
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error() == errc::unknown_command);
      CHECK(in.empty());  // skipped whole
    }
  }
}

TEST_CASE("check refuses fields that cannot be written as they are") {
  CHECK(check_error(register_request{role::to_send, "alice smith"}) == "ok");
  CHECK(check_error(register_request{role::to_send, ""}) == "ok");
  CHECK(check_error(register_request{role::to_send, "a\nb"}) == "invalid_argument");
  CHECK(check_error(register_request{role::to_send, " alice"}) == "invalid_argument");
  CHECK(check_error(register_request{role::to_send, "alice\t"}) == "invalid_argument");
  CHECK(check_error(relay::send{"b\x01ob", "x"}) == "invalid_argument");
  CHECK(check_error(sent{"bob\r"}) == "invalid_argument");
  CHECK(check_error(received{"a\n\nb"}) == "invalid_argument");
  CHECK(check_error(error_reply{99, "x"}) == "invalid_argument");
  CHECK(check_error(error_reply{1000, "x"}) == "invalid_argument");
  CHECK(check_error(error_reply{-102, "x"}) == "invalid_argument");
  CHECK(check_error(error_reply{102, "x "}) == "invalid_argument");
  CHECK(check_error(list_users{"a\x01"}) == "invalid_argument");
  CHECK(check_error(user_list{{"alice", ""}, false}) == "invalid_argument");
  CHECK(check_error(user_list{{"al\nice"}, false}) == "invalid_argument");
  CHECK(check_error(file_list{{{"", 1}}, false}) == "invalid_argument");
  CHECK(check_error(file_list{{{"a\nb", 1}}, false}) == "invalid_argument");
  CHECK(check_error(file_list{{{"a", UINT64_MAX}}, false}) == "invalid_argument");
  CHECK(check_error(download{"a", 0, 0}) == "invalid_argument");
  CHECK(check_error(download{"a", 1, UINT64_MAX}) == "invalid_argument");
  CHECK(check_error(transfer{0, 1, 0, test::hello_sha, 1}) == "invalid_argument");
  CHECK(check_error(transfer{1, 1, 2, test::hello_sha, 1}) == "invalid_argument");
  CHECK(check_error(transfer{1, 1, 0, "E3B0", 1}) == "invalid_argument");
  std::string upper = test::hello_sha;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(check_error(transfer{1, 1, 0, upper, 1}) == "invalid_argument");
  CHECK(check_error(transfer{1, 1, 0, test::hello_sha, 0}) == "invalid_argument");
  CHECK(check_error(relay::pause{0}) == "invalid_argument");
  CHECK(check_error(paused{0}) == "invalid_argument");

  wire::limits small{.max_line = 32, .max_headers = 2, .max_body = 4};
  CHECK(check_error(relay::send{"bob", "1234"}, small) == "ok");
  CHECK(check_error(relay::send{"bob", "12345"}, small) == "body_too_large");
  CHECK(check_error(received{"abcdefghijklmnopqrstuvwxyz"}, small) == "line_too_long");
  CHECK(check_error(user_list{{"a", "b", "c"}, false}, small) == "body_too_large");
}

TEST_CASE("valid_user") {
  for (std::string_view good : {"alice", "Bob42", "x", "0", "ALLx", "xALL",
                                "abcdefghijklmnopqrstuvwxyz012345"}) {
    CAPTURE(good);
    CHECK(valid_user(good));
  }
  for (std::string_view bad : {"", "ALL", "all", "All", "alice smith", "al!ce", "a_b", "a.b",
                               "abcdefghijklmnopqrstuvwxyz0123456", "\xc3\xa9t\xc3\xa9", "a\tb"}) {
    CAPTURE(wire::escape(bad));
    CHECK_FALSE(valid_user(bad));
  }
  CHECK(check_user("alice"));
  CHECK(check_user("al ice").error() == errc::invalid_name);
  CHECK(check_user("ALL").error() == errc::invalid_name);
  CHECK(is_broadcast("ALL"));
  CHECK(is_broadcast("all"));
  CHECK_FALSE(is_broadcast("ALLx"));
  CHECK_FALSE(is_broadcast(""));
}

TEST_CASE("valid_file_name") {
  for (std::string_view good : {"a", "my song.mp3", "..a", "a..", "r\xc3\xa9sum\xc3\xa9.pdf",
                                "x y  z", "-"}) {
    CAPTURE(good);
    CHECK(valid_file_name(good));
  }
  CHECK(valid_file_name(std::string(255, 'f')));
  CHECK_FALSE(valid_file_name(std::string(256, 'f')));
  const std::string_view bad_names[] = {
      "", ".", "..", "../etc/passwd", "a/b", "/abs", " lead", "trail ", "tab\t", "new\nline",
      std::string_view("nul\0x", 5), "del\x7f"};
  for (std::string_view bad : bad_names) {
    CAPTURE(wire::escape(bad));
    CHECK_FALSE(valid_file_name(bad));
  }
  // Every valid name survives DOWNLOAD and FILES unchanged.
  for (std::string_view name : {"my song.mp3", "x y  z", "r\xc3\xa9sum\xc3\xa9.pdf"}) {
    CHECK(check(download{std::string(name), 9, 0}).has_value());
    CHECK(check(file_list{{{std::string(name), 1}}, false}).has_value());
    CHECK(check(list_files{std::string(name)}).has_value());
  }
}

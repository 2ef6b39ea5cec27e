#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "improto/registry/decoder.hpp"
#include "improto/registry/messages.hpp"
#include "improto/wire/text.hpp"

using namespace improto;
using registry::command;
using registry::command_kind;
using registry::entry;
using registry::peer_message;
using registry::user_list;

namespace {

template <class T>
std::string bytes_of(const T& value) {
  std::string out;
  auto r = registry::serialize(value, out);
  REQUIRE_MESSAGE(r, r.error().message());
  return out;
}

template <class T>
errc refusal(const T& value) {
  std::string out = "kept";
  auto r = registry::serialize(value, out);
  REQUIRE_FALSE(r);
  CHECK(out == "kept");  // nothing appended on refusal
  CHECK_FALSE(r.error().detail().empty());
  return r.error().code();
}

template <class T>
errc parse_error(const result<T>& r) {
  REQUIRE_FALSE(r);
  CHECK_FALSE(r.error().detail().empty());
  return r.error().code();
}

}  // namespace

TEST_CASE("entries parse, serialize and round-trip") {
  struct row {
    std::string text;
    entry expected;
    std::string canonical;
  };
  const std::vector<row> rows = {
      {"Ali@127.0.0.1:54321", {"Ali", "127.0.0.1", 54321}, "Ali@127.0.0.1:54321"},
      {"bob@localhost:1", {"bob", "localhost", 1}, "bob@localhost:1"},
      {"c@[::1]:4000", {"c", "::1", 4000}, "c@[::1]:4000"},
      {"d@::1:4000", {"d", "::1", 4000}, "d@[::1]:4000"},
      {"e@[2001:db8::8:800:200c:417a]:65535", {"e", "2001:db8::8:800:200c:417a", 65535},
       "e@[2001:db8::8:800:200c:417a]:65535"},
      {"f@0.0.0.0:080", {"f", "0.0.0.0", 80}, "f@0.0.0.0:80"},
      {"\xc5\x9e\xc3\xbckr\xc3\xbc@a-b.c_d:9", {"\xc5\x9e\xc3\xbckr\xc3\xbc", "a-b.c_d", 9},
       "\xc5\x9e\xc3\xbckr\xc3\xbc@a-b.c_d:9"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.text);
    auto e = registry::parse_entry(r.text);
    REQUIRE(e);
    CHECK(*e == r.expected);
    CHECK(bytes_of(*e) == r.canonical);
    CHECK(registry::to_string(*e) == r.canonical);
    CHECK(registry::parse_entry(r.canonical) == r.expected);
  }
  CHECK(registry::describe(entry{"Ali", "::1", 5}) == "entry name=\"Ali\" host=\"::1\" port=5");
}

TEST_CASE("user names follow the SPEC and stay within 64 bytes") {
  CHECK(registry::check_user("Ali"));
  CHECK(registry::valid_user("Ali"));
  CHECK_FALSE(registry::valid_user("A li"));
  CHECK(registry::check_user(std::string(64, 'a')));
  CHECK(registry::check_user("D\xc4\x9f" "an-\xe2\x82\xac_\xf0\x9f\x98\x80"));  // 2-, 3-, 4-byte UTF-8
  CHECK(registry::check_user("!#$%&'*+-./;<=>?[\\]^_`{|}~\"()"));
  const std::vector<std::string> bad = {
      "",
      std::string(65, 'a'),
      "a:b",
      "a@b",
      "a,b",
      "a b",
      "a\tb",
      "a\nb",
      "a\rb",
      std::string("a\0b", 3),
      "a\x7f",
      "a\xc2\x80",          // C1 control
      "a\xc2\xa0",          // no-break space
      "a\xe1\x9a\x80",      // ogham space mark
      "a\xe2\x80\x8a",      // hair space
      "a\xe2\x80\xa8",      // line separator
      "a\xe3\x80\x80",      // ideographic space
      "a\xc3",              // cut sequence
      "a\xc3(",             // bad continuation
      "a\xe0\x80\xaf",      // overlong
      "a\xed\xa0\x80",      // surrogate
      "a\xf4\x90\x80\x80",  // past U+10FFFF
      "a\xff",
  };
  for (const auto& name : bad) {
    CAPTURE(wire::escape(name));
    CHECK(parse_error(registry::check_user(name)) == errc::invalid_name);
    CHECK(parse_error(registry::parse_entry(name + "@1.2.3.4:5")) == errc::invalid_name);
  }
}

TEST_CASE("hosts: IPv4, IPv6 and host names") {
  for (std::string_view good :
       {"1.2.3.4", "255.255.255.255", "0.0.0.0", "localhost", "a.b-c.d_e", "1a.example",
        "::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
        "fe80::1:2", "::ffff:10.0.0.1", "1:2:3:4:5:6:1.2.3.4", "ABCD:ef01::"}) {
    CAPTURE(good);
    CHECK(registry::check_host(good));
  }
  for (std::string_view bad :
       {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1..2.3", "1.2.3.4.", ".a", "a..b",
        "a b", "a/b", "a:b:", ":1", "1:::2", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7",
        "12345::", "g::1", "::1.2.3", "::1.2.3.4:5", "fe80::1%lo", "[::1]"}) {
    CAPTURE(bad);
    CHECK(parse_error(registry::check_host(bad)) == errc::invalid_argument);
  }
  CHECK(registry::check_host(std::string(63, 'a') + "." + std::string(63, 'b')));
  CHECK_FALSE(registry::check_host(std::string(64, 'a')));
  std::string long_name;
  while (long_name.size() < 254) long_name += "abcdefghi.";
  CHECK_FALSE(registry::check_host(long_name.substr(0, 254)));
}

TEST_CASE("entry errors") {
  for (std::string_view bad : {"Ali", "Ali@1.2.3.4", "Ali@1.2.3.4:", "Ali@1.2.3.4:0",
                               "Ali@1.2.3.4:65536", "Ali@1.2.3.4:-1", "Ali@1.2.3.4: 1",
                               "Ali@:1", "Ali@[::1]", "Ali@[::1]4000", "Ali@[::1:4000",
                               "Ali@[1.2.3.4]:1", "Ali@[]:1", "Ali@1.2.3.4:5\r\n"}) {
    CAPTURE(wire::escape(bad));
    CHECK(parse_error(registry::parse_entry(bad)) == errc::invalid_argument);
  }
  CHECK(refusal(entry{"Ali", "1.2.3.4", 0}) == errc::invalid_argument);
  CHECK(refusal(entry{"A li", "1.2.3.4", 1}) == errc::invalid_name);
  CHECK(refusal(entry{"Ali", "1.2.3.4 ", 1}) == errc::invalid_argument);
}

TEST_CASE("commands parse, serialize and round-trip") {
  auto reg = registry::parse_command("REGISTER Ali@127.0.0.1:54321");
  REQUIRE(reg);
  CHECK(*reg == command{command_kind::register_, {"Ali", "127.0.0.1", 54321}});
  CHECK(bytes_of(*reg) == "REGISTER Ali@127.0.0.1:54321");

  auto out = registry::parse_command("\r\n Logout \t hamza@[::1]:54321\r\n\r\n");
  REQUIRE(out);
  CHECK(*out == command{command_kind::logout, {"hamza", "::1", 54321}});
  CHECK(bytes_of(*out) == "LOGOUT hamza@[::1]:54321");
  CHECK(registry::parse_command(bytes_of(*out)) == *out);
  CHECK(registry::describe(*out) == "logout name=\"hamza\" host=\"::1\" port=54321");
  CHECK(registry::describe(*reg) == "register name=\"Ali\" host=\"127.0.0.1\" port=54321");

  CHECK(parse_error(registry::parse_command("")) == errc::unknown_command);
  CHECK(parse_error(registry::parse_command(" \r\n\t")) == errc::unknown_command);
  CHECK(parse_error(registry::parse_command("LIST")) == errc::unknown_command);
  CHECK(parse_error(registry::parse_command("REGISTER\nAli@1.2.3.4:5")) == errc::unknown_command);
  CHECK(parse_error(registry::parse_command("LOGOUT")) == errc::invalid_argument);
  CHECK(parse_error(registry::parse_command("REGISTER Ali")) == errc::invalid_argument);
  CHECK(parse_error(registry::parse_command("REGISTER A:li@1.2.3.4:5")) == errc::invalid_name);
  CHECK(parse_error(registry::parse_command("REGISTER @1.2.3.4:5")) == errc::invalid_name);

  CHECK(refusal(command{command_kind::register_, {"", "1.2.3.4", 5}}) == errc::invalid_name);
  CHECK(refusal(command{command_kind::logout, {"a", "1.2.3.4", 0}}) == errc::invalid_argument);
}

TEST_CASE("user lists as the seed server sends them") {
  auto seed = registry::parse_list("Ali@127.0.0.1:54321,Veli@127.0.0.1:54322,\r\n\r\n");
  REQUIRE(seed);
  REQUIRE(seed->entries.size() == 2);
  CHECK(seed->entries[0] == entry{"Ali", "127.0.0.1", 54321});
  CHECK(seed->entries[1] == entry{"Veli", "127.0.0.1", 54322});
  CHECK(bytes_of(*seed) == "Ali@127.0.0.1:54321,Veli@127.0.0.1:54322,");
  CHECK(registry::serialize_list(seed->entries) == "Ali@127.0.0.1:54321,Veli@127.0.0.1:54322,");
  CHECK(registry::describe(*seed) ==
        "list count=2 entry=\"Ali@127.0.0.1:54321\" entry=\"Veli@127.0.0.1:54322\"");

  for (std::string_view empty : {"", ",", "\r\n\r\n", " , ,\n"}) {
    auto l = registry::parse_list(empty);
    REQUIRE(l);
    CHECK(l->entries.empty());
  }
  CHECK(bytes_of(user_list{}) == "");
  CHECK(registry::describe(user_list{}) == "list count=0");

  auto bad = registry::parse_list("a@1.2.3.4:5,b@1.2.3.4:x,");
  CHECK(parse_error(bad) == errc::invalid_argument);
  CHECK(bad.error().detail().rfind("entry 2: ", 0) == 0);
  CHECK(parse_error(registry::parse_list("a@1.2.3.4:5,b:c@1.2.3.4:6")) == errc::invalid_name);

  user_list mixed{{{"a", "1.2.3.4", 5}, {"b c", "1.2.3.4", 6}}};
  CHECK(refusal(mixed) == errc::invalid_name);
  CHECK_FALSE(registry::serialize_list(mixed.entries));

  user_list many;
  for (int i = 1; i <= 300; ++i) {
    many.entries.push_back({"user" + std::to_string(i), i % 2 ? "10.0.0.1" : "fe80::1",
                            static_cast<std::uint16_t>(i)});
  }
  CHECK(registry::parse_list(bytes_of(many)) == many);
}

TEST_CASE("peer datagrams") {
  auto m = registry::parse_peer_message("Utku: Merhaba Lara");
  REQUIRE(m);
  CHECK(*m == peer_message{"Utku", "Merhaba Lara"});
  CHECK(bytes_of(*m) == "Utku: Merhaba Lara");
  CHECK(registry::describe(*m) == "peer sender=\"Utku\" text=\"Merhaba Lara\"");

  CHECK(registry::parse_peer_message("a: ") == peer_message{"a", ""});
  CHECK(registry::parse_peer_message("a: b: c") == peer_message{"a", "b: c"});
  CHECK(registry::parse_peer_message(std::string("a: \0\xff", 5)) ==
        peer_message{"a", std::string("\0\xff", 2)});

  CHECK(parse_error(registry::parse_peer_message("")) == errc::invalid_argument);
  CHECK(parse_error(registry::parse_peer_message("Utku:hi")) == errc::invalid_argument);
  CHECK(parse_error(registry::parse_peer_message("Utku")) == errc::invalid_argument);
  CHECK(parse_error(registry::parse_peer_message(": hi")) == errc::invalid_name);
  CHECK(parse_error(registry::parse_peer_message("U tku: hi")) == errc::invalid_name);
  CHECK(parse_error(registry::parse_peer_message("U:tku: hi")) == errc::invalid_name);

  // 65,507 bytes is the most one UDP datagram carries; both sides enforce it.
  std::string text(registry::max_datagram_size - 6, 'x');
  auto largest = registry::parse_peer_message("Utku: " + text);
  REQUIRE(largest);
  CHECK(largest->text == text);
  CHECK(bytes_of(*largest).size() == 65'507);
  CHECK(parse_error(registry::parse_peer_message("Utku: " + text + "x")) ==
        errc::datagram_too_large);
  CHECK(refusal(peer_message{"Utku", text + "x"}) == errc::datagram_too_large);
  CHECK(refusal(peer_message{"Ut ku", "hi"}) == errc::invalid_name);
  CHECK(refusal(peer_message{"", "hi"}) == errc::invalid_name);
}

TEST_CASE("every message type round-trips through the variant") {
  std::vector<registry::message> messages = {
      command{command_kind::register_, {"Ali", "127.0.0.1", 54321}},
      command{command_kind::logout, {"b", "::ffff:1.2.3.4", 1}},
      user_list{{{"a", "h", 1}, {"b", "1.2.3.4", 2}}},
      user_list{},
      peer_message{"Defne", "Nice app!"},
      peer_message{"x", ""},
  };
  for (const auto& m : messages) {
    CAPTURE(registry::describe(m));
    auto bytes = registry::serialize(m);
    REQUIRE(bytes);
    registry::message back;
    if (std::holds_alternative<command>(m)) {
      back = registry::parse_command(*bytes).value();
    } else if (std::holds_alternative<user_list>(m)) {
      back = registry::parse_list(*bytes).value();
    } else {
      back = registry::parse_peer_message(*bytes).value();
    }
    CHECK(back == m);
    CHECK(registry::describe(back) == registry::describe(m));
  }
  CHECK_FALSE(registry::serialize(registry::message{peer_message{"a b", "x"}}));
}

#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "../../libimproto/src/buddy/udp_shape.hpp"
#include "improto/buddy/decoder.hpp"
#include "improto/buddy/messages.hpp"
#include "support.hpp"

namespace buddy = improto::buddy;
using improto::errc;
using buddy_test::refused;

TEST_CASE("UDP requests serialize exactly, without a line end, and parse back") {
  const buddy::udp_request all[] = {
      buddy::set_request{"alice", buddy::presence::online, 4000},
      buddy::set_request{"alice", buddy::presence::offline, 0},
      buddy::set_request{"a", buddy::presence::online, 65535},
      buddy::get_request{"alice"},
  };
  const char* bytes[] = {"SET alice 100 4000", "SET alice 101 0", "SET a 100 65535", "GET alice"};
  for (std::size_t i = 0; i < std::size(all); ++i) {
    CAPTURE(bytes[i]);
    std::string wire = buddy::serialize(all[i]).value();
    CHECK(wire == bytes[i]);
    auto back = buddy::parse_udp_request(wire);
    REQUIRE(back);
    CHECK(*back == all[i]);
  }
}

TEST_CASE("parse_udp_request: datagrams over 65507 bytes") {
  std::string big = "GET alice" + std::string(buddy::max_datagram - 9, ' ');
  REQUIRE(big.size() == buddy::max_datagram);
  auto fits = buddy::parse_udp_request(big);
  REQUIRE(fits);
  CHECK(*fits == buddy::udp_request{buddy::get_request{"alice"}});
  big += ' ';
  auto over = buddy::parse_udp_request(big);
  REQUIRE_FALSE(over);
  CHECK(over.error() == errc::datagram_too_large);
}

TEST_CASE("status replies serialize exactly and parse back") {
  buddy::buddy_list two{{{"bob", buddy::presence::online, "192.168.1.20", 4000},
                         {"carol", buddy::presence::offline, "0.0.0.0", 0}}};
  buddy::buddy_list v6{{{"d", buddy::presence::online, "2001:db8::1", 1}}};
  const buddy::status_reply all[] = {two, v6, buddy::buddy_list{},
                                     buddy::response::no_such_user(), buddy::response::invalid()};
  const char* bytes[] = {"bob 100 192.168.1.20 4000\ncarol 101 0.0.0.0 0\n",
                         "d 100 2001:db8::1 1\n", "", "202 NO SUCH USER\n", "201 INVALID\n"};
  for (std::size_t i = 0; i < std::size(all); ++i) {
    CAPTURE(bytes[i]);
    auto wire = buddy::serialize(all[i]);
    REQUIRE(wire);
    CHECK(*wire == bytes[i]);
    auto back = buddy::parse_status_reply(*wire);
    REQUIRE(back);
    CHECK(*back == all[i]);
  }
  CHECK(buddy::buddy_entry{} == buddy::buddy_entry{"", buddy::presence::offline, "0.0.0.0", 0});
}

TEST_CASE("a buddy list that does not fit one datagram is refused") {
  // Each line "uNNNNN 100 10.0.0.1 4000\n" is 25 bytes.
  buddy::buddy_list list;
  std::size_t size = 0;
  for (int i = 0; size + 25 <= buddy::max_datagram; ++i) {
    // "u" then 5 digits; built by appending, as GCC 12 -O3 misreports
    // -Wrestrict on `"u" + std::string`.
    std::string id = std::to_string(100000 + i);
    id[0] = 'u';
    list.buddies.push_back({id, buddy::presence::online, "10.0.0.1", 4000});
    size += 25;
  }
  // Pad the last entry's id so the datagram is exactly full.
  std::size_t room = buddy::max_datagram - size;
  REQUIRE(room < 25);
  list.buddies.back().user += std::string(room, 'x');
  std::string out = "kept";
  auto full = buddy::serialize(list, out);
  REQUIRE(full);
  CHECK(out.size() == 4 + buddy::max_datagram);
  auto back = buddy::parse_status_reply(std::string_view(out).substr(4));
  REQUIRE(back);
  CHECK(*back == buddy::status_reply{list});

  list.buddies.back().user += 'x';
  std::string nothing = "kept";
  auto over = buddy::serialize(list, nothing);
  REQUIRE_FALSE(over);
  CHECK(over.error() == errc::datagram_too_large);
  CHECK(nothing == "kept");
  auto as_reply = buddy::serialize(buddy::status_reply{list});
  REQUIRE_FALSE(as_reply);
  CHECK(as_reply.error() == errc::datagram_too_large);

  auto long_error = buddy::serialize(
      buddy::status_reply{buddy::response{202, std::string(buddy::max_datagram, 'x')}});
  REQUIRE_FALSE(long_error);
  CHECK(long_error.error() == errc::datagram_too_large);
}

TEST_CASE("parse_status_reply: datagrams over 65507 bytes") {
  std::string line = "bob 100 10.0.0.1 4000\n";
  std::string big;
  while (big.size() + line.size() <= buddy::max_datagram) big += line;
  auto fits = buddy::parse_status_reply(big);
  REQUIRE(fits);
  CHECK(std::get<buddy::buddy_list>(*fits).buddies.size() == big.size() / line.size());
  std::string over(buddy::max_datagram + 1, 'a');
  auto r = buddy::parse_status_reply(over);
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::datagram_too_large);
}

TEST_CASE("a bad buddy line is reported with its line number") {
  auto r = buddy::parse_status_reply("bob 100 10.0.0.1 4000\ncarol 100 10.0.0.300 1\n");
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::invalid_argument);
  CHECK(r.error().detail() == "line 2: \"10.0.0.300\" is not an IP address");
}

TEST_CASE("describe() of UDP messages") {
  CHECK(buddy::describe(buddy::udp_request{buddy::set_request{"a", buddy::presence::offline, 7}}) ==
        "set user=\"a\" status=offline msgport=7");
  CHECK(buddy::describe(buddy::status_reply{buddy::buddy_list{}}) == "buddies n=0");
  // Only hand-built messages hold other values; describe() shows the number.
  CHECK(buddy::describe(buddy::set_request{"a", static_cast<buddy::presence>(7), 1}) ==
        "set user=\"a\" status=7 msgport=1");
  CHECK(buddy::name(buddy::presence::online) == "online");
  CHECK(buddy::name(buddy::presence::offline) == "offline");
}

TEST_CASE("datagrams the peer would misread are refused") {
  CHECK(refused(buddy::udp_request{buddy::set_request{"alice", buddy::presence::online, 0}}) ==
        errc::invalid_argument);
  CHECK(refused(buddy::udp_request{
            buddy::set_request{"alice", static_cast<buddy::presence>(102), 1}}) ==
        errc::invalid_argument);
  CHECK(refused(buddy::udp_request{buddy::get_request{"al ice"}}) == errc::invalid_name);
  CHECK(refused(buddy::buddy_list{{{"bob", buddy::presence::online, "1.2.3", 4000}}}) ==
        errc::invalid_argument);
  CHECK(refused(buddy::buddy_list{{{"bob", buddy::presence::online, "::1%eth0", 4000}}}) ==
        errc::invalid_argument);
  // An error line that parses as a buddy line would be read as one.
  CHECK(refused(buddy::status_reply{buddy::response{200, "100 1.2.3.4 5"}}) ==
        errc::invalid_argument);
}

TEST_CASE("udp_verb_of reads the verb as parse_udp_request does") {
  CHECK(buddy::udp_verb_of("SET alice 100 4000") == buddy::udp_verb::set);
  CHECK(buddy::udp_verb_of("  set") == buddy::udp_verb::set);
  CHECK(buddy::udp_verb_of("SET\r\n") == buddy::udp_verb::set);
  CHECK(buddy::udp_verb_of("set bad!id") == buddy::udp_verb::set);
  CHECK(buddy::udp_verb_of("GET x y z") == buddy::udp_verb::get);
  CHECK(buddy::udp_verb_of("SETX a") == buddy::udp_verb::none);
  CHECK(buddy::udp_verb_of("") == buddy::udp_verb::none);
  CHECK(buddy::udp_verb_of("\tSET\ta") == buddy::udp_verb::set);
  // A line end ends the word too, even where parse_udp_request then fails.
  CHECK(buddy::udp_verb_of("SET\rfoo") == buddy::udp_verb::set);
  CHECK(buddy::udp_verb_of("SET\nxyz") == buddy::udp_verb::set);
  CHECK(buddy::udp_verb_of("\nSET") == buddy::udp_verb::none);
}

namespace {

// The one-pass view against the word-by-word reading: the same verdict, the
// same fields, and udp_verb_of()'s verb.
void same_as_words(std::string_view bytes) {
  CAPTURE(improto::wire::quote(bytes.substr(0, 80)));
  // In a buffer of exactly its size, so that ASan catches a read past the end
  // (the common-shape reading loads whole words).
  auto copy = std::make_unique<char[]>(bytes.size() + (bytes.empty() ? 1 : 0));
  if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
  const std::string_view datagram(copy.get(), bytes.size());
  auto view = buddy::parse_udp_request_view(datagram);
  auto words = buddy::detail::parse_udp_request_words(datagram);
  CHECK(view.valid == words.has_value());
  CHECK(view.verb == buddy::udp_verb_of(datagram));
  // The common-shape reading gives what the general one gives.
  auto general = buddy::detail::parse_udp_request_general(datagram);
  CHECK(general.valid == view.valid);
  CHECK(general.verb == view.verb);
  CHECK(general.user.data() == view.user.data());
  CHECK(general.user.size() == view.user.size());
  CHECK(general.status == view.status);
  CHECK(general.msgport == view.msgport);
  // The server's reading (ids not classified, looked up among valid ones):
  // whenever it reads an id that is a valid userid, it has the view's answer.
  buddy::udp_request_view unchecked;
  if (buddy::detail::read_common_shape<false>(datagram, unchecked)) {
    CHECK(unchecked.valid);
    if (buddy::valid_user(unchecked.user)) {
      CHECK(view.valid);
      CHECK(unchecked.verb == view.verb);
      CHECK(unchecked.user.data() == view.user.data());
      CHECK(unchecked.user.size() == view.user.size());
      CHECK(unchecked.status == view.status);
      CHECK(unchecked.msgport == view.msgport);
    }
  } else {
    // What it leaves is never a shape the checked reading takes.
    buddy::udp_request_view checked;
    CHECK_FALSE(buddy::detail::read_common_shape<true>(datagram, checked));
  }
  auto whole = buddy::parse_udp_request(datagram);
  REQUIRE(whole.has_value() == words.has_value());
  if (!words) {
    // The error is the word-by-word reading's, message included.
    CHECK(whole.error().code() == words.error().code());
    CHECK(whole.error().detail() == words.error().detail());
    return;
  }
  CHECK(*whole == *words);
  if (const auto* set = std::get_if<buddy::set_request>(&*words)) {
    CHECK(view.verb == buddy::udp_verb::set);
    CHECK(view.user == set->user);
    CHECK(view.status == set->status);
    CHECK(view.msgport == set->msgport);
  } else {
    CHECK(view.verb == buddy::udp_verb::get);
    CHECK(view.user == std::get<buddy::get_request>(*words).user);
  }
  // The view points into the datagram.
  CHECK(view.user.data() >= datagram.data());
  CHECK(view.user.data() + view.user.size() <= datagram.data() + datagram.size());
}

}  // namespace

TEST_CASE("parse_udp_request_view: fields in place, nothing copied") {
  std::string_view d = "\tset  Alice_1.-x\tonline 04000\r\n";
  auto v = buddy::parse_udp_request_view(d);
  REQUIRE(v.valid);
  CHECK(v.verb == buddy::udp_verb::set);
  CHECK(v.user == "Alice_1.-x");
  CHECK(v.user.data() == d.data() + 6);
  CHECK(v.status == buddy::presence::online);
  CHECK(v.msgport == 4000);
  auto g = buddy::parse_udp_request_view("GET bob");
  REQUIRE(g.valid);
  CHECK(g.verb == buddy::udp_verb::get);
  CHECK(g.user == "bob");
  auto off = buddy::parse_udp_request_view("SET bob 101 0");
  REQUIRE(off.valid);
  CHECK(off.status == buddy::presence::offline);
  CHECK(off.msgport == 0);
}

TEST_CASE("parse_udp_request_view: bad datagrams keep their verb") {
  struct bad {
    std::string_view bytes;
    buddy::udp_verb verb;
  };
  const bad all[] = {
      {"", buddy::udp_verb::none},
      {"   ", buddy::udp_verb::none},
      {"SE alice", buddy::udp_verb::none},
      {"SETX alice 100 1", buddy::udp_verb::none},
      {"PUT alice", buddy::udp_verb::none},
      {"S\x45T alice 100 1x", buddy::udp_verb::set},
      {"SET alice 100 0", buddy::udp_verb::set},         // online needs a port
      {"SET alice 100 65536", buddy::udp_verb::set},     // port too large
      {"SET alice 100 99999999999999999999", buddy::udp_verb::set},
      {"SET alice 102 1", buddy::udp_verb::set},         // no such status
      {"SET alice 1000 1", buddy::udp_verb::set},
      {"SET alice ONLIN 1", buddy::udp_verb::set},
      {"SET alice 100", buddy::udp_verb::set},           // too few words
      {"SET alice 100 1 x", buddy::udp_verb::set},       // too many
      {"SET al!ce 100 1", buddy::udp_verb::set},         // bad userid
      {"SET abcdefghijklmnopqrstuvwxyz1234567 100 1", buddy::udp_verb::set},  // 33 chars
      {"SET alice 100 1\n\n", buddy::udp_verb::set},     // two line ends
      {"SET alice 100 1\r", buddy::udp_verb::set},       // CR alone
      {"SET alice\n100 1", buddy::udp_verb::set},        // a line end inside
      {"SET\rx alice 100 1", buddy::udp_verb::set},
      {"GET", buddy::udp_verb::get},
      {"GET\r\n", buddy::udp_verb::get},
      {"get alice bob", buddy::udp_verb::get},
      {"GET al\x01ice", buddy::udp_verb::get},
      {"GET -\xff", buddy::udp_verb::get},
  };
  for (const auto& b : all) {
    CAPTURE(improto::wire::quote(b.bytes));
    auto v = buddy::parse_udp_request_view(b.bytes);
    CHECK_FALSE(v.valid);
    CHECK(v.verb == b.verb);
    same_as_words(b.bytes);
  }
  // A datagram over the limit is refused before anything else is read.
  std::string big = "GET alice" + std::string(buddy::max_datagram - 8, ' ');
  auto v = buddy::parse_udp_request_view(big);
  CHECK_FALSE(v.valid);
  CHECK(v.verb == buddy::udp_verb::get);
  same_as_words(big);
  big.pop_back();
  CHECK(buddy::parse_udp_request_view(big).valid);
}

TEST_CASE("parse_udp_request_view agrees with the word-by-word reading, cut and changed anywhere") {
  const std::string_view bases[] = {
      "SET alice 100 4000", "set a ONLINE 65535", "SET alice offline 0\r\n", "GET alice\n",
      " \tGeT  x.y-z_0 \t", "SET alice 101 00000", "SET u000 100 40000",
  };
  // Bytes a change may bring in: each class the grammar tells apart.
  const char changes[] = {' ', '\t', '\r', '\n', '\0', 'x', 'E', '0', '1', '9', '.', '!', '\x7f',
                          '\xff'};
  for (auto base : bases) {
    const std::string b(base);
    for (std::size_t cut = 0; cut <= b.size(); ++cut) {
      same_as_words(std::string_view(b).substr(0, cut));  // every prefix
      same_as_words(std::string_view(b).substr(cut));      // every suffix
      for (char c : changes) {
        std::string inserted = b;
        inserted.insert(cut, 1, c);
        same_as_words(inserted);
        if (cut < b.size()) {
          std::string replaced = b;
          replaced[cut] = c;
          same_as_words(replaced);
          std::string removed = b;
          removed.erase(cut, 1);
          same_as_words(removed);
        }
      }
    }
  }
}

TEST_CASE("the common shapes, read with word loads, agree with the general reading") {
  // "SET id 10x port" and "GET id" as clients send them, around every edge
  // of the word-load reading: ids of 1 to 33 bytes, ports of 0 to 9 digits,
  // each status; then each of them with any one byte replaced by any value.
  const std::string_view ids[] = {"a", "ab", "abc", "u000", "bob_1", "x.y-z_", "alice12",
                                  "abcdefgh", "abcdefghi", "Alice_Smith-2026.x",
                                  "abcdefghijklmnopqrstuvwxyz012345",
                                  "abcdefghijklmnopqrstuvwxyz0123456"};
  const std::string_view statuses[] = {"100", "101", "102", "110", "001", "1000", "10", "ONLINE"};
  const std::string_view ports[] = {"0",     "1",      "9",      "00",      "4000",     "40000",
                                    "65535", "65536",  "99999",  "00000",   "000001",   "070000",
                                    "123456", "0065535", "999999999"};
  std::vector<std::string> datagrams;
  for (auto id : ids) {
    datagrams.push_back("GET " + std::string(id));
    for (auto status : statuses) {
      for (auto port : ports) {
        datagrams.push_back("SET " + std::string(id) + " " + std::string(status) + " " +
                            std::string(port));
      }
    }
  }
  std::size_t valid = 0;
  for (const auto& d : datagrams) {
    same_as_words(d);
    if (buddy::parse_udp_request_view(d).valid) ++valid;
  }
  // Enough of them are requests for the fast reading to have been tried on
  // valid input as well as on near misses.
  CHECK(valid > 100);
  const std::string_view bases[] = {"SET u000 100 40000", "SET a 101 0", "GET u000", "GET a",
                                    "SET abcdefghi 100 65535", "GET abcdefghijklmnopqrstuvwxyz012345"};
  for (auto base : bases) {
    for (std::size_t at = 0; at < base.size(); ++at) {
      for (int c = 0; c < 256; ++c) {
        std::string changed(base);
        changed[at] = static_cast<char>(c);
        same_as_words(changed);
      }
    }
  }
}

TEST_CASE("the common shapes give the fields in place") {
  std::string_view set = "SET u000 100 40000";
  auto v = buddy::parse_udp_request_view(set);
  REQUIRE(v.valid);
  CHECK(v.verb == buddy::udp_verb::set);
  CHECK(v.user.data() == set.data() + 4);
  CHECK(v.user == "u000");
  CHECK(v.status == buddy::presence::online);
  CHECK(v.msgport == 40000);
  auto off = buddy::parse_udp_request_view("SET abcdefghijklmnopqrstuvwxyz012345 101 00009");
  REQUIRE(off.valid);
  CHECK(off.user == "abcdefghijklmnopqrstuvwxyz012345");
  CHECK(off.status == buddy::presence::offline);
  CHECK(off.msgport == 9);
  CHECK_FALSE(buddy::parse_udp_request_view("SET u000 100 65536").valid);
  CHECK_FALSE(buddy::parse_udp_request_view("SET u000 100 0").valid);
  CHECK(buddy::parse_udp_request_view("SET u000 101 0").valid);
  auto get = buddy::parse_udp_request_view("GET x");
  REQUIRE(get.valid);
  CHECK(get.verb == buddy::udp_verb::get);
  CHECK(get.user == "x");
}

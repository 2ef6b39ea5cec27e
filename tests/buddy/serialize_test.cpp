// Send-side validation: every serialize() refuses what its decoder would
// reject or read differently, and appends nothing when it does.

#include <doctest/doctest.h>

#include <string>

#include "improto/buddy/codes.hpp"
#include "improto/buddy/decoder.hpp"

namespace buddy = improto::buddy;
using improto::errc;

namespace {

template <class Message>
errc refused(const Message& m) {
  std::string out = "kept";
  auto r = buddy::serialize(m, out);
  CHECK(out == "kept");
  REQUIRE_FALSE(r);
  return r.error().code();
}

}  // namespace

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

TEST_CASE("responses, datagrams and chat lines the peer would misread are refused") {
  CHECK(refused(buddy::response{99, "x"}) == errc::invalid_argument);
  CHECK(refused(buddy::response{200, "OK\n201 INVALID"}) == errc::invalid_argument);
  CHECK(refused(buddy::response{200, " OK"}) == errc::invalid_argument);
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
  CHECK(refused(buddy::chat_message{buddy::chat_text{"q"}}) == errc::invalid_argument);
  CHECK(refused(buddy::chat_message{buddy::chat_text{"hi\nq"}}) == errc::invalid_argument);
  CHECK(refused(buddy::chat_message{buddy::chat_hello{"a/b"}}) == errc::invalid_name);
  std::string out;
  REQUIRE(buddy::serialize(buddy::chat_message{buddy::chat_text{"a\tb"}}, out));
  CHECK(out == "a\tb\n");
}

TEST_CASE("response codes map both ways in codes.hpp") {
  CHECK(buddy::to_wire(errc::invalid_name) == buddy::response::invalid());
  CHECK(buddy::to_wire(errc::invalid_argument) == buddy::response::invalid());
  CHECK(buddy::to_wire(errc::not_found) == buddy::response::no_such_user());
  CHECK(buddy::to_wire(errc::name_taken) == buddy::response::user_exists());
  CHECK_FALSE(buddy::to_wire(errc::storage_error));
  CHECK(buddy::from_wire(buddy::response::ok()));
  CHECK(buddy::from_wire(buddy::response::invalid()).error() == errc::invalid_argument);
  CHECK(buddy::from_wire(buddy::response::no_such_user()).error() == errc::not_found);
  CHECK(buddy::from_wire(buddy::response::user_exists()).error() == errc::name_taken);
  auto other = buddy::from_wire(buddy::response{500, "BROKEN"});
  REQUIRE_FALSE(other);
  CHECK(other.error() == errc::rejected);
  CHECK(other.error().detail() == "the server answered '500 BROKEN'");
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

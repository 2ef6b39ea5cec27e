#include <doctest/doctest.h>

#include <string>

#include "improto/buddy/decoder.hpp"
#include "support.hpp"

namespace buddy = improto::buddy;
using improto::errc;
using phase = buddy::chat_decoder::phase;
using buddy_test::refused;

TEST_CASE("chat messages serialize exactly and decode back to themselves") {
  const buddy::chat_message all[] = {
      buddy::chat_hello{"alice"}, buddy::chat_text{"hi there"}, buddy::chat_text{""},
      buddy::chat_text{"caf\xc3\xa9\tQ"}, buddy::chat_quit{}, buddy::chat_busy{},
  };
  const char* bytes[] = {"CHAT alice\n", "hi there\n", "\n", "caf\xc3\xa9\tQ\n", "q\n", "BUSY\n"};
  for (std::size_t i = 0; i < std::size(all); ++i) {
    CAPTURE(bytes[i]);
    std::string wire = buddy::serialize(all[i]).value();
    CHECK(wire == bytes[i]);
    auto back = buddy_test::decode_all<buddy::chat_decoder>(wire);
    CHECK(back.errors.empty());
    REQUIRE(back.messages.size() == 1);
    CHECK(back.messages[0] == all[i]);
  }
}

TEST_CASE("after the first line, CHAT and BUSY are text") {
  // Decoded in context; a fresh decoder would read these lines as control
  // lines, which is why the vectors (fresh-decoder round trip) leave them out.
  const std::string conversation = "CHAT alice\nBUSY\nCHAT bob\nq\n";
  auto r = buddy_test::decode_all<buddy::chat_decoder>(conversation);
  CHECK(r.errors.empty());
  std::vector<buddy::chat_message> expected = {buddy::chat_hello{"alice"}, buddy::chat_text{"BUSY"},
                                               buddy::chat_text{"CHAT bob"}, buddy::chat_quit{}};
  CHECK(r.messages == expected);
  std::string again;
  for (const auto& m : r.messages) again += buddy::serialize(m).value();
  CHECK(again == conversation);

  auto callee = buddy_test::decode_all<buddy::chat_decoder>("hello\nBUSY\n");
  CHECK(callee.messages ==
        std::vector<buddy::chat_message>{buddy::chat_text{"hello"}, buddy::chat_text{"BUSY"}});
}

TEST_CASE("chat_decoder phases") {
  buddy::chat_decoder d;
  CHECK(d.current_phase() == phase::opening);
  std::string_view in = "CHAT alice\n";
  CHECK(**d.next(in) == buddy::chat_message{buddy::chat_hello{"alice"}});
  CHECK(d.current_phase() == phase::talking);
  in = "q\n";
  CHECK(**d.next(in) == buddy::chat_message{buddy::chat_quit{}});
  CHECK(d.current_phase() == phase::ended);
  in = "late\n";
  auto late = d.next(in);
  REQUIRE_FALSE(late);
  CHECK(late.error() == errc::invalid_argument);
  CHECK_FALSE(d.failed());
  CHECK(d.current_phase() == phase::ended);

  buddy::chat_decoder refused;
  in = "BUSY\n";
  CHECK(**refused.next(in) == buddy::chat_message{buddy::chat_busy{}});
  CHECK(refused.current_phase() == phase::ended);

  // A failed hello still opens the chat: the next line is text.
  buddy::chat_decoder bad_hello;
  in = "CHAT\nBUSY\n";
  CHECK(bad_hello.next(in).error() == errc::invalid_argument);
  CHECK(bad_hello.current_phase() == phase::talking);
  CHECK(**bad_hello.next(in) == buddy::chat_message{buddy::chat_text{"BUSY"}});
}

TEST_CASE("chat_decoder: line_too_long and truncated are sticky") {
  buddy::chat_decoder d(improto::wire::limits{.max_line = 4});
  std::string_view in = "abcd\nabcde\nq\n";
  CHECK(**d.next(in) == buddy::chat_message{buddy::chat_text{"abcd"}});
  CHECK(d.next(in).error() == errc::line_too_long);
  CHECK(d.failed());
  CHECK(d.next(in).error() == errc::line_too_long);
  CHECK(d.finish().error() == errc::line_too_long);

  buddy::chat_decoder cut;
  std::string_view part = "CHAT al";
  CHECK_FALSE(cut.next(part)->has_value());
  CHECK(cut.finish().error() == errc::truncated);
  CHECK(cut.failed());
}

TEST_CASE("describe() of chat messages") {
  CHECK(buddy::describe(buddy::chat_message{buddy::chat_hello{"al"}}) == "chat_hello user=\"al\"");
  CHECK(buddy::describe(buddy::chat_message{buddy::chat_text{"a\"b\\"}}) ==
        "chat_text line=\"a\\\"b\\\\\"");
  CHECK(buddy::describe(buddy::chat_quit{}) == "chat_quit");
  CHECK(buddy::describe(buddy::chat_busy{}) == "chat_busy");
}

TEST_CASE("chat_decoder: a line of the default max_line (8192 bytes) is text") {
  std::string line(improto::wire::limits{}.max_line, 'x');
  auto fits = buddy_test::decode_all<buddy::chat_decoder>(line + "\r\n");
  CHECK(fits.errors.empty());
  CHECK(fits.messages == std::vector<buddy::chat_message>{buddy::chat_text{line}});
  auto over = buddy_test::decode_all<buddy::chat_decoder>(line + "x\n");
  CHECK(over.messages.empty());
  CHECK(over.errors == std::vector{errc::line_too_long});
}

TEST_CASE("chat lines the peer would misread are refused") {
  CHECK(refused(buddy::chat_message{buddy::chat_text{"q"}}) == errc::invalid_argument);
  CHECK(refused(buddy::chat_message{buddy::chat_text{"hi\nq"}}) == errc::invalid_argument);
  CHECK(refused(buddy::chat_message{buddy::chat_hello{"a/b"}}) == errc::invalid_name);
  std::string out;
  REQUIRE(buddy::serialize(buddy::chat_message{buddy::chat_text{"a\tb"}}, out));
  CHECK(out == "a\tb\n");
}

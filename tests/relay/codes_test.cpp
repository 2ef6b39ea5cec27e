// The ERROR codes: errc <-> wire code, texts, which codes close the connection.

#include <doctest/doctest.h>

#include "improto/relay/codes.hpp"
#include "improto/relay/messages.hpp"

using namespace improto;
using namespace improto::relay;

TEST_CASE("wire codes") {
  for (errc framing : {errc::line_too_long, errc::too_many_headers, errc::malformed_header,
                       errc::bad_content_length, errc::missing_content_length,
                       errc::body_too_large, errc::truncated}) {
    CAPTURE(name(framing));
    CHECK(to_wire(framing) == codes::header_incomplete);
    CHECK(closes_connection(to_wire(framing)));
  }
  CHECK(to_wire(errc::unknown_command) == 105);
  CHECK(to_wire(errc::malformed_start_line) == 108);
  CHECK(to_wire(errc::invalid_argument) == 108);
  CHECK(to_wire(errc::invalid_name) == 100);
  CHECK(to_wire(errc::name_taken) == 104);
  CHECK(to_wire(errc::overloaded) == 109);
  CHECK(to_wire(errc::timeout) == 102);
  CHECK(to_wire(errc::connection_closed) == 102);
  CHECK(to_wire(errc::not_found) == 102);
  CHECK(to_wire(errc::rejected) == 102);
  for (int code : {100, 101, 102, 104, 105, 106, 107, 108, 109}) {
    CHECK_FALSE(closes_connection(code));
  }

  CHECK(wire_text(100) == "Malformed username");
  CHECK(wire_text(101) == "No user registered");
  CHECK(wire_text(102) == "Unable to send");
  CHECK(wire_text(103) == "Header incomplete");
  CHECK(wire_text(104) == "Username taken");
  CHECK(wire_text(105) == "Unknown command");
  CHECK(wire_text(106) == "No such file");
  CHECK(wire_text(107) == "No such transfer");
  CHECK(wire_text(108) == "Bad request");
  CHECK(wire_text(109) == "Server busy");
  CHECK(wire_text(110).empty());
  CHECK(wire_text(0).empty());

  CHECK(serialize(error_for(codes::unable_to_send)) == "ERROR 102 Unable to send\n\n");
  CHECK(serialize(error_for(errc::missing_content_length)) == "ERROR 103 Header incomplete\n\n");
  CHECK(serialize(error_for(codes::username_taken)) == "ERROR 104 Username taken\n\n");
  CHECK(error_for(777) == error_reply{777, ""});
  for (int code = 100; code <= 109; ++code) CHECK(serialize(error_for(code)).has_value());
}

TEST_CASE("from_wire turns a received ERROR into an errc") {
  CHECK(from_wire(error_reply{100, "Malformed username"}).code() == errc::invalid_name);
  CHECK(from_wire(error_reply{104, "Username taken"}).code() == errc::name_taken);
  CHECK(from_wire(error_reply{106, "No such file"}).code() == errc::not_found);
  CHECK(from_wire(error_reply{107, "No such transfer"}).code() == errc::not_found);
  CHECK(from_wire(error_reply{109, "Server busy"}).code() == errc::overloaded);
  auto e = from_wire(error_reply{102, "Unable to send"});
  CHECK(e.code() == errc::rejected);
  CHECK(e.detail() == "ERROR 102 Unable to send");
  CHECK(from_wire(error_reply{103, ""}).detail() == "ERROR 103");
}

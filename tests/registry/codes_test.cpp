// HTTP status codes: reason phrases and errc <-> status, in one place (codes.hpp).

#include <doctest/doctest.h>

#include "improto/registry/codes.hpp"
#include "improto/registry/messages.hpp"

using namespace improto;

TEST_CASE("reason phrases and the status for each error") {
  CHECK(registry::reason_phrase(200) == "OK");
  CHECK(registry::reason_phrase(400) == "Bad Request");
  CHECK(registry::reason_phrase(404) == "Not Found");
  CHECK(registry::reason_phrase(405) == "Method Not Allowed");
  CHECK(registry::reason_phrase(406) == "Not Acceptable");
  CHECK(registry::reason_phrase(411) == "Length Required");
  CHECK(registry::reason_phrase(413) == "Content Too Large");
  CHECK(registry::reason_phrase(414) == "URI Too Long");
  CHECK(registry::reason_phrase(431) == "Request Header Fields Too Large");
  CHECK(registry::reason_phrase(500) == "Internal Server Error");
  CHECK(registry::reason_phrase(501) == "Not Implemented");
  CHECK(registry::reason_phrase(503) == "Service Unavailable");
  CHECK(registry::reason_phrase(505) == "HTTP Version Not Supported");
  CHECK(registry::reason_phrase(299) == "Unknown");

  CHECK(registry::to_wire(errc::malformed_start_line) == 400);
  CHECK(registry::to_wire(errc::malformed_header) == 400);
  CHECK(registry::to_wire(errc::bad_content_length) == 400);
  CHECK(registry::to_wire(errc::invalid_name) == 400);
  CHECK(registry::to_wire(errc::unknown_command) == 400);
  CHECK(registry::to_wire(errc::not_found) == 404);
  CHECK(registry::to_wire(errc::name_taken) == 406);
  CHECK(registry::to_wire(errc::missing_content_length) == 411);
  CHECK(registry::to_wire(errc::body_too_large) == 413);
  CHECK(registry::to_wire(errc::line_too_long) == 431);
  CHECK(registry::to_wire(errc::too_many_headers) == 431);
  CHECK(registry::to_wire(errc::unsupported_encoding) == 501);
  CHECK(registry::to_wire(errc::overloaded) == 503);
  CHECK(registry::to_wire(errc::unsupported_version) == 505);
  CHECK(registry::to_wire(errc::storage_error) == 500);

  CHECK_FALSE(registry::from_wire(200));
  CHECK_FALSE(registry::from_wire(204));
  CHECK(registry::from_wire(400) == errc::invalid_argument);
  CHECK(registry::from_wire(404) == errc::not_found);
  CHECK(registry::from_wire(406) == errc::name_taken);
  CHECK(registry::from_wire(503) == errc::overloaded);
  CHECK(registry::from_wire(500) == errc::rejected);
  CHECK(registry::from_wire(101) == errc::rejected);

  CHECK_FALSE(registry::status_has_body(100));
  CHECK_FALSE(registry::status_has_body(199));
  CHECK(registry::status_has_body(200));
  CHECK_FALSE(registry::status_has_body(204));
  CHECK_FALSE(registry::status_has_body(304));
  CHECK(registry::status_has_body(400));
}

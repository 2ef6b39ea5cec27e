// Response codes: errc <-> wire code, only in codes.hpp.

#include <doctest/doctest.h>

#include "improto/buddy/codes.hpp"

namespace buddy = improto::buddy;
using improto::errc;

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

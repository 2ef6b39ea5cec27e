#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "improto/error.hpp"
#include "improto/wire/text.hpp"

using namespace improto;

TEST_CASE("text helpers") {
  CHECK(wire::parse_decimal("18446744073709551615") == UINT64_MAX);
  CHECK_FALSE(wire::parse_decimal("18446744073709551616"));
  CHECK_FALSE(wire::parse_decimal(""));
  CHECK_FALSE(wire::parse_decimal("+1"));
  CHECK(wire::parse_decimal("65535", 65535) == 65535u);
  CHECK_FALSE(wire::parse_decimal("2", 1));
  CHECK(wire::parse_decimal("1", 1) == 1u);
  CHECK_FALSE(wire::parse_decimal("65536", 65535));
  CHECK(wire::iequals("Content-Length", "content-LENGTH"));
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  CHECK(wire::unescape(wire::escape(all)) == all);
  CHECK_FALSE(wire::unescape("\\q"));
  CHECK_FALSE(wire::unescape("\\x1"));
  CHECK(wire::describer("send").text("to", "bob").number("n", 3).str() ==
        "send to=\"bob\" n=3");
  CHECK(error(errc::line_too_long, "x").message() == "line too long: x");
  CHECK(make_error_code(errc::timeout).message() == "timed out");
}

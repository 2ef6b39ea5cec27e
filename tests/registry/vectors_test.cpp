#include <doctest/doctest.h>

#include <string>

#include "improto/registry/decoder.hpp"
#include "improto/registry/messages.hpp"
#include "vectors.hpp"

using namespace improto;

namespace {

// Serializers refuse what their parsers reject; a refusal shows up
// in the round-trip line of the vector instead of passing silently.
template <class T>
std::string reencode_body(const T& value) {
  std::string out;
  auto r = registry::serialize(value, out);
  return r ? out : "<serialize refused: " + r.error().message() + ">";
}

test::adapter_table adapters() {
  test::adapter_table t;
  t["http.request"] = test::stream<registry::request_decoder>(
      [] { return registry::request_decoder(); },
      [](const registry::request& r) { return registry::describe(r); },
      [](const registry::request& r) { return reencode_body(r); });
  t["http.response"] = test::stream<registry::response_decoder>(
      [] { return registry::response_decoder(); },
      [](const registry::response& r) { return registry::describe(r); },
      [](const registry::response& r) { return reencode_body(r); });
  t["registry.entry"] = test::datagram(
      [](std::string_view b) { return registry::parse_entry(b); },
      [](const registry::entry& e) { return registry::describe(e); },
      [](const registry::entry& e) { return reencode_body(e); });
  t["registry.command"] = test::datagram(
      [](std::string_view b) { return registry::parse_command(b); },
      [](const registry::command& c) { return registry::describe(c); },
      [](const registry::command& c) { return reencode_body(c); });
  t["registry.list"] = test::datagram(
      [](std::string_view b) { return registry::parse_list(b); },
      [](const registry::user_list& l) { return registry::describe(l); },
      [](const registry::user_list& l) { return reencode_body(l); });
  t["registry.peer"] = test::datagram(
      [](std::string_view b) { return registry::parse_peer_message(b); },
      [](const registry::peer_message& m) { return registry::describe(m); },
      [](const registry::peer_message& m) { return reencode_body(m); });
  return t;
}

}  // namespace

TEST_CASE("registry vectors") { test::run_vector_dir("registry", adapters()); }

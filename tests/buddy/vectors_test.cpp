#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "improto/buddy/decoder.hpp"
#include "vectors.hpp"

namespace buddy = improto::buddy;
using namespace improto::test;

TEST_CASE("protocol 2 vectors") {
  // Bytes, or the error a refusing serializer gives.
  auto reencode = [](const auto& m) {
    std::string bytes;
    auto ok = buddy::serialize(m, bytes);
    if (ok) return bytes;
    std::string failed = "<";  // appended: GCC 12 -O3 misreports -Wrestrict on operator+
    failed += name(ok.error().code());
    failed += '>';
    return failed;
  };
  auto status_bytes = [](const buddy::status_reply& r) {
    auto bytes = buddy::serialize(r);
    if (bytes) return *bytes;
    std::string failed = "<";  // appended: GCC 12 -O3 misreports -Wrestrict on operator+
    failed += name(bytes.error().code());
    failed += '>';
    return failed;
  };
  adapter_table adapters{
      {"buddy.request",
       stream<buddy::request_decoder>([] { return buddy::request_decoder{}; },
                                      [](const buddy::request& m) { return buddy::describe(m); },
                                      reencode)},
      {"buddy.response",
       stream<buddy::response_decoder>(
           [] { return buddy::response_decoder{}; },
           [](const buddy::response& m) { return buddy::describe(m); },
           reencode)},
      {"buddy.udp_request",
       datagram([](std::string_view d) { return buddy::parse_udp_request(d); },
                [](const buddy::udp_request& m) { return buddy::describe(m); },
                reencode)},
      {"buddy.status_reply",
       datagram([](std::string_view d) { return buddy::parse_status_reply(d); },
                [](const buddy::status_reply& m) { return buddy::describe(m); }, status_bytes)},
      {"buddy.chat",
       stream<buddy::chat_decoder>([] { return buddy::chat_decoder{}; },
                                   [](const buddy::chat_message& m) { return buddy::describe(m); },
                                   reencode)},
  };
  // The same inputs through a decoder with a short line limit (the errors
  // near the end of the input), and datagrams through every parser.
  constexpr improto::wire::limits short_lines{.max_line = 64};
  auto udp_parsers = std::vector<adapter_factory>{
      datagram([](std::string_view d) { return buddy::parse_udp_request(d); },
               [](const buddy::udp_request& m) { return buddy::describe(m); }),
      datagram([](std::string_view d) { return buddy::parse_status_reply(d); },
               [](const buddy::status_reply& m) { return buddy::describe(m); }),
      datagram([](std::string_view d) { return buddy::parse_request_line(d); },
               [](const buddy::request& m) { return buddy::describe(m); }),
      datagram([](std::string_view d) { return buddy::parse_response_line(d); },
               [](const buddy::response& m) { return buddy::describe(m); }),
  };
  extra_table extras{
      {"buddy.request",
       {stream<buddy::request_decoder>([=] { return buddy::request_decoder{short_lines}; },
                                       [](const buddy::request& m) { return buddy::describe(m); },
                                       reencode)}},
      {"buddy.response",
       {stream<buddy::response_decoder>(
           [=] { return buddy::response_decoder{short_lines}; },
           [](const buddy::response& m) { return buddy::describe(m); }, reencode)}},
      {"buddy.chat",
       {stream<buddy::chat_decoder>([=] { return buddy::chat_decoder{short_lines}; },
                                    [](const buddy::chat_message& m) { return buddy::describe(m); },
                                    reencode)}},
      {"buddy.udp_request", udp_parsers},
      {"buddy.status_reply", udp_parsers},
  };
  run_vector_dir("buddy", adapters, extras);
}

// Protocol 4, UDP part: the vectors (whatever parses re-serializes to the same
// bytes), and send-side validation.

#include <doctest/doctest.h>

#include <string>

#include "improto/transfer/codes.hpp"
#include "improto/transfer/decoder.hpp"
#include "improto/transfer/messages.hpp"
#include "vectors.hpp"

namespace transfer = improto::transfer;
using improto::errc;
using namespace improto::test;

namespace {

std::string reencode(const transfer::datagram& d) {
  auto bytes = transfer::serialize(d);
  return bytes ? *bytes : "<" + std::string(improto::name(bytes.error().code())) + ">";
}

}  // namespace

TEST_CASE("protocol 4 UDP vectors") {
  adapter_table adapters{
      {"transfer.datagram",
       canonical_datagram([](std::string_view d) { return transfer::parse_datagram(d); },
                [](const transfer::datagram& m) { return transfer::describe(m); }, reencode)},
  };
  run_vector_dir("transfer", adapters);
}

TEST_CASE("serialize refuses what the parser would reject") {
  transfer::header h{7, 1};
  auto refused = [](const transfer::datagram& d, errc code) {
    auto r = transfer::serialize(d);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == code);
  };
  refused(transfer::data{{0, 1}, 0, "x"}, errc::invalid_argument);
  refused(transfer::data{{7, 0}, 0, "x"}, errc::invalid_argument);
  refused(transfer::data{h, 0, ""}, errc::invalid_argument);
  refused(transfer::data{h, transfer::max_offset, "x"}, errc::invalid_argument);
  refused(transfer::ack{h, 10, 0, 0, false, {{10, 20}}}, errc::invalid_argument);
  refused(transfer::ack{h, 10, 0, 0, false, {{30, 40}, {20, 25}}}, errc::invalid_argument);
  refused(transfer::ack{h, 10, 0, 0, false, {{20, 30}, {30, 40}}}, errc::invalid_argument);
  refused(transfer::ack{h, 0, 0, 0, false, {{std::uint64_t{1} << 33, (std::uint64_t{1} << 33) + 1}}},
          errc::invalid_argument);
  refused(transfer::fin{h, 0, 1}, errc::invalid_argument);
  refused(transfer::abort{h, static_cast<transfer::abort_reason>(0)}, errc::invalid_argument);
  std::string big(transfer::max_datagram, 'x');
  refused(transfer::data{h, 0, big}, errc::datagram_too_large);

  std::string exact(transfer::max_datagram - transfer::data_header_size, 'x');
  auto ok = transfer::serialize(transfer::data{h, 0, exact});
  REQUIRE(ok.has_value());
  CHECK(ok->size() == transfer::max_datagram);

  char small[10];
  auto r = transfer::serialize(transfer::abort{h, transfer::abort_reason::cancelled},
                               std::span<char>(small));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == errc::invalid_argument);
}

TEST_CASE("ABORT reasons map to errc and back") {
  using transfer::abort_reason;
  CHECK(transfer::to_wire(errc::cancelled) == abort_reason::cancelled);
  CHECK(transfer::to_wire(errc::io_error) == abort_reason::io_error);
  CHECK(transfer::to_wire(errc::storage_error) == abort_reason::io_error);
  CHECK(transfer::to_wire(errc::invalid_argument) == abort_reason::protocol);
  CHECK(transfer::from_wire(abort_reason::cancelled).code() == errc::cancelled);
  CHECK(transfer::from_wire(abort_reason::io_error).code() == errc::io_error);
  CHECK(transfer::from_wire(abort_reason::protocol).code() == errc::invalid_argument);
}

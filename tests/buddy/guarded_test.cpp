// Every decoder and parser, on every prefix of every vector input, placed
// right before an inaccessible page: a read past the input crashes.

#include <doctest/doctest.h>

#include <string>

#include "guarded.hpp"
#include "improto/buddy/decoder.hpp"
#include "support.hpp"
#include "vectors.hpp"

namespace buddy = improto::buddy;
using improto::test::guarded_bytes;

namespace {

template <class Decoder>
void decode_guarded(std::string_view prefix) {
  guarded_bytes whole(prefix);
  Decoder a(improto::wire::limits{.max_line = 64});
  buddy_test::decode_chunks(a, {whole.view()});
  Decoder b;
  buddy_test::decode_chunks(b, {whole.view()});
  if (prefix.size() > 512) return;  // byte by byte is quadratic here
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < prefix.size(); ++i) bytes.push_back(whole.view().substr(i, 1));
  Decoder c;
  buddy_test::decode_chunks(c, bytes);
}

}  // namespace

TEST_CASE("decoders and parsers never read past their input") {
  auto cases = improto::test::load_vectors(improto::test::vector_dir("buddy"));
  REQUIRE(!cases.empty());
  std::size_t prefixes = 0;
  for (const auto& v : cases) {
    CAPTURE(v.where);
    std::string_view input(v.input);
    for (std::size_t n = 0; n <= input.size(); ++n) {
      std::string_view prefix = input.substr(0, n);
      ++prefixes;
      if (v.decoder == "buddy.request") {
        decode_guarded<buddy::request_decoder>(prefix);
      } else if (v.decoder == "buddy.response") {
        decode_guarded<buddy::response_decoder>(prefix);
      } else if (v.decoder == "buddy.chat") {
        decode_guarded<buddy::chat_decoder>(prefix);
      } else {
        guarded_bytes datagram(prefix);
        (void)buddy::parse_udp_request(datagram.view());
        (void)buddy::parse_status_reply(datagram.view());
        (void)buddy::parse_request_line(datagram.view());
        (void)buddy::parse_response_line(datagram.view());
      }
    }
  }
  MESSAGE(prefixes << " guarded prefixes");
}

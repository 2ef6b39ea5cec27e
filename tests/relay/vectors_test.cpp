#include <doctest/doctest.h>

#include <functional>
#include <string>

#include "improto/relay/decoder.hpp"
#include "vectors.hpp"

using namespace improto;

namespace {

test::adapter_factory relay_adapter(relay::direction dir) {
  return test::stream<relay::decoder>(
      [dir] { return relay::decoder(dir); },
      [](const relay::message& m) { return relay::describe(m); },
      [](const relay::message& m) {
        auto bytes = relay::serialize(m);
        return bytes ? *bytes : "<serialize refused: " + bytes.error().message() + ">";
      });
}

}  // namespace

TEST_CASE("relay vectors") {
  test::run_vector_dir("relay", {
                                    {"relay.to_server", relay_adapter(relay::direction::to_server)},
                                    {"relay.to_client", relay_adapter(relay::direction::to_client)},
                                });
}

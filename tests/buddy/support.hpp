#pragma once

// Helpers for the protocol 2 tests: run a stream decoder over bytes and
// collect messages or the first error.

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <string_view>
#include <variant>
#include <vector>

#include "improto/buddy/decoder.hpp"
#include "improto/wire/text.hpp"

namespace buddy_test {

template <class Message>
struct decoded {
  std::vector<Message> messages;
  std::vector<improto::errc> errors;  // in order, non-sticky ones included
};

// Feeds `chunks` in order, then finish(); goes on after non-sticky errors
// and stops at a sticky one.
template <class Decoder, class Message = typename decltype(std::declval<Decoder&>()
                                                                .finish())::value_type::value_type>
decoded<Message> decode_chunks(Decoder& d, const std::vector<std::string_view>& chunks,
                               bool eof = true) {
  decoded<Message> out;
  auto take = [&](auto r) {
    if (!r) {
      out.errors.push_back(r.error().code());
      return !d.failed();
    }
    if (!*r) return false;
    out.messages.push_back(std::move(**r));
    return true;
  };
  for (auto chunk : chunks) {
    if (d.failed()) break;
    while (take(d.next(chunk))) {
    }
  }
  if (eof && !d.failed()) {
    while (take(d.finish())) {
    }
  }
  return out;
}

// Serializes `m` into a string holding "kept"; checks that the refusal
// appends nothing and returns its code.
template <class Message>
improto::errc refused(const Message& m) {
  std::string out = "kept";
  auto r = improto::buddy::serialize(m, out);
  CHECK(out == "kept");
  REQUIRE_FALSE(r);
  return r.error().code();
}

template <class Decoder>
auto decode_all(std::string_view bytes, improto::wire::limits lim = {}) {
  Decoder d(lim);
  return decode_chunks(d, {bytes});
}

}  // namespace buddy_test

#pragma once

// Stream decoder for the relay protocol (3) and its messenger extensions (4),
// in the shape of docs/design.md: bytes in any chunks, one message per
// next(), typed errors.
//
// Framing is decided by the verb alone: SEND (to the server), FORWARD,
// USERS and FILES (to a client) must declare Content-length; any message
// that declares one has a body of that length. Missing or bad
// Content-length, a body over limits.max_body, an overlong line or too many
// header lines are sticky (the server answers ERROR 103 and closes). A
// framed message that is wrong (unknown verb, a verb of the other direction,
// wrong arity, bad argument, a body where none belongs) is consumed whole
// and reported without stickiness, so the server can answer and read on.

#include <cstdint>
#include <optional>
#include <string_view>

#include "improto/error.hpp"
#include "improto/relay/messages.hpp"
#include "improto/wire/framing.hpp"

namespace improto::relay {

class decoder {
 public:
  explicit decoder(direction dir, wire::limits lim = {});

  // Consumes bytes from the front of `in` until one message is complete
  // (returned; the rest of `in` stays for the next call) or `in` is used up
  // (nullopt).
  wire::decode_result<message> next(std::string_view& in);
  // End of stream: nullopt at a message boundary, else `truncated`.
  wire::decode_result<message> finish();
  // A sticky error happened; every later call returns it again.
  bool failed() const noexcept { return failure_.has_value(); }

  // Hands a message back once it has been handled: the next one of the same
  // kind is decoded into its strings, so a reader of SEND streams that
  // recycles allocates nothing per message once capacities have grown.
  void recycle(message&& done) noexcept { pending_ = std::move(done); }

  direction dir() const noexcept { return dir_; }
  const wire::limits& limits() const noexcept { return reader_.limits_in_use(); }

 private:
  // What to do with the body of the message whose head was read.
  enum class body_use : std::uint8_t { none, send, forward, users, files };

  wire::decode_result<message> fail_sticky(error e);
  wire::decode_result<message> on_head();
  wire::decode_result<message> on_body();
  // Hands out pending_ (or refused_) and readies the reader for the next
  // message.
  wire::decode_result<message> deliver();

  wire::frame_reader reader_;
  direction dir_;
  std::optional<error> failure_;  // sticky
  // The message being decoded, built in place from its head and completed
  // with its body; or why it is refused (non-sticky).
  message pending_;
  std::optional<error> refused_;
  body_use use_ = body_use::none;
};

}  // namespace improto::relay

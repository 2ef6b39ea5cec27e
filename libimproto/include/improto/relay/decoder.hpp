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

enum class view_kind : std::uint8_t { send, forward, other };

// A message as decoder::next_view() hands it out. SEND (to a server) and
// FORWARD (to a client), the bulk of the traffic, are views: `peer` is the
// recipient of a SEND or the sender of a FORWARD, `body` its body. Every
// other message is decoded as next() decodes it and lent: `other` points at
// it inside the decoder (a handler may move from it). Everything is valid
// until the next call on the decoder, as long as the bytes of the chunk
// last passed to next_view() stay unchanged.
struct message_view {
  view_kind kind = view_kind::other;
  std::string_view peer;
  std::string_view body;
  message* other = nullptr;

  // The same message, owning its bytes: what next() returns.
  message to_message() const;
};

class decoder {
 public:
  explicit decoder(direction dir, wire::limits lim = {});

  // Consumes bytes from the front of `in` until one message is complete
  // (returned; the rest of `in` stays for the next call) or `in` is used up
  // (nullopt).
  wire::decode_result<message> next(std::string_view& in);
  // The same messages and errors without copying (see message_view): what a
  // server that forwards at once needs. A SEND or FORWARD whose head (its
  // one header Content-length) and body are whole in `in` is read in one
  // pass, without the general reader; one that arrived in pieces is viewed
  // where the decoder keeps it. Calls to next() and next_view() may mix.
  wire::decode_result<message_view> next_view(std::string_view& in);
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

  tl::unexpected<error> fail_sticky(error e);
  // Runs the reader until a message is complete (true: it is in pending_)
  // or `in` is used up (false). A refused message is its error.
  result<bool> advance(std::string_view& in);
  // true: the message is complete; false: a body follows.
  result<bool> on_head();
  void on_body();
  // Readies the reader for the next message (or, for a body lent to a view,
  // at the next call); the refusal of this one, if any.
  result<bool> complete(bool after_body);
  // Resets the reader once a body it lent to a view is no longer in use.
  void take_back() noexcept {
    if (!lent_) return;
    reader_.reset();
    lent_ = false;
  }
  // next_view()'s one pass over a SEND / FORWARD whole in `in`; false (and
  // nothing consumed) for anything else, which the general path decides.
  bool whole_body_message(std::string_view& in, message_view& out) const noexcept;

  wire::frame_reader reader_;
  direction dir_;
  std::optional<error> failure_;  // sticky
  // The message being decoded, built in place from its head and completed
  // with its body; or why it is refused (non-sticky).
  message pending_;
  std::optional<error> refused_;
  body_use use_ = body_use::none;
  // next_view() is decoding: a SEND or FORWARD body that had to be buffered
  // stays in the reader and is viewed there, not copied into pending_.
  bool lend_body_ = false;
  // The reader holds such a body until the next call.
  bool lent_ = false;
};

}  // namespace improto::relay

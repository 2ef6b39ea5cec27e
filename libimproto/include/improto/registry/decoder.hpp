#pragma once

// Protocol 1's decoders:
//  * request_decoder / response_decoder: stream decoders of the HTTP subset,
//    built on wire::frame_reader. Every HTTP decode error is sticky: after a
//    bad head nobody can tell where the next message starts (the server
//    answers to_wire(errc) and closes).
//  * parse_entry / parse_command / parse_list / parse_peer_message: the
//    payloads and the peer datagram, parsed whole.

#include <cstddef>
#include <optional>
#include <string_view>

#include "improto/error.hpp"
#include "improto/registry/messages.hpp"
#include "improto/wire/framing.hpp"

namespace improto::registry {

// Decodes requests: `METHOD SP target SP HTTP/1.x`, headers, a body of
// Content-Length bytes (none: empty). Blank lines before a request are
// skipped (the seed client sends `\r\n\r\n` after its body).
class request_decoder {
 public:
  explicit request_decoder(wire::limits lim = default_request_limits) : reader_(lim) {}

  // Consumes bytes from the front of `in` until one request is complete
  // (returned) or `in` is used up (nullopt: need more).
  wire::decode_result<request> next(std::string_view& in);
  // The same, without copying: the request as views into `in` (or into the
  // decoder's buffer when it arrived in pieces), valid until the next call
  // on this decoder as long as the bytes of `in` stay unchanged. What a
  // server that answers at once needs; next() is next_view() + copy_to().
  wire::decode_result<request_view> next_view(std::string_view& in);
  // End of stream: nullopt between requests, `truncated` inside one.
  wire::decode_result<request> finish();
  bool failed() const noexcept { return error_.has_value(); }

  // Hands a request back once it has been handled: the next one is decoded
  // into its strings, so a server that recycles allocates nothing per
  // request once capacities have grown.
  void recycle(request&& done) noexcept { spare_ = std::move(done); }
  const wire::limits& limits() const noexcept { return reader_.limits_in_use(); }

 private:
  tl::unexpected<error> fail_with(error e);
  result<bool> on_head();
  request_view view() const noexcept;

  wire::frame_reader reader_;
  std::optional<error> error_;
  request spare_;
  // A request was handed out: the reader is reset on the next call, so
  // that the views stay valid until then.
  bool handed_out_ = false;
  // The validated head of the request whose body is being read; its bytes
  // stay in reader_ until reset().
  std::size_t method_len_ = 0;
  std::size_t target_len_ = 0;
  int version_ = 1;
};

// Decodes responses: `HTTP/1.x SP 3DIGIT [SP reason]`, headers, a body of
// Content-Length bytes or, without one, up to the end of the stream
// (finish()); 1xx, 204 and 304 responses have no body.
class response_decoder {
 public:
  explicit response_decoder(wire::limits lim = default_response_limits) : reader_(lim) {}

  wire::decode_result<response> next(std::string_view& in);
  // End of stream: completes a body read up to the close, nullopt between
  // responses, `truncated` inside one.
  wire::decode_result<response> finish();
  bool failed() const noexcept { return error_.has_value(); }

  void recycle(response&& done) noexcept { spare_ = std::move(done); }
  const wire::limits& limits() const noexcept { return reader_.limits_in_use(); }

 private:
  tl::unexpected<error> fail_with(error e);
  result<bool> on_head();
  void fill(response& out);

  wire::frame_reader reader_;
  std::optional<error> error_;
  response spare_;
  int version_ = 1;
  int status_ = 0;
  std::size_t reason_at_ = 0;  // offset of the reason in the status line
};

// `name@host:port`, IPv6 as `name@[::1]:4000` (bare `name@::1:4000` is
// accepted too: the port follows the last colon). The name runs up to the
// last `@`, so `a@b@h:1` is the invalid name `a@b`.
result<entry> parse_entry(std::string_view text);

// `REGISTER name@ip:port` or `LOGOUT name@ip:port`; the verb in any case,
// blanks and line ends around the command ignored. Errors: unknown_command
// (other verb or empty body), invalid_name, invalid_argument.
result<command> parse_command(std::string_view body);

// `a@1.2.3.4:5,b@1.2.3.4:6,`: entries separated by commas; blanks, CR/LF
// and empty items (the trailing comma, the seed server's trailing
// `\r\n\r\n`) are ignored, so an empty body is an empty list. Any bad entry
// fails the whole list with its error.
result<user_list> parse_list(std::string_view body);

// `sender: text`, split at the first `: `. Errors: datagram_too_large over
// max_datagram_size, invalid_argument without `: `, invalid_name.
result<peer_message> parse_peer_message(std::string_view datagram);

}  // namespace improto::registry

#pragma once

// Protocol 2's decoders: the TCP request and response streams, the chat
// stream, and the UDP datagrams parsed whole. Every stream decoder has the
// same shape: next(in) consumes bytes and returns a message, nullopt (need
// more) or an error; finish() at the end of the stream; failed() after a
// sticky error. Framing errors (line_too_long, truncated) are sticky; a
// complete line with bad content is not.

#include <cstdint>
#include <optional>
#include <string_view>

#include "improto/buddy/messages.hpp"
#include "improto/error.hpp"
#include "improto/wire/framing.hpp"

namespace improto::buddy {

// One request or response line, without its line end.
result<request> parse_request_line(std::string_view line);
result<response> parse_response_line(std::string_view line);

// Whole datagrams; one trailing `\n` or `\r\n` is tolerated.
result<udp_request> parse_udp_request(std::string_view datagram);
result<status_reply> parse_status_reply(std::string_view datagram);

// The verb a request datagram starts with (after blanks, up to a blank or a
// line end, any case), also when the rest is wrong: a server answers no SET,
// not even a bad one.
enum class udp_verb { none, set, get };
udp_verb udp_verb_of(std::string_view datagram) noexcept;

// A request datagram read in one pass, in place, for servers: `user` points
// into the datagram, and nothing is allocated, not even for a bad datagram.
// `valid` is exactly parse_udp_request()'s success, with the same fields
// (parse_udp_request() is this plus a copy, or, on failure, a word-by-word
// reading that says why); `verb` is udp_verb_of()'s answer in both cases.
struct udp_request_view {
  bool valid = false;
  udp_verb verb = udp_verb::none;
  std::string_view user;
  presence status = presence::offline;  // SET only
  std::uint16_t msgport = 0;            // SET only
};
udp_request_view parse_udp_request_view(std::string_view datagram) noexcept;

namespace detail {
// The one-pass reading of any request datagram. parse_udp_request_view()
// first tries the exact shapes clients send ("SET id 10x port", "GET id")
// with a few word loads and falls back to this; public so that the tests and
// fuzzers hold the two to the same answers.
udp_request_view parse_udp_request_general(std::string_view datagram) noexcept;

// The word-by-word reading parse_udp_request() falls back to for its error
// message. Public for the tests and fuzzers that hold it and the one-pass
// reading to the same answers.
result<udp_request> parse_udp_request_words(std::string_view datagram);
}  // namespace detail

// TCP requests: a complete line with bad content (malformed_start_line for an
// empty line, unknown_command, invalid_argument, invalid_name) is a non-sticky
// error; line_too_long and truncated are sticky.
class request_decoder {
 public:
  explicit request_decoder(wire::limits lim = {});
  wire::decode_result<request> next(std::string_view& in);
  wire::decode_result<request> finish();
  bool failed() const noexcept { return error_.has_value(); }

 private:
  wire::line_reader lines_;
  std::optional<error> error_;
};

// TCP responses, same error rules (malformed_start_line for a bad line).
class response_decoder {
 public:
  explicit response_decoder(wire::limits lim = {});
  wire::decode_result<response> next(std::string_view& in);
  wire::decode_result<response> finish();
  bool failed() const noexcept { return error_.has_value(); }

 private:
  wire::line_reader lines_;
  std::optional<error> error_;
};

// Either direction of a chat connection. The first line may be `CHAT userid`
// (hello, from the caller) or `BUSY` (from the callee); after it, `CHAT ...`
// and `BUSY` are ordinary text. `q` on any line ends the chat; lines after the
// end are non-sticky invalid_argument errors. A first line that starts with
// the word CHAT but has no single valid userid is a non-sticky error, and the
// chat goes on. Lines with control characters (other than tab) are rejected
// (invalid_argument, non-sticky) so that no peer can drive a terminal.
class chat_decoder {
 public:
  enum class phase {
    opening,  // nothing decoded yet: CHAT and BUSY are control lines
    talking,  // text lines until q
    ended,    // after q or BUSY
  };

  explicit chat_decoder(wire::limits lim = {});
  wire::decode_result<chat_message> next(std::string_view& in);
  wire::decode_result<chat_message> finish();
  bool failed() const noexcept { return error_.has_value(); }
  phase current_phase() const noexcept { return phase_; }

 private:
  result<chat_message> decode_line(std::string_view line);

  wire::line_reader lines_;
  std::optional<error> error_;
  phase phase_ = phase::opening;
};

}  // namespace improto::buddy

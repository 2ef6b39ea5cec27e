#pragma once

// The framing machinery every text protocol here shares:
//  * line_reader - one line at a time (buddy requests, chat lines);
//  * frame_reader - a start line, header lines up to a blank line, then a
//    body whose length the protocol decides (HTTP, relay, messenger).
// Both take bytes in arbitrary chunks, buffer at most what `limits` allows,
// and accept `\n` or `\r\n` line ends.
//
// Lifetimes: every string_view a reader hands out points into its own buffer
// or into the chunk last passed to next(); it stays valid until the next call
// to next(), finish() or reset() on that reader, as long as the caller keeps
// that chunk's bytes unchanged. A head or body that arrives whole in one
// chunk is handed out where it lies, without a copy.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "improto/error.hpp"
#include "improto/wire/text.hpp"

namespace improto::wire {

struct limits {
  std::size_t max_line = 8 * 1024;     // bytes in one line, without its line end
  std::size_t max_headers = 64;        // header lines in one message
  std::size_t max_body = 64 * 1024;    // bytes in one body
};

// Content-Length values (any spelling of the name): a decimal number below
// 2^63, so that body sizes fit a signed off_t. One rule for every protocol.
inline constexpr std::uint64_t max_content_length = UINT64_MAX / 2;
// Inline: it runs on every header of every message.
constexpr bool is_content_length(std::string_view header_name) noexcept {
  constexpr std::string_view lower = "content-length";
  if (header_name.size() != lower.size()) return false;
  for (std::size_t i = 0; i < lower.size(); ++i) {
    if (to_lower(header_name[i]) != lower[i]) return false;
  }
  return true;
}
std::optional<std::uint64_t> parse_content_length(std::string_view value) noexcept;

// A decoder's answer: an error, "need more bytes" (nullopt), or a message.
template <class Message>
using decode_result = result<std::optional<Message>>;

class line_reader {
 public:
  explicit line_reader(std::size_t max_line = limits{}.max_line) : max_line_(max_line) {}

  // Consumes bytes of `in` up to and including the next line end and returns
  // the line without it; returns nullopt after consuming all of `in` when no
  // line end was found. Fails with line_too_long past max_line.
  result<std::optional<std::string_view>> next(std::string_view& in);
  // End of stream: a final line without a line end is returned (then empty
  // reads follow); nullopt when nothing was pending.
  result<std::optional<std::string_view>> finish();
  bool idle() const noexcept { return partial_.empty() && !failed_; }
  void reset() noexcept;

 private:
  std::size_t max_line_;
  std::string partial_;
  bool failed_ = false;
  bool returned_partial_ = false;
};

struct header {
  std::string_view name;
  std::string_view value;  // without surrounding blanks
};

class frame_reader {
 public:
  enum class event {
    need_more,  // all of `in` consumed, message not complete yet
    head,       // start line and headers ready: call expect_body*() or reset()
    body,       // the body is complete: read body()/take_body(), then reset()
  };

  explicit frame_reader(limits lim = {}) : limits_(lim) {
    // Never small-string storage: views into head_ must survive a move.
    head_.reserve(256);
  }

  // Consumes bytes of `in` until the head or body is complete, or `in` runs
  // out. Blank lines before a start line are skipped (RFC 9112 2.2). Errors
  // are sticky: after one, every call returns it again.
  result<event> next(std::string_view& in);
  // End of stream. Completes a read-until-close body (event::body); at a
  // message boundary returns need_more (a clean end); inside a message fails
  // with truncated.
  result<event> finish();

  std::string_view start_line() const noexcept { return start_line_; }
  std::span<const header> headers() const noexcept { return headers_; }
  // First header with this name (ASCII case-insensitive).
  std::optional<std::string_view> find(std::string_view name) const noexcept;
  // The framing headers, picked up while the head was read (no second pass).
  // Value of Content-Length (any case), nullopt when absent. Fails with
  // bad_content_length on a non-number or on differing repeated values.
  result<std::optional<std::uint64_t>> content_length() const;
  // The same without building a result: whether content_length() fails,
  // whether it names a length, and that length (0 when none).
  bool content_length_bad() const noexcept {
    return length_state_ == length_state::bad || length_state_ == length_state::conflict;
  }
  bool has_content_length() const noexcept { return length_state_ == length_state::ok; }
  std::uint64_t content_length_value() const noexcept { return content_length_; }
  // A Transfer-Encoding header was present.
  bool transfer_encoding() const noexcept { return transfer_encoding_; }
  // A Connection header listed `close` / `keep-alive` (any case).
  bool connection_close() const noexcept { return connection_close_; }
  bool connection_keep_alive() const noexcept { return connection_keep_alive_; }

  // After event::head: the body is `length` bytes (fails with body_too_large
  // past limits::max_body, consuming nothing).
  result<void> expect_body(std::uint64_t length);
  // After event::head: the body runs until finish() (HTTP responses without
  // Content-Length), bounded by limits::max_body.
  void expect_body_until_eof() noexcept;

  std::string_view body() const noexcept { return body_; }
  std::string take_body();
  // The body into `out`, whose old contents go: swapped in when the reader
  // had to buffer it (out's old string becomes the reader's next buffer),
  // else copied into out's capacity. No allocation once capacities grew.
  void take_body_into(std::string& out);

  // Ready for the next message; keeps buffer capacity for reuse.
  void reset() noexcept;
  // True when no part of a message is buffered.
  bool idle() const noexcept { return state_ == state::start && head_.empty(); }
  const limits& limits_in_use() const noexcept { return limits_; }

 private:
  enum class state { start, head, head_done, body, body_to_eof, failed };

  result<event> fail_with(errc code, std::string detail);
  result<event> read_head(std::string_view& in);
  // The whole head in one chunk (the common case): parsed where it lies,
  // nothing copied. nullopt when the chunk ends inside the head.
  std::optional<result<event>> read_head_in_place(std::string_view& in);
  // The same without a copy, in one pass: lines split, names and values
  // checked and the framing headers noted as they pass. Gives up (slow) at
  // the first line any check would refuse, leaving the error and its exact
  // wording to read_head_in_place.
  enum class fast { head, more, slow };
  fast read_head_fast(const char* begin, const char* end, const char*& skip_to,
                      const char*& head_end);
  result<event> complete_head();
  // Fails with too_many_headers or malformed_header, as soon as a header
  // line is complete, whichever path read it.
  result<event> check_header(std::string_view line, std::size_t headers_before);
  result<event> add_header(std::string_view line);
  // Notes a header the framing depends on; `name` is a checked token. Only
  // names of their lengths (10, 14, 17) reach note_header().
  void note(std::string_view name, std::string_view value) noexcept {
    auto n = name.size();
    if (n == 14 || n == 10 || n == 17) note_header(name, value);
  }
  void note_header(std::string_view name, std::string_view value) noexcept;
  void note_connection(std::string_view value) noexcept;
  void clear_headers() noexcept;
  // Before returning need_more with a head parsed in place, copies that head
  // into head_: the caller's chunk may be gone when the body completes.
  void materialize_head();

  limits limits_;
  state state_ = state::start;
  std::string head_;                        // raw head bytes, line ends included
  std::string_view in_place_;               // the head, when parsed in the caller's chunk
  std::vector<std::uint32_t> line_ends_;    // offsets in head_ just past each '\n'
  std::string_view start_line_;
  std::vector<header> headers_;
  // Framing headers of headers_ (note_header). A Content-Length error is
  // kept as the index of the header that caused it, reported on request.
  enum class length_state : std::uint8_t { absent, ok, bad, conflict };
  length_state length_state_ = length_state::absent;
  std::uint32_t length_error_at_ = 0;
  std::uint64_t content_length_ = 0;
  bool transfer_encoding_ = false;
  bool connection_close_ = false;
  bool connection_keep_alive_ = false;
  std::string_view body_;   // the complete body: in the caller's chunk or in body_buf_
  std::string body_buf_;    // a body that arrived in pieces
  std::uint64_t body_remaining_ = 0;
  std::optional<error> error_;
};

}  // namespace improto::wire

#pragma once

// Errors are values: every fallible public function returns
// tl::expected<T, improto::error>. `errc` says what went wrong in our terms;
// the wire code a protocol answers with (ERROR 102, 201, 406, ...) is chosen
// by that protocol's server from the errc, never stored here.

#include <string>
#include <string_view>
#include <system_error>

#include <tl/expected.hpp>

namespace improto {

enum class errc {
  // Framing (shared by every text protocol).
  line_too_long = 1,        // a start or header line exceeds limits::max_line
  too_many_headers,         // more header lines than limits::max_headers
  malformed_header,         // a header line is not `name: value`
  bad_content_length,       // not a decimal number, or conflicting values
  missing_content_length,   // a message that needs a body length has none
  body_too_large,           // declared or received body exceeds limits::max_body
  truncated,                // the stream ended in the middle of a message
  // Grammar.
  malformed_start_line,     // request/status/command line has the wrong shape
  unknown_command,          // a verb this protocol does not have
  invalid_name,             // a user name that breaks the protocol's rules
  invalid_argument,         // any other field with a bad value
  unsupported_version,      // e.g. HTTP/2.0 on the HTTP/1.1 codec
  unsupported_encoding,     // e.g. Transfer-Encoding the codec does not implement
  datagram_too_large,       // a datagram over the protocol's size limit
  // Transport, servers and clients.
  address_in_use,
  connection_refused,
  connection_closed,
  timeout,
  io_error,
  overloaded,               // a bounded queue or connection table is full
  storage_error,
  name_taken,
  not_found,
  rejected,                 // the peer answered with a protocol error code
  invalid_config,
  // File transfer (protocol 4, UDP part).
  cancelled,                // the transfer was cancelled, here or by the peer
  hash_mismatch,            // the received file's SHA-256 is not the announced one
};

const std::error_category& category() noexcept;
std::error_code make_error_code(errc code) noexcept;

// Short human text for a code, e.g. "line too long".
std::string_view describe(errc code) noexcept;
// Stable identifier used by the test vectors and the Python bindings,
// e.g. "line_too_long".
std::string_view name(errc code) noexcept;

class error {
 public:
  error(errc code, std::string detail = {}) : code_(code), detail_(std::move(detail)) {}

  errc code() const noexcept { return code_; }
  std::error_code error_code() const noexcept { return make_error_code(code_); }
  // What exactly was wrong, e.g. "line exceeds 8192 bytes"; may be empty.
  const std::string& detail() const noexcept { return detail_; }
  // One sentence for a user: "line too long: line exceeds 8192 bytes".
  std::string message() const;

  friend bool operator==(const error& e, errc c) noexcept { return e.code_ == c; }

 private:
  errc code_;
  std::string detail_;
};

template <class T>
using result = tl::expected<T, error>;

inline tl::unexpected<error> fail(errc code, std::string detail = {}) {
  return tl::unexpected<error>(error(code, std::move(detail)));
}

}  // namespace improto

template <>
struct std::is_error_code_enum<improto::errc> : std::true_type {};

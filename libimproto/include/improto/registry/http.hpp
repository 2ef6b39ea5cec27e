#pragma once

// The HTTP/1.1 subset protocol 1's registry speaks (RFC 9112 framing with
// Content-Length bodies only), sans-I/O:
//  * request / response: plain owning structs;
//  * request_decoder / response_decoder: stream decoders built on
//    wire::frame_reader; every HTTP decode error is sticky, because after a
//    bad head nobody can tell where the next message starts (the server
//    answers status_for(errc) and closes);
//  * serialize(): exact bytes; make_request() / make_response() build what
//    the registry's clients and server send.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "improto/error.hpp"
#include "improto/wire/framing.hpp"

namespace improto::http {

struct field {
  std::string name;
  std::string value;  // without surrounding blanks
  bool operator==(const field&) const = default;
};
using fields = std::vector<field>;

// First value of header `name` (ASCII case-insensitive), nullopt when absent.
std::optional<std::string_view> find_header(const fields& headers, std::string_view name) noexcept;
// True when a Connection header lists `token` (comma-separated, any case).
bool has_connection_token(const fields& headers, std::string_view token) noexcept;
// HTTP/1.1 (minor 1) keeps the connection unless `Connection: close`;
// HTTP/1.0 (minor 0) closes it unless `Connection: keep-alive`.
bool keep_alive(int version, const fields& headers) noexcept;

struct request {
  std::string method;       // a token, e.g. "POST"
  std::string target;       // e.g. "/userlist.txt"
  int version = 1;          // minor version of HTTP/1.x: 0 or 1
  fields headers;           // in wire order
  std::string body;

  std::optional<std::string_view> header(std::string_view name) const noexcept {
    return find_header(headers, name);
  }
  bool keep_alive() const noexcept { return http::keep_alive(version, headers); }
  bool operator==(const request&) const = default;
};

struct response {
  int version = 1;          // minor version of HTTP/1.x: 0 or 1
  int status = 200;         // 100..999
  std::string reason;       // may be empty
  fields headers;
  std::string body;

  std::optional<std::string_view> header(std::string_view name) const noexcept {
    return find_header(headers, name);
  }
  bool keep_alive() const noexcept { return http::keep_alive(version, headers); }
  bool operator==(const response&) const = default;
};

using message = std::variant<request, response>;

// ------------------------------------------------------------------ limits

// Requests: 8 KiB lines, 64 header lines, 64 KiB bodies (a REGISTER is ~100 B).
inline constexpr wire::limits default_request_limits{};
// Responses carry whole user lists, so their bodies may be much larger.
inline constexpr wire::limits default_response_limits{
    .max_line = 8 * 1024, .max_headers = 64, .max_body = 16 * 1024 * 1024};

// -------------------------------------------------------------- serializers

// Exact bytes: start line, headers in order, blank line, body. Content-Length
// headers are kept verbatim when they match the body and rewritten to its
// size otherwise; a request with a body and no Content-Length gets one
// appended (without it the body would not be read). A response without
// Content-Length is delimited by closing the connection, as the seed
// server's are; responses whose status has no body (1xx, 204, 304) are
// written without one. A message validate() rejects gives bytes the decoders
// reject too.
void serialize(const request& r, std::string& out);
void serialize(const response& r, std::string& out);
std::string serialize(const message& m);

// Checks what serialize() cannot repair: method and header names are tokens,
// target and reason without blanks/control characters where forbidden,
// header values without control characters or outer blanks, version 0 or 1,
// status 100..999, no Transfer-Encoding (except on responses without a
// body, where the decoder ignores it), no body on 1xx/204/304.
result<void> validate(const request& r);
result<void> validate(const response& r);

// e.g. `http.request method=GET target="/userlist.txt" version=1.1
// header="Host: 127.0.0.1" body=""`.
std::string describe(const request& r);
std::string describe(const response& r);
std::string describe(const message& m);

// Standard reason phrase ("Not Acceptable" for 406), "Unknown" for codes
// this library never sends.
std::string_view reason_phrase(int status) noexcept;
// 1xx, 204 and 304 responses never have a body (RFC 9112 6.3).
bool status_has_body(int status) noexcept;
// The status a server answers a decode error with: 400 for bad syntax,
// 413 body too large, 431 line too long or too many headers, 501 for
// Transfer-Encoding, 505 for other HTTP versions; registry errors map to
// 400 (bad name/argument), 404 (not_found), 406 (name_taken), 503
// (overloaded) and 500 for the rest.
int status_for(errc code) noexcept;

// What a seed-compatible client sends: `METHOD target HTTP/1.1`, `Host`,
// and for a non-empty body `Content-Type: text/*` and `Content-Length`.
request make_request(std::string method, std::string target, std::string host,
                     std::string body = {});
// `HTTP/1.1 <status> <reason>`, `Content-Length: N`, plus `Connection: close`
// when the server will close after it.
response make_response(int status, std::string body = {}, bool keep_alive = true);
// Appends the bytes of make_response(status, body, keep_alive) without
// building a response: the server's hot path.
void write_response(std::string& out, int status, std::string_view body, bool keep_alive);

// ----------------------------------------------------------------- decoders

// Decodes requests: `METHOD SP target SP HTTP/1.x`, headers, a body of
// Content-Length bytes (none: empty). Blank lines before a request are
// skipped (the seed client sends `\r\n\r\n` after its body).
class request_decoder {
 public:
  explicit request_decoder(wire::limits lim = default_request_limits) : reader_(lim) {}

  // Consumes bytes from the front of `in` until one request is complete
  // (returned) or `in` is used up (nullopt: need more).
  wire::decode_result<request> next(std::string_view& in);
  // The same, filling `out` in place so that a server reusing one request
  // object allocates nothing per request once capacities have grown.
  // True when `out` holds a new request; `out` is unspecified otherwise.
  result<bool> next(std::string_view& in, request& out);
  // End of stream: nullopt between requests, `truncated` inside one.
  wire::decode_result<request> finish();

  bool failed() const noexcept { return error_.has_value(); }
  const wire::limits& limits() const noexcept { return reader_.limits_in_use(); }

 private:
  tl::unexpected<error> fail_with(error e);
  result<bool> on_head();
  void fill(request& out);

  wire::frame_reader reader_;
  std::optional<error> error_;
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
  result<bool> next(std::string_view& in, response& out);
  // End of stream: completes a body read up to the close, nullopt between
  // responses, `truncated` inside one.
  wire::decode_result<response> finish();

  bool failed() const noexcept { return error_.has_value(); }
  const wire::limits& limits() const noexcept { return reader_.limits_in_use(); }

 private:
  tl::unexpected<error> fail_with(error e);
  result<bool> on_head();
  void fill(response& out);

  wire::frame_reader reader_;
  std::optional<error> error_;
  int version_ = 1;
  int status_ = 0;
  std::size_t reason_at_ = 0;  // offset of the reason in the status line
};

}  // namespace improto::http

#pragma once

// Protocol 1 (seed 001): the registry, sans-I/O. Its messages are
//  * the HTTP/1.1 subset it is spoken over: request / response (RFC 9112
//    framing with Content-Length bodies only);
//  * the payloads those carry, parsed whole: entry (`name@host:port`),
//    command (a POST body, `REGISTER entry` / `LOGOUT entry`) and user_list
//    (a GET answer, `a@h:1,b@h:2,`);
//  * peer_message: one UDP datagram between peers, `sender: text`.
// Decoders and the parse_* functions are in decoder.hpp, the status codes in
// codes.hpp.
//
// Serializers are checked: each refuses, appending nothing, a message its
// decoder would reject or read differently (a name with a blank, a header
// value with CR/LF, a Content-Length that is not the body's size, a line or
// body over the limits). serialize_unchecked() writes the fields verbatim:
// for hot paths whose fields are known to be valid.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "improto/error.hpp"
#include "improto/wire/framing.hpp"

namespace improto::registry {

// ======================================================= the HTTP subset

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
  bool keep_alive() const noexcept { return registry::keep_alive(version, headers); }
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
  bool keep_alive() const noexcept { return registry::keep_alive(version, headers); }
  bool operator==(const response&) const = default;
};

// A request as request_decoder::next_view() hands it out: views into the
// bytes it was decoded from, nothing copied. Valid until the decoder's next
// call, as long as the chunk last passed to it stays unchanged.
struct request_view {
  std::string_view method;
  std::string_view target;
  int version = 1;
  std::span<const wire::header> headers;  // in wire order, values without outer blanks
  std::string_view body;
  bool connection_close = false;       // a Connection header lists `close`
  bool connection_keep_alive = false;  // ... or `keep-alive`

  // First value of header `name` (ASCII case-insensitive).
  std::optional<std::string_view> header(std::string_view name) const noexcept;
  // As registry::keep_alive(): the Connection tokens were noted while the
  // head was read.
  bool keep_alive() const noexcept {
    return !connection_close && (version >= 1 || connection_keep_alive);
  }
  // The same request in `out`'s strings (their capacity reused).
  void copy_to(request& out) const;
  request to_request() const;
};

using http_message = std::variant<request, response>;

// Requests: 8 KiB lines, 64 header lines, 64 KiB bodies (a REGISTER is ~100 B).
inline constexpr wire::limits default_request_limits{};
// Responses carry whole user lists, so their bodies may be much larger.
inline constexpr wire::limits default_response_limits{
    .max_line = 8 * 1024, .max_headers = 64, .max_body = 16 * 1024 * 1024};

// Exact bytes: start line, headers in order, blank line, body. Refuses
// (malformed_start_line, unsupported_version, malformed_header,
// unsupported_encoding, bad_content_length, missing_content_length,
// line_too_long, too_many_headers, body_too_large, invalid_argument) a
// method or header name that is not a token, a target with blanks or control
// characters, a reason or header value with control characters (CR, LF) or
// outer blanks, a version other than 0 or 1, a status outside 100..999,
// Transfer-Encoding where a body follows, a Content-Length that is not the
// body's size, a request body without Content-Length, a body on 1xx/204/304,
// and anything over `lim`. A response without Content-Length is delimited by
// closing the connection, as the seed server's are.
result<void> serialize(const request& r, std::string& out,
                       const wire::limits& lim = default_request_limits);
result<void> serialize(const response& r, std::string& out,
                       const wire::limits& lim = default_response_limits);
result<std::string> serialize(const http_message& m);
// The same bytes without any check.
void serialize_unchecked(const request& r, std::string& out);
void serialize_unchecked(const response& r, std::string& out);

// e.g. `http.request method=GET target="/userlist.txt" version=1.1
// header="Host: 127.0.0.1" body=""`.
std::string describe(const request& r);
std::string describe(const response& r);
std::string describe(const http_message& m);

// Standard reason phrase ("Not Acceptable" for 406), "Unknown" for codes
// this library never sends.
std::string_view reason_phrase(int status) noexcept;
// 1xx, 204 and 304 responses never have a body (RFC 9112 6.3).
bool status_has_body(int status) noexcept;

// What a seed-compatible client sends: `METHOD target HTTP/1.1`, `Host`,
// and for a non-empty body `Content-Type: text/*` and `Content-Length`.
request make_request(std::string method, std::string target, std::string host,
                     std::string body = {});
// `HTTP/1.1 <status> <reason>`, `Content-Length: N`, plus `Connection: close`
// when the server will close after it.
response make_response(int status, std::string body = {}, bool keep_alive = true);
// Appends the bytes of make_response(status, body, keep_alive) without
// building a response: the server's hot path. `status` must be 100..999.
void write_response(std::string& out, int status, std::string_view body, bool keep_alive);

// ============================================================ payloads

inline constexpr std::size_t max_name_length = 64;         // bytes
inline constexpr std::size_t max_host_length = 253;        // a DNS name's limit
inline constexpr std::size_t max_datagram_size = 65'507;   // UDP over IPv4

// A user name: 1..64 bytes of UTF-8 without `:` `@` `,` (the list
// separator), white space or control characters (ASCII or Unicode).
// Fails with invalid_name.
result<void> check_user(std::string_view name);
bool valid_user(std::string_view name);
// A dotted-quad IPv4 address, an IPv6 address (without brackets) or a host
// name of letters, digits, `-` and `_` in dot-separated labels. Fails with
// invalid_argument.
result<void> check_host(std::string_view host);

struct entry {
  std::string user;         // the wire's "name"
  std::string host;         // IPv6 without the brackets it has on the wire
  std::uint16_t port = 0;   // 1..65535
  bool operator==(const entry&) const = default;
};

// `name@host:port`, IPv6 as `name@[::1]:4000`. Refuses what parse_entry()
// rejects (invalid_name, invalid_argument).
result<void> serialize(const entry& e, std::string& out);
std::string to_string(const entry& e);  // the same bytes, unchecked
std::string describe(const entry& e);   // entry name="bob" host="1.2.3.4" port=5

enum class command_kind { register_, logout };

// The wire verb of a command, "REGISTER" / "LOGOUT".
std::string_view verb(command_kind k) noexcept;

struct command {
  command_kind kind = command_kind::register_;
  registry::entry entry;
  bool operator==(const command&) const = default;
};

result<void> serialize(const command& c, std::string& out);  // REGISTER bob@1.2.3.4:5
std::string describe(const command& c);  // register name="bob" host=... port=...

struct user_list {
  std::vector<entry> entries;
  bool operator==(const user_list&) const = default;
};

// Each entry followed by a comma, exactly as the seed server sends it.
result<void> serialize(const user_list& l, std::string& out);
result<std::string> serialize_list(std::span<const entry> entries);
std::string describe(const user_list& l);  // list count=2 entry="a@..." entry="b@..."

struct peer_message {
  std::string sender;  // a valid name
  std::string text;    // any bytes (UTF-8 by convention), may be empty
  bool operator==(const peer_message&) const = default;
};

// `sender: text`; datagram_too_large past max_datagram_size.
result<void> serialize(const peer_message& m, std::string& out);
std::string describe(const peer_message& m);  // peer sender="bob" text="hi"

using message = std::variant<command, user_list, peer_message>;
result<std::string> serialize(const message& m);
std::string describe(const message& m);

}  // namespace improto::registry

#include "improto/registry/http.hpp"

#include <array>
#include <charconv>

#include "improto/wire/text.hpp"

namespace improto::http {
namespace {

using wire::frame_reader;

// RFC 9110 tchar as a table: the method and every header name go through
// it, and wire::is_tchar is an out-of-line call per byte.
constexpr std::array<bool, 256> make_tchar_table() {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr std::array<bool, 256> tchar_table = make_tchar_table();

constexpr bool tchar(char c) noexcept { return tchar_table[static_cast<unsigned char>(c)]; }

bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s) {
    if (!tchar(c)) return false;
  }
  return true;
}

// A request-target byte: anything visible (obs-text included), no blanks.
constexpr bool target_char(char c) noexcept {
  auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u != 0x7f;
}

bool has_ctl(std::string_view s) noexcept {
  for (char c : s) {
    if (wire::is_ctl(c)) return true;
  }
  return false;
}

// `HTTP/1.0` -> 0, `HTTP/1.1` -> 1; any other `HTTP/d.d` is a version we do
// not speak, anything else is not a version at all.
result<int> parse_version(std::string_view v) {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !wire::is_digit(v[5]) || v[6] != '.' ||
      !wire::is_digit(v[7])) {
    return fail(errc::malformed_start_line, "bad HTTP version '" + wire::escape(v) + "'");
  }
  if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) {
    return fail(errc::unsupported_version, std::string(v) + " is not HTTP/1.0 or HTTP/1.1");
  }
  return v[7] - '0';
}

void append_number(std::string& out, std::uint64_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  (void)ec;  // 24 bytes always hold a uint64_t
  out.append(buf, end);
}

// Case-insensitive match of a header name against a lower-case literal,
// inlined (wire::iequals is an out-of-line call): it runs on every header of
// every message.
template <std::size_t N>
constexpr bool name_is(std::string_view name, const char (&lower)[N]) noexcept {
  if (name.size() != N - 1) return false;
  for (std::size_t i = 0; i + 1 < N; ++i) {
    if (wire::to_lower(name[i]) != lower[i]) return false;
  }
  return true;
}

bool is_content_length(std::string_view name) noexcept { return name_is(name, "content-length"); }
bool is_transfer_encoding(std::string_view name) noexcept {
  return name_is(name, "transfer-encoding");
}

// The framing headers of a complete head, found in one pass.
struct framing {
  bool transfer_encoding = false;
  std::optional<std::uint64_t> content_length;
};

result<framing> read_framing(std::span<const wire::header> headers) {
  framing f;
  for (const auto& h : headers) {
    if (is_content_length(h.name)) {
      // The same bound as frame_reader::content_length().
      auto n = wire::parse_decimal(h.value, UINT64_MAX / 2);
      if (!n) {
        return fail(errc::bad_content_length,
                    "Content-Length '" + wire::escape(h.value) + "' is not a decimal number");
      }
      if (f.content_length && *f.content_length != *n) {
        return fail(errc::bad_content_length, "conflicting Content-Length values");
      }
      f.content_length = n;
    } else if (is_transfer_encoding(h.name)) {
      f.transfer_encoding = true;
    }
  }
  return f;
}

// Overwrites `to` keeping its capacity. clear() + append() is a plain
// copy, where assign() goes through the general aliasing-safe replace and
// costs about twice as much; `from` always points into the frame_reader's
// buffer or the caller's input, never into `to`.
inline void set(std::string& to, std::string_view from) {
  to.clear();
  to.append(from);
}

void copy_headers(std::span<const wire::header> from, fields& to) {
  to.resize(from.size());
  for (std::size_t i = 0; i < from.size(); ++i) {
    set(to[i].name, from[i].name);
    set(to[i].value, from[i].value);
  }
}

// Writes the headers; Content-Length values that do not match the body are
// replaced by its size. Returns whether there was a Content-Length.
bool append_headers(const fields& headers, std::size_t body_size, std::string& out) {
  bool has_length = false;
  for (const auto& h : headers) {
    out += h.name;
    out += ": ";
    if (is_content_length(h.name)) {
      has_length = true;
      if (wire::parse_decimal(h.value, UINT64_MAX / 2) == body_size) {
        out += h.value;
      } else {
        append_number(out, body_size);
      }
    } else {
      out += h.value;
    }
    out += "\r\n";
  }
  return has_length;
}

// Transfer-Encoding matters only where a body follows (not 1xx/204/304).
result<void> validate_headers(const fields& headers, bool body_follows) {
  for (const auto& h : headers) {
    if (!is_token(h.name)) {
      return fail(errc::malformed_header, "header name '" + wire::escape(h.name) + "' is not a token");
    }
    if (has_ctl(h.value) || wire::trim(h.value).size() != h.value.size()) {
      return fail(errc::malformed_header,
                  "value of header '" + h.name + "' has control characters or outer blanks");
    }
    if (body_follows && is_transfer_encoding(h.name)) {
      return fail(errc::unsupported_encoding, "Transfer-Encoding is not supported");
    }
  }
  return {};
}

std::string version_word(int version) { return "1." + std::to_string(version); }

void describe_tail(wire::describer& d, const fields& headers, std::string_view body) {
  std::string line;
  for (const auto& h : headers) {
    line.assign(h.name);
    line += ": ";
    line += h.value;
    d.text("header", line);
  }
  d.text("body", body);
}

}  // namespace

// -------------------------------------------------------------- header helpers

std::optional<std::string_view> find_header(const fields& headers, std::string_view name) noexcept {
  for (const auto& h : headers) {
    if (wire::iequals(h.name, name)) return std::string_view(h.value);
  }
  return std::nullopt;
}

namespace {
// Calls f(token) for each token of every Connection header.
template <class F>
void for_each_connection_token(const fields& headers, F f) {
  for (const auto& h : headers) {
    if (h.name.size() != 10 || !wire::iequals(h.name, "connection")) continue;
    std::string_view rest(h.value);
    while (!rest.empty()) {
      auto comma = rest.find(',');
      f(wire::trim(rest.substr(0, comma)));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
}
}  // namespace

bool has_connection_token(const fields& headers, std::string_view token) noexcept {
  bool found = false;
  for_each_connection_token(headers, [&](std::string_view t) {
    if (wire::iequals(t, token)) found = true;
  });
  return found;
}

bool keep_alive(int version, const fields& headers) noexcept {
  bool close = false;
  bool keep = false;
  for_each_connection_token(headers, [&](std::string_view t) {
    if (wire::iequals(t, "close")) close = true;
    if (wire::iequals(t, "keep-alive")) keep = true;
  });
  if (close) return false;
  return version >= 1 || keep;
}

// ------------------------------------------------------------------ serializers

void serialize(const request& r, std::string& out) {
  out += r.method;
  out += ' ';
  out += r.target;
  out += " HTTP/1.";
  append_number(out, static_cast<std::uint64_t>(r.version));
  out += "\r\n";
  if (!append_headers(r.headers, r.body.size(), out) && !r.body.empty()) {
    out += "Content-Length: ";
    append_number(out, r.body.size());
    out += "\r\n";
  }
  out += "\r\n";
  out += r.body;
}

void serialize(const response& r, std::string& out) {
  out += "HTTP/1.";
  append_number(out, static_cast<std::uint64_t>(r.version));
  out += ' ';
  append_number(out, static_cast<std::uint64_t>(r.status));
  out += ' ';
  out += r.reason;
  out += "\r\n";
  if (!status_has_body(r.status)) {
    // Whatever these say about lengths, no body follows them.
    for (const auto& h : r.headers) {
      out += h.name;
      out += ": ";
      out += h.value;
      out += "\r\n";
    }
    out += "\r\n";
    return;
  }
  append_headers(r.headers, r.body.size(), out);
  out += "\r\n";
  out += r.body;
}

std::string serialize(const message& m) {
  std::string out;
  std::visit([&](const auto& v) { serialize(v, out); }, m);
  return out;
}

result<void> validate(const request& r) {
  if (!is_token(r.method)) {
    return fail(errc::malformed_start_line, "method '" + wire::escape(r.method) + "' is not a token");
  }
  if (r.target.empty()) return fail(errc::malformed_start_line, "empty request target");
  for (char c : r.target) {
    if (!target_char(c)) {
      return fail(errc::malformed_start_line, "blank or control character in the target");
    }
  }
  if (r.version != 0 && r.version != 1) {
    return fail(errc::unsupported_version, "HTTP minor version must be 0 or 1");
  }
  return validate_headers(r.headers, true);
}

result<void> validate(const response& r) {
  if (r.version != 0 && r.version != 1) {
    return fail(errc::unsupported_version, "HTTP minor version must be 0 or 1");
  }
  if (r.status < 100 || r.status > 999) {
    return fail(errc::malformed_start_line, "status " + std::to_string(r.status) +
                                                " is not three digits");
  }
  if (has_ctl(r.reason)) {
    return fail(errc::malformed_start_line, "control character in the reason phrase");
  }
  if (!status_has_body(r.status) && !r.body.empty()) {
    return fail(errc::invalid_argument,
                "a " + std::to_string(r.status) + " response cannot have a body");
  }
  return validate_headers(r.headers, status_has_body(r.status));
}

// -------------------------------------------------------------------- describe

std::string describe(const request& r) {
  wire::describer d("http.request");
  d.word("method", r.method).text("target", r.target).word("version", version_word(r.version));
  describe_tail(d, r.headers, r.body);
  return d.str();
}

std::string describe(const response& r) {
  wire::describer d("http.response");
  d.word("version", version_word(r.version))
      .number("status", static_cast<std::uint64_t>(r.status))
      .text("reason", r.reason);
  describe_tail(d, r.headers, r.body);
  return d.str();
}

std::string describe(const message& m) {
  return std::visit([](const auto& v) { return describe(v); }, m);
}

// ------------------------------------------------------------ status and make_*

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

bool status_has_body(int status) noexcept {
  return !(status < 200 || status == 204 || status == 304);
}

int status_for(errc code) noexcept {
  switch (code) {
    case errc::malformed_start_line:
    case errc::malformed_header:
    case errc::bad_content_length:
    case errc::truncated:
    case errc::unknown_command:
    case errc::invalid_name:
    case errc::invalid_argument:
      return 400;
    case errc::not_found: return 404;
    case errc::name_taken: return 406;
    case errc::missing_content_length: return 411;
    case errc::body_too_large: return 413;
    case errc::line_too_long:
    case errc::too_many_headers:
      return 431;
    case errc::unsupported_encoding: return 501;
    case errc::overloaded: return 503;
    case errc::unsupported_version: return 505;
    default: return 500;
  }
}

request make_request(std::string method, std::string target, std::string host, std::string body) {
  request r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.version = 1;
  r.headers.push_back({"Host", std::move(host)});
  if (!body.empty()) {
    r.headers.push_back({"Content-Type", "text/*"});
    r.headers.push_back({"Content-Length", std::to_string(body.size())});
  }
  r.body = std::move(body);
  return r;
}

response make_response(int status, std::string body, bool keep_alive) {
  response r;
  r.version = 1;
  r.status = status;
  r.reason = std::string(reason_phrase(status));
  if (status_has_body(status)) {
    r.headers.push_back({"Content-Length", std::to_string(body.size())});
    r.body = std::move(body);
  }
  if (!keep_alive) r.headers.push_back({"Connection", "close"});
  return r;
}

void write_response(std::string& out, int status, std::string_view body, bool keep_alive) {
  out += "HTTP/1.1 ";
  append_number(out, static_cast<std::uint64_t>(status));
  out += ' ';
  out += reason_phrase(status);
  out += "\r\n";
  bool with_body = status_has_body(status);
  if (with_body) {
    out += "Content-Length: ";
    append_number(out, body.size());
    out += "\r\n";
  }
  if (!keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
  if (with_body) out += body;
}

namespace {

// The event loop both decoders share. `on_head` validates a head and says
// whether the message is complete without a body; `fill` takes the message.
template <class OnHead, class Fill, class Fail>
result<bool> run_frames(frame_reader& reader, std::string_view& in, OnHead on_head, Fill fill,
                        Fail fail_with) {
  for (;;) {
    auto ev = reader.next(in);
    if (!ev) return fail_with(std::move(ev.error()));
    switch (*ev) {
      case frame_reader::event::need_more:
        return false;
      case frame_reader::event::head: {
        auto done = on_head();
        if (!done) return fail_with(std::move(done.error()));
        if (*done) {
          fill();
          return true;
        }
        break;  // read the body, usually already in `in`
      }
      case frame_reader::event::body:
        fill();
        return true;
    }
  }
}

}  // namespace

// ------------------------------------------------------------- request_decoder

tl::unexpected<error> request_decoder::fail_with(error e) {
  error_.emplace(std::move(e));
  return tl::unexpected<error>(*error_);
}

// Validates a complete head and sets up its body. True when the request is
// complete already (no body).
result<bool> request_decoder::on_head() {
  std::string_view line = reader_.start_line();
  auto sp1 = line.find(' ');
  auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp1 == sp2) {
    return fail(errc::malformed_start_line,
                "request line '" + wire::escape(line) + "' is not 'METHOD target HTTP/1.x'");
  }
  std::string_view method = line.substr(0, sp1);
  if (!is_token(method)) {
    return fail(errc::malformed_start_line, "method '" + wire::escape(method) + "' is not a token");
  }
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (target.empty()) return fail(errc::malformed_start_line, "empty request target");
  for (char c : target) {
    if (!target_char(c)) {
      return fail(errc::malformed_start_line, "blank or control character in the target");
    }
  }
  auto version = parse_version(line.substr(sp2 + 1));
  if (!version) return tl::unexpected<error>(std::move(version.error()));

  auto f = read_framing(reader_.headers());
  if (!f) return tl::unexpected<error>(std::move(f.error()));
  if (f->transfer_encoding) {
    return fail(errc::unsupported_encoding, "Transfer-Encoding is not supported; use Content-Length");
  }
  method_len_ = method.size();
  target_len_ = target.size();
  version_ = *version;
  std::uint64_t length = f->content_length.value_or(0);
  if (length == 0) return true;
  if (auto e = reader_.expect_body(length); !e) return tl::unexpected<error>(std::move(e.error()));
  return false;
}

void request_decoder::fill(request& out) {
  std::string_view line = reader_.start_line();
  set(out.method, line.substr(0, method_len_));
  set(out.target, line.substr(method_len_ + 1, target_len_));
  out.version = version_;
  copy_headers(reader_.headers(), out.headers);
  set(out.body, reader_.body());
  reader_.reset();
}

result<bool> request_decoder::next(std::string_view& in, request& out) {
  if (error_) return tl::unexpected<error>(*error_);
  return run_frames(
      reader_, in, [this] { return on_head(); }, [&] { fill(out); },
      [this](error e) -> result<bool> { return fail_with(std::move(e)); });
}

wire::decode_result<request> request_decoder::next(std::string_view& in) {
  request r;
  auto got = next(in, r);
  if (!got) return tl::unexpected<error>(std::move(got.error()));
  if (!*got) return std::optional<request>{};
  return std::optional<request>{std::move(r)};
}

wire::decode_result<request> request_decoder::finish() {
  if (error_) return tl::unexpected<error>(*error_);
  auto ev = reader_.finish();
  if (!ev) return fail_with(std::move(ev.error()));
  // Request bodies are never read up to the close, so there is nothing to
  // complete: this is a clean end between requests.
  return std::optional<request>{};
}

// ------------------------------------------------------------ response_decoder

tl::unexpected<error> response_decoder::fail_with(error e) {
  error_.emplace(std::move(e));
  return tl::unexpected<error>(*error_);
}

result<bool> response_decoder::on_head() {
  std::string_view line = reader_.start_line();
  // `HTTP/1.1 200 OK`: version, SP, three digits, then SP and a reason that
  // may be empty; a bare `HTTP/1.1 200` is accepted too.
  if (line.size() < 12 || line[8] != ' ' || (line.size() > 12 && line[12] != ' ')) {
    return fail(errc::malformed_start_line,
                "status line '" + wire::escape(line) + "' is not 'HTTP/1.x NNN reason'");
  }
  auto version = parse_version(line.substr(0, 8));
  if (!version) return tl::unexpected<error>(std::move(version.error()));
  std::string_view code = line.substr(9, 3);
  if (code[0] < '1' || code[0] > '9' || !wire::is_digit(code[1]) || !wire::is_digit(code[2])) {
    return fail(errc::malformed_start_line, "status '" + wire::escape(code) + "' is not 100..999");
  }
  reason_at_ = line.size() > 12 ? 13 : 12;
  if (has_ctl(line.substr(reason_at_))) {
    return fail(errc::malformed_start_line, "control character in the reason phrase");
  }
  version_ = *version;
  status_ = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  if (!status_has_body(status_)) return true;

  auto f = read_framing(reader_.headers());
  if (!f) return tl::unexpected<error>(std::move(f.error()));
  if (f->transfer_encoding) {
    return fail(errc::unsupported_encoding, "Transfer-Encoding is not supported");
  }
  if (!f->content_length) {
    // The seed server sends no Content-Length and closes after the body.
    reader_.expect_body_until_eof();
    return false;
  }
  if (*f->content_length == 0) return true;
  if (auto e = reader_.expect_body(*f->content_length); !e) {
    return tl::unexpected<error>(std::move(e.error()));
  }
  return false;
}

void response_decoder::fill(response& out) {
  std::string_view line = reader_.start_line();
  out.version = version_;
  out.status = status_;
  set(out.reason, line.substr(reason_at_));
  copy_headers(reader_.headers(), out.headers);
  set(out.body, reader_.body());
  reader_.reset();
}

result<bool> response_decoder::next(std::string_view& in, response& out) {
  if (error_) return tl::unexpected<error>(*error_);
  return run_frames(
      reader_, in, [this] { return on_head(); }, [&] { fill(out); },
      [this](error e) -> result<bool> { return fail_with(std::move(e)); });
}

wire::decode_result<response> response_decoder::next(std::string_view& in) {
  response r;
  auto got = next(in, r);
  if (!got) return tl::unexpected<error>(std::move(got.error()));
  if (!*got) return std::optional<response>{};
  return std::optional<response>{std::move(r)};
}

wire::decode_result<response> response_decoder::finish() {
  if (error_) return tl::unexpected<error>(*error_);
  auto ev = reader_.finish();
  if (!ev) return fail_with(std::move(ev.error()));
  if (*ev != frame_reader::event::body) return std::optional<response>{};
  response r;
  fill(r);  // a body that ran up to the close
  return std::optional<response>{std::move(r)};
}

}  // namespace improto::http

#include "improto/registry/decoder.hpp"
#include "improto/registry/messages.hpp"

#include <array>
#include <charconv>
#include <cstring>

#include "improto/wire/text.hpp"
#include "../wire/scan.hpp"

namespace improto::registry {
namespace {

using wire::frame_reader;

// A request-target byte: anything visible (obs-text included), no blanks.
constexpr bool target_char(char c) noexcept {
  auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u != 0x7f;
}

// The request line's rules, for the decoder and the serializer alike.
result<void> check_method(std::string_view method) {
  if (wire::is_token(method)) return {};
  return fail(errc::malformed_start_line, "method '" + wire::escape(method) + "' is not a token");
}

result<void> check_target(std::string_view target) {
  if (target.empty()) return fail(errc::malformed_start_line, "empty request target");
  for (char c : target) {
    if (!target_char(c)) {
      return fail(errc::malformed_start_line, "blank or control character in the target");
    }
  }
  return {};
}

result<void> check_reason(std::string_view reason) {
  if (!wire::has_ctl(reason)) return {};
  return fail(errc::malformed_start_line, "control character in the reason phrase");
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

// Case-insensitive match of a header name against a lower-case literal,
// inlined: it runs on every header of every message.
template <std::size_t N>
constexpr bool name_is(std::string_view name, const char (&lower)[N]) noexcept {
  if (name.size() != N - 1) return false;
  for (std::size_t i = 0; i + 1 < N; ++i) {
    if (wire::to_lower(name[i]) != lower[i]) return false;
  }
  return true;
}

bool is_transfer_encoding(std::string_view name) noexcept {
  return name_is(name, "transfer-encoding");
}

// The framing a complete head declares, as the reader noted it while the
// headers passed: a Content-Length error first, then Transfer-Encoding.
result<std::optional<std::uint64_t>> read_framing(const frame_reader& reader,
                                                  std::string_view te_error) {
  auto length = reader.content_length();
  if (!length) return length;
  if (reader.transfer_encoding()) return fail(errc::unsupported_encoding, std::string(te_error));
  return length;
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

void append_headers(const fields& headers, std::string& out) {
  for (const auto& h : headers) {
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
}

// What the decoders would reject or read differently in a message's
// headers and body. `start_line` is the size of the start line.
result<void> check_message(std::size_t start_line, const fields& headers, std::string_view body,
                           bool body_follows, bool length_required, const wire::limits& lim) {
  auto too_long = [&](std::size_t n) {
    return fail(errc::line_too_long,
                "a line of " + std::to_string(n) + " bytes exceeds " + std::to_string(lim.max_line));
  };
  if (start_line > lim.max_line) return too_long(start_line);
  if (headers.size() > lim.max_headers) {
    return fail(errc::too_many_headers, std::to_string(headers.size()) + " headers, at most " +
                                            std::to_string(lim.max_headers));
  }
  bool has_length = false;
  for (const auto& h : headers) {
    if (!wire::is_token(h.name)) {
      return fail(errc::malformed_header, "header name '" + wire::escape(h.name) + "' is not a token");
    }
    if (wire::has_ctl(h.value) || wire::has_outer_blank(h.value)) {
      return fail(errc::malformed_header,
                  "value of header '" + h.name + "' has control characters or outer blanks");
    }
    if (h.name.size() + 2 + h.value.size() > lim.max_line) {
      return too_long(h.name.size() + 2 + h.value.size());
    }
    if (!body_follows) continue;
    if (is_transfer_encoding(h.name)) {
      return fail(errc::unsupported_encoding, "Transfer-Encoding is not supported");
    }
    if (wire::is_content_length(h.name)) {
      if (wire::parse_content_length(h.value) != body.size()) {
        return fail(errc::bad_content_length, "Content-Length '" + wire::escape(h.value) +
                                                  "' is not the body's size " +
                                                  std::to_string(body.size()));
      }
      has_length = true;
    }
  }
  if (!body_follows && !body.empty()) {
    return fail(errc::invalid_argument, "this message cannot have a body");
  }
  if (length_required && !has_length && !body.empty()) {
    return fail(errc::missing_content_length, "a request body needs a Content-Length header");
  }
  if (body.size() > lim.max_body) {
    return fail(errc::body_too_large, "body of " + std::to_string(body.size()) +
                                          " bytes exceeds " + std::to_string(lim.max_body));
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

std::optional<std::string_view> request_view::header(std::string_view name) const noexcept {
  for (const auto& h : headers) {
    if (wire::iequals(h.name, name)) return h.value;
  }
  return std::nullopt;
}

void request_view::copy_to(request& out) const {
  set(out.method, method);
  set(out.target, target);
  out.version = version;
  copy_headers(headers, out.headers);
  set(out.body, body);
}

request request_view::to_request() const {
  request r;
  copy_to(r);
  return r;
}

// ------------------------------------------------------------------ serializers

void serialize_unchecked(const request& r, std::string& out) {
  out += r.method;
  out += ' ';
  out += r.target;
  out += " HTTP/1.";
  wire::append_decimal(out, static_cast<std::uint64_t>(r.version));
  out += "\r\n";
  append_headers(r.headers, out);
  out += "\r\n";
  out += r.body;
}

void serialize_unchecked(const response& r, std::string& out) {
  out += "HTTP/1.";
  wire::append_decimal(out, static_cast<std::uint64_t>(r.version));
  out += ' ';
  wire::append_decimal(out, static_cast<std::uint64_t>(r.status));
  out += ' ';
  out += r.reason;
  out += "\r\n";
  append_headers(r.headers, out);
  out += "\r\n";
  out += r.body;
}

result<void> serialize(const request& r, std::string& out, const wire::limits& lim) {
  if (auto ok = check_method(r.method); !ok) return ok;
  if (auto ok = check_target(r.target); !ok) return ok;
  if (r.version != 0 && r.version != 1) {
    return fail(errc::unsupported_version, "HTTP minor version must be 0 or 1");
  }
  std::size_t start_line = r.method.size() + r.target.size() + 10;  // two SP, HTTP/1.x
  if (auto ok = check_message(start_line, r.headers, r.body, true, true, lim); !ok) return ok;
  serialize_unchecked(r, out);
  return {};
}

result<void> serialize(const response& r, std::string& out, const wire::limits& lim) {
  if (r.version != 0 && r.version != 1) {
    return fail(errc::unsupported_version, "HTTP minor version must be 0 or 1");
  }
  if (r.status < 100 || r.status > 999) {
    return fail(errc::malformed_start_line, "status " + std::to_string(r.status) +
                                                " is not three digits");
  }
  if (auto ok = check_reason(r.reason); !ok) return ok;
  if (!status_has_body(r.status) && !r.body.empty()) {
    return fail(errc::invalid_argument,
                "a " + std::to_string(r.status) + " response cannot have a body");
  }
  std::size_t start_line = r.reason.size() + 13;  // HTTP/1.x SP NNN SP
  if (auto ok = check_message(start_line, r.headers, r.body, status_has_body(r.status), false, lim);
      !ok) {
    return ok;
  }
  serialize_unchecked(r, out);
  return {};
}

result<std::string> serialize(const http_message& m) {
  std::string out;
  auto ok = std::visit([&](const auto& v) { return serialize(v, out); }, m);
  if (!ok) return tl::unexpected<error>(std::move(ok.error()));
  return out;
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

std::string describe(const http_message& m) {
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
  wire::append_decimal(out, static_cast<std::uint64_t>(status));
  out += ' ';
  out += reason_phrase(status);
  out += "\r\n";
  bool with_body = status_has_body(status);
  if (with_body) {
    out += "Content-Length: ";
    wire::append_decimal(out, body.size());
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

namespace {

// `HTTP/1.1` or `HTTP/1.0`: the minor version, else -1.
int plain_version(std::string_view v) noexcept {
  if (v.size() != 8) return -1;
  std::uint64_t w;
  std::memcpy(&w, v.data(), 8);
  std::uint64_t one_one, one_zero;
  std::memcpy(&one_one, "HTTP/1.1", 8);
  std::memcpy(&one_zero, "HTTP/1.0", 8);
  if (w == one_one) return 1;
  if (w == one_zero) return 0;
  return -1;
}

}  // namespace

// Validates a complete head and sets up its body. True when the request is
// complete already (no body).
result<bool> request_decoder::on_head() {
  std::string_view line = reader_.start_line();
  // One pass over `METHOD SP target SP HTTP/1.x`; anything else takes the
  // checks below, which say what is wrong.
  std::size_t n = line.size();
  std::size_t i = 0;
  while (i < n && wire::is_tchar(line[i])) ++i;
  std::size_t method_end = i;
  std::size_t j = i + 1;
  if (i < n && line[i] == ' ' && i > 0) {
    // Target bytes: anything above a blank but DEL.
    j = static_cast<std::size_t>(
        wire::detail::find_ctl<0x21>(line.data() + j, line.data() + n) - line.data());
  }
  int minor = -1;
  if (method_end > 0 && method_end < n && line[method_end] == ' ' && j > method_end + 1 &&
      j < n && line[j] == ' ') {
    minor = plain_version(line.substr(j + 1));
  }
  if (minor >= 0) {
    method_len_ = method_end;
    target_len_ = j - method_end - 1;
    version_ = minor;
  } else {
    auto sp1 = line.find(' ');
    auto sp2 = line.rfind(' ');
    if (sp1 == std::string_view::npos || sp1 == sp2) {
      return fail(errc::malformed_start_line,
                  "request line '" + wire::escape(line) + "' is not 'METHOD target HTTP/1.x'");
    }
    std::string_view method = line.substr(0, sp1);
    if (auto ok = check_method(method); !ok) return tl::unexpected<error>(std::move(ok.error()));
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (auto ok = check_target(target); !ok) return tl::unexpected<error>(std::move(ok.error()));
    auto version = parse_version(line.substr(sp2 + 1));
    if (!version) return tl::unexpected<error>(std::move(version.error()));
    method_len_ = method.size();
    target_len_ = target.size();
    version_ = *version;
  }

  if (reader_.content_length_bad() || reader_.transfer_encoding()) {
    auto length = read_framing(reader_, "Transfer-Encoding is not supported; use Content-Length");
    return tl::unexpected<error>(std::move(length.error()));
  }
  std::uint64_t body = reader_.content_length_value();
  if (body == 0) return true;
  if (auto e = reader_.expect_body(body); !e) return tl::unexpected<error>(std::move(e.error()));
  return false;
}

request_view request_decoder::view() const noexcept {
  std::string_view line = reader_.start_line();
  request_view v;
  v.method = line.substr(0, method_len_);
  v.target = line.substr(method_len_ + 1, target_len_);
  v.version = version_;
  v.headers = reader_.headers();
  v.body = reader_.body();
  v.connection_close = reader_.connection_close();
  v.connection_keep_alive = reader_.connection_keep_alive();
  return v;
}

wire::decode_result<request_view> request_decoder::next_view(std::string_view& in) {
  if (error_) return tl::unexpected<error>(*error_);
  if (handed_out_) {
    reader_.reset();
    handed_out_ = false;
  }
  for (;;) {
    auto ev = reader_.next(in);
    if (!ev) return fail_with(std::move(ev.error()));
    switch (*ev) {
      case frame_reader::event::need_more:
        return std::optional<request_view>{};
      case frame_reader::event::head: {
        auto done = on_head();
        if (!done) return fail_with(std::move(done.error()));
        if (!*done) break;  // read the body, usually already in `in`
        [[fallthrough]];
      }
      case frame_reader::event::body:
        handed_out_ = true;
        return std::optional<request_view>{view()};
    }
  }
}

wire::decode_result<request> request_decoder::next(std::string_view& in) {
  auto got = next_view(in);
  if (!got) return tl::unexpected<error>(std::move(got.error()));
  if (!*got) return std::optional<request>{};
  (*got)->copy_to(spare_);
  // Built in place: one move of the request, no temporaries.
  return wire::decode_result<request>(tl::in_place, std::in_place, std::move(spare_));
}

wire::decode_result<request> request_decoder::finish() {
  if (error_) return tl::unexpected<error>(*error_);
  if (handed_out_) {
    reader_.reset();
    handed_out_ = false;
  }
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
  if (auto ok = check_reason(line.substr(reason_at_)); !ok) {
    return tl::unexpected<error>(std::move(ok.error()));
  }
  version_ = *version;
  status_ = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  if (!status_has_body(status_)) return true;

  auto length = read_framing(reader_, "Transfer-Encoding is not supported");
  if (!length) return tl::unexpected<error>(std::move(length.error()));
  if (!*length) {
    // The seed server sends no Content-Length and closes after the body.
    reader_.expect_body_until_eof();
    return false;
  }
  if (**length == 0) return true;
  if (auto e = reader_.expect_body(**length); !e) {
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

wire::decode_result<response> response_decoder::next(std::string_view& in) {
  if (error_) return tl::unexpected<error>(*error_);
  auto got = run_frames(
      reader_, in, [this] { return on_head(); }, [this] { fill(spare_); },
      [this](error e) -> result<bool> { return fail_with(std::move(e)); });
  if (!got) return tl::unexpected<error>(std::move(got.error()));
  if (!*got) return std::optional<response>{};
  return wire::decode_result<response>(tl::in_place, std::in_place, std::move(spare_));
}

wire::decode_result<response> response_decoder::finish() {
  if (error_) return tl::unexpected<error>(*error_);
  auto ev = reader_.finish();
  if (!ev) return fail_with(std::move(ev.error()));
  if (*ev != frame_reader::event::body) return std::optional<response>{};
  fill(spare_);  // a body that ran up to the close
  return std::optional<response>{std::move(spare_)};
}

}  // namespace improto::registry

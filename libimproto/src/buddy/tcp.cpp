// TCP side of protocol 2: REG / ADD / DEL requests and `CODE TEXT` responses.

#include <array>
#include <string>

#include "grammar.hpp"
#include "improto/wire/text.hpp"

namespace improto::buddy {

bool valid_user(std::string_view id) noexcept {
  if (id.empty() || id.size() > max_userid) return false;
  for (char c : id) {
    if (!wire::is_alnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

namespace detail {

std::string shown(std::string_view field) {
  constexpr std::size_t max_shown = 40;
  if (field.size() <= max_shown) return wire::quote(field);
  return wire::quote(field.substr(0, max_shown)) + "...";
}

std::optional<presence> parse_presence(std::string_view word) noexcept {
  if (word == "100" || wire::iequals(word, "ONLINE")) return presence::online;
  if (word == "101" || wire::iequals(word, "OFFLINE")) return presence::offline;
  return std::nullopt;
}

}  // namespace detail

result<void> check_user(std::string_view id, std::string_view role) {
  if (valid_user(id)) return {};
  return fail(errc::invalid_name, std::string(role) + " " + detail::shown(id) +
                                      " is not 1 to 32 characters of A-Z a-z 0-9 _ . -");
}

// ----------------------------------------------------------------- requests

result<request> parse_request_line(std::string_view line) {
  std::array<std::string_view, 3> w;
  std::size_t n = detail::split_words(line, w);
  if (n == 0) return fail(errc::malformed_start_line, "empty request line");
  using detail::verb;
  if (detail::is_verb(w[0], verb::reg)) {
    if (n != 2) return fail(errc::invalid_argument, "expected 'REG userid'");
    if (auto ok = check_user(w[1], "userid"); !ok) return tl::unexpected(ok.error());
    return register_request{std::string(w[1])};
  }
  bool add = detail::is_verb(w[0], verb::add);
  if (add || detail::is_verb(w[0], verb::del)) {
    if (n != 3) {
      return fail(errc::invalid_argument,
                  add ? "expected 'ADD userid buddyid'" : "expected 'DEL userid buddyid'");
    }
    if (auto ok = check_user(w[1], "userid"); !ok) return tl::unexpected(ok.error());
    if (auto ok = check_user(w[2], "buddyid"); !ok) return tl::unexpected(ok.error());
    if (add) return add_request{std::string(w[1]), std::string(w[2])};
    return delete_request{std::string(w[1]), std::string(w[2])};
  }
  return fail(errc::unknown_command,
              "unknown request " + detail::shown(w[0]) + "; expected REG, ADD or DEL");
}

request_decoder::request_decoder(wire::limits lim) : lines_(lim.max_line) {}

wire::decode_result<request> request_decoder::next(std::string_view& in) {
  return detail::next_line<request>(lines_, error_, in, parse_request_line);
}

wire::decode_result<request> request_decoder::finish() {
  return detail::finish_lines<request>(lines_, error_);
}

namespace {

void write(std::string_view verb, std::string_view user, std::string& out) {
  out += verb;
  out += ' ';
  out += user;
  out += '\n';
}

void write(std::string_view verb, std::string_view user, std::string_view buddy,
           std::string& out) {
  out += verb;
  out += ' ';
  out += user;
  out += ' ';
  out += buddy;
  out += '\n';
}

result<void> check(const register_request& m) { return check_user(m.user, "userid"); }
result<void> check_pair(const std::string& user, const std::string& buddy) {
  if (auto ok = check_user(user, "userid"); !ok) return ok;
  return check_user(buddy, "buddyid");
}
result<void> check(const add_request& m) { return check_pair(m.user, m.buddy); }
result<void> check(const delete_request& m) { return check_pair(m.user, m.buddy); }

void write(const register_request& m, std::string& out) {
  write(detail::wire_word(detail::verb::reg), m.user, out);
}
void write(const add_request& m, std::string& out) {
  write(detail::wire_word(detail::verb::add), m.user, m.buddy, out);
}
void write(const delete_request& m, std::string& out) {
  write(detail::wire_word(detail::verb::del), m.user, m.buddy, out);
}

result<void> check(const response& m) {
  if (m.code < 100 || m.code > 999) {
    return fail(errc::invalid_argument, "response code " + std::to_string(m.code) +
                                            " is not three digits 100..999");
  }
  if (wire::has_ctl(m.text) || wire::has_outer_blank(m.text)) {
    return fail(errc::invalid_argument,
                "response text " + detail::shown(m.text) +
                    " has control characters (CR, LF) or blanks at either end");
  }
  return {};
}

void write(const response& m, std::string& out) {
  wire::append_decimal(out, m.code);
  if (!m.text.empty()) {
    out += ' ';
    out += m.text;
  }
  out += '\n';
}

template <class M>
result<void> checked(const M& m, std::string& out) {
  if (auto ok = check(m); !ok) return ok;
  write(m, out);
  return {};
}

}  // namespace

result<void> serialize(const register_request& m, std::string& out) { return checked(m, out); }
result<void> serialize(const add_request& m, std::string& out) { return checked(m, out); }
result<void> serialize(const delete_request& m, std::string& out) { return checked(m, out); }
result<void> serialize(const request& m, std::string& out) {
  return std::visit([&](const auto& r) { return checked(r, out); }, m);
}
result<std::string> serialize(const request& m) {
  std::string out;
  if (auto ok = serialize(m, out); !ok) return tl::unexpected(ok.error());
  return out;
}
void serialize_unchecked(const request& m, std::string& out) {
  std::visit([&](const auto& r) { write(r, out); }, m);
}

// ---------------------------------------------------------------- responses

result<response> parse_response_line(std::string_view line) {
  line = wire::trim(line);
  if (line.size() < 3 || line[0] == '0' || !wire::is_digit(line[0]) ||
      !wire::is_digit(line[1]) || !wire::is_digit(line[2]) ||
      (line.size() > 3 && !wire::is_blank(line[3]))) {
    return fail(errc::malformed_start_line,
                "expected 'CODE TEXT' with a 3-digit code, got " + detail::shown(line));
  }
  std::string_view text = wire::trim(line.substr(3));
  for (char c : text) {
    if (wire::is_ctl(c)) return fail(errc::invalid_argument, "control character in response text");
  }
  auto code = static_cast<std::uint16_t>((line[0] - '0') * 100 + (line[1] - '0') * 10 +
                                         (line[2] - '0'));
  return response{code, std::string(text)};
}

response_decoder::response_decoder(wire::limits lim) : lines_(lim.max_line) {}

wire::decode_result<response> response_decoder::next(std::string_view& in) {
  return detail::next_line<response>(lines_, error_, in, parse_response_line);
}

wire::decode_result<response> response_decoder::finish() {
  return detail::finish_lines<response>(lines_, error_);
}

result<void> serialize(const response& m, std::string& out) { return checked(m, out); }
void serialize_unchecked(const response& m, std::string& out) { write(m, out); }

}  // namespace improto::buddy

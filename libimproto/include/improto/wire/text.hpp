#pragma once

// Small text helpers shared by every protocol codec: ASCII-only, no locale,
// no allocation unless the function returns a std::string.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "improto/error.hpp"

namespace improto::wire {

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_alnum(char c) noexcept { return is_digit(c) || is_alpha(c); }
constexpr bool is_blank(char c) noexcept { return c == ' ' || c == '\t'; }
// A control character as HTTP defines it (CTL), excluding horizontal tab.
constexpr bool is_ctl(char c) noexcept {
  auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}
namespace detail {
struct tchar_table {
  bool allowed[256] = {};
  constexpr tchar_table() {
    for (int c = '0'; c <= '9'; ++c) allowed[c] = true;
    for (int c = 'a'; c <= 'z'; ++c) allowed[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c) allowed[c] = true;
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) allowed[static_cast<unsigned char>(c)] = true;
  }
};
inline constexpr tchar_table tchars{};
}  // namespace detail

// HTTP token character (RFC 9110 tchar). A table: it runs per header byte.
constexpr bool is_tchar(char c) noexcept {
  return detail::tchars.allowed[static_cast<unsigned char>(c)];
}

// An HTTP token: one or more tchars (methods, header names).
constexpr bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_tchar(c)) return false;
  }
  return true;
}
// True when `s` holds a control character (is_ctl: CR, LF, NUL, ...).
constexpr bool has_ctl(std::string_view s) noexcept {
  for (char c : s) {
    if (is_ctl(c)) return true;
  }
  return false;
}
// True when `s` starts or ends with a space or tab.
constexpr bool has_outer_blank(std::string_view s) noexcept {
  return !s.empty() && (is_blank(s.front()) || is_blank(s.back()));
}

constexpr char to_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
bool iequals(std::string_view a, std::string_view b) noexcept;
bool istarts_with(std::string_view s, std::string_view prefix) noexcept;

// Strips spaces and tabs at both ends.
constexpr std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

// Splits off the first word (up to a space or tab); the rest has its leading
// blanks removed. Returns {s, ""} when there is no blank.
std::pair<std::string_view, std::string_view> split_first(std::string_view s) noexcept;

// Decimal digits only (no sign, no blanks), at most `max`; nullopt otherwise.
std::optional<std::uint64_t> parse_decimal(std::string_view s,
                                           std::uint64_t max = UINT64_MAX) noexcept;
// Appends `n` in decimal.
void append_decimal(std::string& out, std::uint64_t n);
// Number of decimal digits of `n` (1 for 0).
constexpr std::size_t decimal_digits(std::uint64_t n) noexcept {
  std::size_t d = 1;
  while (n >= 10) {
    n /= 10;
    ++d;
  }
  return d;
}

// C-style escaping used by describe() output and the test vectors:
// printable ASCII stays, `\` and `"` are escaped, \n \r \t by name, any other
// byte as \xNN.
std::string escape(std::string_view bytes);
std::string quote(std::string_view bytes);  // escape() inside double quotes
result<std::string> unescape(std::string_view text);

// Builds the canonical one-line description of a message:
//   `send to="bob" body="hi\n"` - type first, then fields in a fixed order.
// Used for logs, test vectors and Python reprs, so it must stay stable.
class describer {
 public:
  explicit describer(std::string_view type) : out_(type) {}
  describer& text(std::string_view key, std::string_view value);
  describer& number(std::string_view key, std::uint64_t value);
  describer& word(std::string_view key, std::string_view value);  // unquoted
  std::string str() const { return out_; }

 private:
  std::string out_;
};

}  // namespace improto::wire

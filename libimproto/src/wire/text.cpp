#include "improto/wire/text.hpp"

#include <charconv>
#include <string_view>

namespace improto::wire {

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  }
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::pair<std::string_view, std::string_view> split_first(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size() && !is_blank(s[i])) ++i;
  std::string_view first = s.substr(0, i);
  std::string_view rest = s.substr(i);
  while (!rest.empty() && is_blank(rest.front())) rest.remove_prefix(1);
  return {first, rest};
}

std::optional<std::uint64_t> parse_decimal(std::string_view s, std::uint64_t max) noexcept {
  if (s.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    auto digit = static_cast<std::uint64_t>(c - '0');
    if (digit > max || value > (max - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

void append_decimal(std::string& out, std::uint64_t n) {
  char buf[20];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  (void)ec;  // 20 digits always hold a uint64_t
  out.append(buf, end);
}

std::string escape(std::string_view bytes) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size());
  for (char c : bytes) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: {
        auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f) {
          out += c;
        } else {
          out += "\\x";
          out += hex[u >> 4];
          out += hex[u & 0xf];
        }
      }
    }
  }
  return out;
}

std::string quote(std::string_view bytes) {
  std::string out = "\"";
  out += escape(bytes);
  out += '"';
  return out;
}

namespace {
int hex_value(char c) noexcept {
  if (is_digit(c)) return c - '0';
  char l = to_lower(c);
  if (l >= 'a' && l <= 'f') return l - 'a' + 10;
  return -1;
}
}  // namespace

result<std::string> unescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i == text.size()) return fail(errc::invalid_argument, "escape at end of text");
    switch (text[i]) {
      case '\\': out += '\\'; break;
      case '"': out += '"'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case '0': out += '\0'; break;
      case 'x': {
        int hi = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
        int lo = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
        if (hi < 0 || lo < 0) return fail(errc::invalid_argument, "bad \\x escape");
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        break;
      }
      default:
        return fail(errc::invalid_argument,
                    std::string("unknown escape \\") + text[i]);
    }
  }
  return out;
}

describer& describer::text(std::string_view key, std::string_view value) {
  out_ += ' ';
  out_ += key;
  out_ += '=';
  out_ += quote(value);
  return *this;
}

describer& describer::number(std::string_view key, std::uint64_t value) {
  out_ += ' ';
  out_ += key;
  out_ += '=';
  out_ += std::to_string(value);
  return *this;
}

describer& describer::word(std::string_view key, std::string_view value) {
  out_ += ' ';
  out_ += key;
  out_ += '=';
  out_ += value;
  return *this;
}

}  // namespace improto::wire

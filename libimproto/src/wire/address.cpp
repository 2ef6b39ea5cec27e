#include "improto/wire/address.hpp"

#include "improto/wire/text.hpp"

namespace improto::wire {
namespace {

constexpr bool is_hex(char c) noexcept {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

}  // namespace

bool is_ipv4(std::string_view s) noexcept {
  int parts = 0;
  while (true) {
    auto dot = s.find('.');
    std::string_view part = s.substr(0, dot);
    if (part.empty() || part.size() > 3 || (part.size() > 1 && part[0] == '0')) return false;
    if (!parse_decimal(part, 255)) return false;
    if (++parts > 4) return false;
    if (dot == std::string_view::npos) break;
    s.remove_prefix(dot + 1);
  }
  return parts == 4;
}

bool is_ipv6(std::string_view s) noexcept {
  std::size_t i = 0;
  int groups = 0;
  bool compressed = false;
  if (s.substr(0, 2) == "::") {
    compressed = true;
    i = 2;
    if (i == s.size()) return true;
  } else if (s.empty() || s[0] == ':') {
    return false;
  }
  while (true) {
    auto colon = s.find(':', i);
    std::string_view piece = s.substr(i, colon == std::string_view::npos ? colon : colon - i);
    if (piece.find('.') != std::string_view::npos) {
      if (colon != std::string_view::npos || !is_ipv4(piece)) return false;
      groups += 2;
      break;
    }
    if (piece.empty() || piece.size() > 4) return false;
    for (char c : piece) {
      if (!is_hex(c)) return false;
    }
    ++groups;
    if (groups > 8) return false;
    if (colon == std::string_view::npos) break;
    if (colon + 1 < s.size() && s[colon + 1] == ':') {
      if (compressed) return false;
      compressed = true;
      i = colon + 2;
      if (i == s.size()) break;
    } else {
      i = colon + 1;
      if (i == s.size()) return false;  // a single trailing colon
    }
  }
  return compressed ? groups < 8 : groups == 8;
}

bool is_ip(std::string_view s) noexcept {
  return s.find(':') == std::string_view::npos ? is_ipv4(s) : is_ipv6(s);
}

}  // namespace improto::wire

#pragma once

// The byte classes of the request datagram grammar and the reading of the
// two shapes clients send, inline for the server's datagram loop (not
// installed): parse_udp_request_view() is read_common_shape(), else the
// general one-pass reading (detail::parse_udp_request_general). A server
// that calls these two itself skips a call and a copy of the view per
// datagram; the answers are the same.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "improto/buddy/decoder.hpp"
#include "improto/buddy/messages.hpp"
#include "improto/wire/text.hpp"

namespace improto::buddy::detail {

// Byte classes for the one-pass reading, one load per byte.
enum : std::uint8_t { user_char = 1, blank_char = 2, digit_char = 4 };
struct byte_classes {
  std::uint8_t of[256] = {};
  constexpr byte_classes() {
    for (int c = 0; c < 256; ++c) {
      auto ch = static_cast<char>(c);
      // valid_user()'s rule; digits are userid characters too.
      if (wire::is_alnum(ch) || ch == '_' || ch == '.' || ch == '-') of[c] |= user_char;
      if (wire::is_blank(ch)) of[c] |= blank_char;
      if (wire::is_digit(ch)) of[c] |= digit_char;
    }
  }
  bool is(char c, std::uint8_t cls) const noexcept {
    return (of[static_cast<unsigned char>(c)] & cls) != 0;
  }
};
inline constexpr byte_classes classes{};

// True when the `n` bytes at `p` (1 to max_userid) are all userid
// characters. Four table loads per step and no branch per byte; the last
// step overlaps the one before, which checking twice cannot change.
[[gnu::always_inline]] inline bool all_user_chars(const char* p, std::size_t n) noexcept {
  auto of = [p](std::size_t i) -> unsigned {
    return classes.of[static_cast<unsigned char>(p[i])];
  };
  unsigned all = user_char;
  if (n >= 4) {
    for (std::size_t i = 0; i + 4 < n; i += 4) all &= of(i) & of(i + 1) & of(i + 2) & of(i + 3);
    const std::size_t last = n - 4;
    all &= of(last) & of(last + 1) & of(last + 2) & of(last + 3);
  } else {
    all &= of(0) & of(n / 2) & of(n - 1);  // n is 1 to 3: every byte
  }
  return (all & user_char) != 0;
}

inline std::uint32_t load32(const char* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline std::uint64_t load64(const char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
// Four bytes as load32() reads them on a little-endian machine.
constexpr std::uint32_t le32(const char (&s)[5]) noexcept {
  return static_cast<std::uint32_t>(static_cast<unsigned char>(s[0])) |
         static_cast<std::uint32_t>(static_cast<unsigned char>(s[1])) << 8 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(s[2])) << 16 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(s[3])) << 24;
}

constexpr std::uint64_t bytes_of(std::uint8_t b) noexcept { return 0x0101010101010101ull * b; }

// The exact shapes clients send, "SET id 10x port" and "GET id" (verb in
// capitals, one space between fields, nothing after the last one), read with
// a few word loads; false for anything else, which the general reading then
// takes. On true, `r` holds what the general reading would have given.
//
// With `check_user` false the id's bytes are not classified (its length is
// still 1 to max_userid): for a caller that looks the id up among valid ids
// at once, and reads the datagram again whole when it is not found there.
template <bool check_user = true>
[[gnu::always_inline]] inline bool read_common_shape(std::string_view datagram,
                                                    udp_request_view& r) noexcept {
  if constexpr (std::endian::native != std::endian::little) {
    return false;
  } else {
    const char* const d = datagram.data();
    const std::size_t n = datagram.size();
    if (n < 5) return false;
    const std::uint32_t head = load32(d);
    if (head == le32("GET ")) {
      const std::size_t user_size = n - 4;
      if (user_size > max_userid) return false;
      if (check_user && !all_user_chars(d + 4, user_size)) return false;
      r.verb = udp_verb::get;
      r.user = std::string_view(d + 4, user_size);
      r.valid = true;
      return true;
    }
    // "SET " id " 10x " port: at least 11 bytes, so the last 8 can be read as
    // one word, whose top bytes are the port's digits.
    if (head != le32("SET ") || n < 11) return false;
    const std::uint64_t x = load64(d + n - 8) ^ bytes_of('0');  // digits become 0 to 9
    // The high bit of each byte that is not a digit (>= 10 after the xor;
    // the masking keeps the addition from carrying into the next byte).
    const std::uint64_t other =
        (((x & bytes_of(0x7f)) + bytes_of(0x80 - 10)) | x) & bytes_of(0x80);
    // Digits at the end: 0 (the last byte is no digit) to 8 (other == 0).
    const auto digits = static_cast<std::size_t>(std::countl_zero(other)) / 8;
    if (digits == 0 || digits > 5) return false;
    // 1 to max_userid (a datagram too short for one wraps round to a size too large).
    const std::size_t user_size = n - digits - 9;
    if (user_size - 1 >= max_userid) return false;
    // " 10x " before the port: the top five bytes of the word that ends there.
    const char* const status = d + 4 + user_size;
    constexpr std::uint64_t status_bytes = 0xffffffffff000000ull;
    const std::uint64_t expected = std::uint64_t{le32(" 101")} << 24 | std::uint64_t{' '} << 56;
    if (((load64(status - 3) | std::uint64_t{1} << 48) & status_bytes) != expected) return false;
    if (check_user && !all_user_chars(d + 4, user_size)) return false;
    // The port: the digits' bytes (the others cleared, as leading zeros),
    // most significant first, combined in pairs, fours, then eights.
    std::uint64_t v = x & (~std::uint64_t{0} << (8 * (8 - digits)));
    v = (v * 10 + (v >> 8)) & 0x00ff00ff00ff00ffull;
    v = (v * 100 + (v >> 16)) & 0x0000ffff0000ffffull;
    v = (v * 10000 + (v >> 32)) & 0xffffffffull;
    const bool online = status[3] == '0';
    // Nobody can connect to port 0 (refused, and worded, by the general reading).
    if (v > 65535 || (online && v == 0)) return false;
    r.verb = udp_verb::set;
    r.user = std::string_view(d + 4, user_size);
    r.status = online ? presence::online : presence::offline;
    r.msgport = static_cast<std::uint16_t>(v);
    r.valid = true;
    return true;
  }
}

}  // namespace improto::buddy::detail

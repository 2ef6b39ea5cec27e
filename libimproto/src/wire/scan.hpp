#pragma once

// Header-value scanning for frame_reader (not installed). A value runs up to
// its line end; every byte on the way must be visible, a blank or obs-text,
// so one search finds both the end and any bad byte: the first control
// character (< 0x20 or 0x7f; tab included, the caller steps over it).
//
// Header names end at the first byte that is not a tchar (the ':').
//
// Kernels with the same answers (tests/wire/scan_test.cpp compares them):
//  * sse2     - 16 bytes a step; SSE2 is part of every x86-64;
//  * swar     - 8 bytes a step in a plain 64-bit word (any little-endian
//               CPU); names one byte a step through the tchar table;
//  * bytewise - one byte a step.
// find_ctl() and find_name_end() are what the library uses: sse2 where the
// compiler targets it, else swar (bytewise on big-endian). The CMake cache variable
// IMPROTO_SCAN (auto, swar, bytewise) forces a portable one, so that the
// fallbacks are built and tested on x86 too.
//
// No kernel reads outside [p, end): wide loads only while a whole word fits.

#include <bit>
#include <cstdint>
#include <cstring>

#include "improto/wire/text.hpp"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define IMPROTO_HAVE_SSE2 1
#endif

namespace improto::wire::detail {

// Bytes below `Limit` or 0x7f: control characters for Limit 0x20, and
// blanks too for Limit 0x21 (the end of a request target).
template <unsigned char Limit>
constexpr bool is_stop_byte(unsigned char u) noexcept {
  return u < Limit || u == 0x7f;
}

template <unsigned char Limit = 0x20>
inline const char* find_ctl_bytewise(const char* p, const char* end) noexcept {
  while (p < end && !is_stop_byte<Limit>(static_cast<unsigned char>(*p))) ++p;
  return p;
}

template <unsigned char Limit = 0x20>
inline const char* find_ctl_swar(const char* p, const char* end) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    constexpr std::uint64_t ones = 0x0101010101010101ull;
    constexpr std::uint64_t highs = 0x8080808080808080ull;
    while (end - p >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      // A byte below Limit: w - Limit borrows into its high bit while the
      // byte's own high bit is clear. A 0x7f: the same test on w ^ 0x7f
      // for zero. Borrows only run upwards, so the lowest flagged byte is
      // always a true one.
      std::uint64_t low = (w - ones * Limit) & ~w;
      std::uint64_t x = w ^ (ones * 0x7f);
      std::uint64_t del = (x - ones) & ~x;
      std::uint64_t hit = (low | del) & highs;
      if (hit != 0) return p + std::countr_zero(hit) / 8;
      p += 8;
    }
  }
  return find_ctl_bytewise<Limit>(p, end);
}

#ifdef IMPROTO_HAVE_SSE2
template <unsigned char Limit = 0x20>
inline const char* find_ctl_sse2(const char* p, const char* end) noexcept {
  const __m128i below = _mm_set1_epi8(static_cast<char>(Limit - 1));
  const __m128i del = _mm_set1_epi8(0x7f);
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Unsigned v < Limit is min(v, Limit - 1) == v.
    __m128i stop = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, below), v), _mm_cmpeq_epi8(v, del));
    auto mask = static_cast<unsigned>(_mm_movemask_epi8(stop));
    if (mask != 0) return p + std::countr_zero(mask);
    p += 16;
  }
  return find_ctl_swar<Limit>(p, end);
}
#endif

// The first control character in [p, end) (end when none): a header value's
// end or a bad byte in it.
template <unsigned char Limit = 0x20>
inline const char* find_ctl(const char* p, const char* end) noexcept {
#if defined(IMPROTO_SCAN_BYTEWISE)
  return find_ctl_bytewise<Limit>(p, end);
#elif defined(IMPROTO_SCAN_SWAR) || !defined(IMPROTO_HAVE_SSE2)
  return find_ctl_swar<Limit>(p, end);
#else
  return find_ctl_sse2<Limit>(p, end);
#endif
}

// The first byte in [p, end) that is not a tchar (end when none): the ':'
// after a header name, or a bad byte in it.
inline const char* find_name_end_bytewise(const char* p, const char* end) noexcept {
  while (p < end && is_tchar(*p)) ++p;
  return p;
}

#ifdef IMPROTO_HAVE_SSE2
// Names are letters, digits and '-' but for rare exceptions: those three
// classes 16 bytes a step, then the table from the first other byte on.
inline const char* find_name_end_sse2(const char* p, const char* end) noexcept {
  const __m128i fold = _mm_set1_epi8(0x20);
  const __m128i a = _mm_set1_epi8('a');
  const __m128i z = _mm_set1_epi8(25);
  const __m128i zero = _mm_set1_epi8('0');
  const __m128i nine = _mm_set1_epi8(9);
  const __m128i dash = _mm_set1_epi8('-');
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i letter = _mm_sub_epi8(_mm_or_si128(v, fold), a);
    __m128i digit = _mm_sub_epi8(v, zero);
    __m128i ok = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(letter, z), letter),
                     _mm_cmpeq_epi8(_mm_min_epu8(digit, nine), digit)),
        _mm_cmpeq_epi8(v, dash));
    auto other = ~static_cast<unsigned>(_mm_movemask_epi8(ok)) & 0xffffu;
    if (other != 0) {
      p += std::countr_zero(other);
      if (*p == ':') return p;
      break;
    }
    p += 16;
  }
  return find_name_end_bytewise(p, end);
}
#endif

inline const char* find_name_end(const char* p, const char* end) noexcept {
#if defined(IMPROTO_SCAN_BYTEWISE) || defined(IMPROTO_SCAN_SWAR) || !defined(IMPROTO_HAVE_SSE2)
  return find_name_end_bytewise(p, end);
#else
  return find_name_end_sse2(p, end);
#endif
}

// Which kernels find_ctl() and find_name_end() are, for tests and logs.
inline const char* scan_kernel() noexcept {
#if defined(IMPROTO_SCAN_BYTEWISE)
  return "bytewise";
#elif defined(IMPROTO_SCAN_SWAR) || !defined(IMPROTO_HAVE_SSE2)
  return "swar";
#else
  return "sse2";
#endif
}

}  // namespace improto::wire::detail

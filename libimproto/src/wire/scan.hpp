#pragma once

// Header-value scanning for frame_reader (not installed). A value runs up to
// its line end; every byte on the way must be visible, a blank or obs-text,
// so one search finds both the end and any bad byte: the first control
// character (< 0x20 or 0x7f; tab included, the caller steps over it).
//
// Three kernels, the same answer (tests/wire/scan_test.cpp compares them):
//  * sse2     - 16 bytes a step; SSE2 is part of every x86-64;
//  * swar     - 8 bytes a step in a plain 64-bit word (any little-endian CPU);
//  * bytewise - one byte a step.
// find_ctl() is the one the library uses: sse2 where the compiler targets
// it, else swar (bytewise on big-endian). The CMake cache variable
// IMPROTO_SCAN (auto, swar, bytewise) forces a portable one, so that the
// fallbacks are built and tested on x86 too.
//
// No kernel reads outside [p, end): wide loads only while a whole word fits.

#include <bit>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define IMPROTO_HAVE_SSE2 1
#endif

namespace improto::wire::detail {

constexpr bool is_ctl_byte(unsigned char u) noexcept { return u < 0x20 || u == 0x7f; }

inline const char* find_ctl_bytewise(const char* p, const char* end) noexcept {
  while (p < end && !is_ctl_byte(static_cast<unsigned char>(*p))) ++p;
  return p;
}

inline const char* find_ctl_swar(const char* p, const char* end) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    constexpr std::uint64_t ones = 0x0101010101010101ull;
    constexpr std::uint64_t highs = 0x8080808080808080ull;
    while (end - p >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      // A byte below 0x20: w - 0x20 borrows into its high bit while the
      // byte's own high bit is clear. A 0x7f: the same test on w ^ 0x7f
      // for zero. Borrows only run upwards, so the lowest flagged byte is
      // always a true one.
      std::uint64_t low = (w - ones * 0x20) & ~w;
      std::uint64_t x = w ^ (ones * 0x7f);
      std::uint64_t del = (x - ones) & ~x;
      std::uint64_t hit = (low | del) & highs;
      if (hit != 0) return p + std::countr_zero(hit) / 8;
      p += 8;
    }
  }
  return find_ctl_bytewise(p, end);
}

#ifdef IMPROTO_HAVE_SSE2
inline const char* find_ctl_sse2(const char* p, const char* end) noexcept {
  const __m128i below = _mm_set1_epi8(0x1f);
  const __m128i del = _mm_set1_epi8(0x7f);
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Unsigned v <= 0x1f is min(v, 0x1f) == v.
    __m128i ctl = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, below), v), _mm_cmpeq_epi8(v, del));
    auto mask = static_cast<unsigned>(_mm_movemask_epi8(ctl));
    if (mask != 0) return p + std::countr_zero(mask);
    p += 16;
  }
  return find_ctl_swar(p, end);
}
#endif

inline const char* find_ctl(const char* p, const char* end) noexcept {
#if defined(IMPROTO_SCAN_BYTEWISE)
  return find_ctl_bytewise(p, end);
#elif defined(IMPROTO_SCAN_SWAR) || !defined(IMPROTO_HAVE_SSE2)
  return find_ctl_swar(p, end);
#else
  return find_ctl_sse2(p, end);
#endif
}

// Which kernel find_ctl() is, for tests and the benchmark's log.
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

#include "improto/net/udp_limiter.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <random>

namespace improto::net {

namespace {

std::uint64_t mix(std::uint64_t x) noexcept {  // murmur3's finaliser
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

std::uint64_t load64(const unsigned char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

source_rate_limiter::source_rate_limiter(double rate_per_second, double burst,
                                         std::size_t sources)
    : per_ns_(rate_per_second / 1e9), burst_(std::max(1.0, burst)) {
  if (rate_per_second <= 0) return;
  std::size_t n = std::bit_ceil(std::max(sources, ways));
  mask_ = n - 1;
  table_ = std::make_unique<entry[]>(n);
  // A random seed per table: a sender cannot aim its addresses at the set of
  // a victim's entry to evict it.
  std::random_device random;
  for (auto& s : seed_) s = (std::uint64_t{random()} << 32) | random();
}

double source_rate_limiter::refilled(const entry& e, std::int64_t now) const noexcept {
  auto elapsed = static_cast<double>(std::max<std::int64_t>(0, now - e.last));
  return std::min(burst_, e.tokens + elapsed * per_ns_);
}

bool source_rate_limiter::admit(const sockaddr* from, socklen_t length,
                                clock::time_point when) noexcept {
  if (!table_) return true;
  // The address as IPv6 bytes; IPv4 as ::ffff:a.b.c.d, the form a dual-stack
  // socket reports the same host in.
  unsigned char key[16] = {};
  if (from->sa_family == AF_INET && length >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    key[10] = key[11] = 0xff;
    std::memcpy(key + 12, &reinterpret_cast<const sockaddr_in*>(from)->sin_addr, 4);
  } else if (from->sa_family == AF_INET6 &&
             length >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    std::memcpy(key, &reinterpret_cast<const sockaddr_in6*>(from)->sin6_addr, 16);
  }
  const std::uint64_t hi = load64(key), lo = load64(key + 8);
  // Anything else (no address) shares the all-zero key: still limited.
  std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         when.time_since_epoch()).count();
  if (now == 0) now = 1;  // 0 marks a free entry

  std::size_t set = static_cast<std::size_t>(mix(hi ^ seed_[0]) ^ mix(lo ^ seed_[1])) & mask_ &
                    ~(ways - 1);
  entry* first = table_.get() + set;
  entry* victim = nullptr;
  double victim_tokens = -1;
  for (std::size_t i = 0; i < ways; ++i) {
    entry& e = first[i];
    if (e.last == 0) {
      if (!victim || victim->last != 0) victim = &e;
      continue;
    }
    if (e.hi == hi && e.lo == lo) {
      double tokens = refilled(e, now);
      e.last = now;
      if (tokens < 1.0) {
        e.tokens = tokens;
        return false;
      }
      e.tokens = tokens - 1.0;
      return true;
    }
    if (victim && victim->last == 0) continue;  // a free entry beats any eviction
    double t = refilled(e, now);
    if (t > victim_tokens) {
      victim = &e;
      victim_tokens = t;
    }
  }
  // A newcomer: a free entry, or the one that has refilled most.
  victim->hi = hi;
  victim->lo = lo;
  victim->last = now;
  victim->tokens = burst_ - 1.0;
  return true;
}

}  // namespace improto::net

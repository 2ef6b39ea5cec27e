#pragma once

// Per-source token buckets for datagram servers, keyed on the source
// address's bytes (the port is ignored: one host, one budget). A fixed table
// allocated once: admit() never allocates, hashes no string and reads no
// clock (the caller passes the time, once per batch). It bounds what a
// spoofed source can make us reflect, not what a flood of distinct sources
// costs: when a set of the table is full, the newcomer takes the place of the
// entry that has refilled most, which loses the least (a full bucket is what
// a fresh one would get anyway).

#include <cstddef>
#include <cstdint>
#include <memory>

#include <sys/socket.h>

#include <asio/ip/udp.hpp>

#include "improto/net/common.hpp"

namespace improto::net {

class source_rate_limiter {
 public:
  static constexpr std::size_t ways = 4;  // entries per set: two cache lines

  // `rate_per_second` <= 0: unlimited (no table at all). `burst` below 1 is
  // raised to 1, so that a limited source still gets through now and then.
  // `sources` (rounded up to a power of two, at least `ways`) entries.
  source_rate_limiter(double rate_per_second, double burst, std::size_t sources = 8192);

  bool enabled() const noexcept { return table_ != nullptr; }
  // Takes one token from the bucket of `from`'s address at `now`.
  bool admit(const sockaddr* from, socklen_t length, clock::time_point now) noexcept;
  bool admit(const asio::ip::udp::endpoint& from, clock::time_point now) noexcept {
    return admit(from.data(), static_cast<socklen_t>(from.size()), now);
  }
  std::size_t capacity() const noexcept { return table_ ? mask_ + 1 : 0; }

 private:
  struct entry {
    std::uint64_t hi = 0, lo = 0;  // the address as IPv6 (IPv4 as ::ffff:a.b.c.d)
    std::int64_t last = 0;         // ns on the steady clock; 0: free
    double tokens = 0;
  };

  double refilled(const entry& e, std::int64_t now) const noexcept;

  double per_ns_;
  double burst_;
  std::uint64_t seed_[2]{};
  std::size_t mask_ = 0;  // entries - 1
  std::unique_ptr<entry[]> table_;
};

}  // namespace improto::net

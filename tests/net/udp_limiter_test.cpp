#include <doctest/doctest.h>

#include <netinet/in.h>

#include <cstdlib>
#include <new>

#include "improto/net/udp_limiter.hpp"

using namespace improto;
using namespace std::chrono_literals;

// Counts this thread's allocations, to show that admit() makes none. The
// replacement serves the whole test binary; it only forwards to malloc.
namespace {
thread_local std::size_t allocations = 0;
}  // namespace

void* operator new(std::size_t size) {
  ++allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

asio::ip::udp::endpoint at(const char* address, std::uint16_t port = 40000) {
  return {asio::ip::make_address(address), port};
}

const net::clock::time_point t0 = net::clock::time_point{} + 1000s;

}  // namespace

TEST_CASE("rate limiter: a burst, then the rate") {
  net::source_rate_limiter limit(10, 3);  // 10/s, bursts of 3
  auto a = at("127.0.0.1");
  CHECK(limit.admit(a, t0));
  CHECK(limit.admit(a, t0));
  CHECK(limit.admit(a, t0));
  CHECK_FALSE(limit.admit(a, t0));
  CHECK_FALSE(limit.admit(a, t0 + 50ms));  // half a token refilled
  CHECK(limit.admit(a, t0 + 100ms));
  CHECK_FALSE(limit.admit(a, t0 + 100ms));
  // A long pause refills the burst, no more.
  auto later = t0 + 1h;
  for (int i = 0; i < 3; ++i) CHECK(limit.admit(a, later));
  CHECK_FALSE(limit.admit(a, later));
  // A refused datagram costs no token: the next one comes after 100 ms.
  CHECK_FALSE(limit.admit(a, later + 60ms));
  CHECK(limit.admit(a, later + 100ms));
}

TEST_CASE("rate limiter: one bucket per address, whatever the port") {
  net::source_rate_limiter limit(1, 1);
  CHECK(limit.admit(at("127.0.0.1", 1000), t0));
  CHECK_FALSE(limit.admit(at("127.0.0.1", 2000), t0));  // same host, other port
  CHECK(limit.admit(at("127.0.0.2"), t0));
  CHECK(limit.admit(at("::1"), t0));
  CHECK_FALSE(limit.admit(at("::1", 5), t0));
  // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d: the same host.
  CHECK_FALSE(limit.admit(at("::ffff:127.0.0.1"), t0));
  CHECK(limit.admit(at("::ffff:127.0.0.3"), t0));
  CHECK_FALSE(limit.admit(at("127.0.0.3"), t0));
  CHECK(limit.admit(at("fe80::1"), t0));
  // A short or foreign address shares one bucket instead of escaping the limit.
  sockaddr unknown{};
  unknown.sa_family = AF_UNSPEC;
  CHECK(limit.admit(&unknown, sizeof unknown, t0));
  CHECK_FALSE(limit.admit(&unknown, sizeof unknown, t0));
  CHECK_FALSE(limit.admit(at("127.0.0.4").data(), 2, t0));
}

TEST_CASE("rate limiter: no rate, no limit and no table") {
  net::source_rate_limiter limit(0, 0);
  CHECK_FALSE(limit.enabled());
  CHECK(limit.capacity() == 0);
  for (int i = 0; i < 1000; ++i) CHECK(limit.admit(at("127.0.0.1"), t0));
}

TEST_CASE("rate limiter: a burst below one is raised to one") {
  net::source_rate_limiter limit(1, 0);
  CHECK(limit.admit(at("127.0.0.1"), t0));
  CHECK_FALSE(limit.admit(at("127.0.0.1"), t0));
  CHECK(limit.admit(at("127.0.0.1"), t0 + 1s));
}

TEST_CASE("rate limiter: a full table evicts the entry that has refilled most") {
  // Four entries: a single set, so every address competes for it.
  net::source_rate_limiter limit(1, 2, 1);
  CHECK(limit.capacity() == net::source_rate_limiter::ways);
  // Three senders spend their whole burst; a fourth sends once.
  for (const char* a : {"10.0.0.1", "10.0.0.2", "10.0.0.3"}) {
    CHECK(limit.admit(at(a), t0));
    CHECK(limit.admit(at(a), t0));
    CHECK_FALSE(limit.admit(at(a), t0));
  }
  CHECK(limit.admit(at("10.0.0.4"), t0));
  // A newcomer takes 10.0.0.4's place (one token left, the most): the three
  // spent senders stay limited.
  CHECK(limit.admit(at("10.0.0.5"), t0));
  for (const char* a : {"10.0.0.1", "10.0.0.2", "10.0.0.3"}) CHECK_FALSE(limit.admit(at(a), t0));
  // 10.0.0.4 lost its entry and gets a fresh burst, taking 10.0.0.5's.
  CHECK(limit.admit(at("10.0.0.4"), t0));
  CHECK(limit.admit(at("10.0.0.4"), t0));
  CHECK_FALSE(limit.admit(at("10.0.0.4"), t0));
  // Once the spent ones have refilled, they are the ones to go.
  CHECK(limit.admit(at("10.0.0.6"), t0 + 10s));
  CHECK(limit.admit(at("10.0.0.4"), t0 + 10s));
}

TEST_CASE("rate limiter: many sources, no allocation per datagram") {
  net::source_rate_limiter limit(100, 10, 1024);
  std::vector<asio::ip::udp::endpoint> sources;
  for (unsigned i = 0; i < 5000; ++i) {
    sources.push_back(at(("10." + std::to_string(i >> 8) + "." + std::to_string(i & 255) + ".1")
                             .c_str()));
  }
  std::size_t admitted = 0;
  auto before = allocations;
  for (int round = 0; round < 20; ++round) {
    for (const auto& s : sources) admitted += limit.admit(s, t0 + std::chrono::milliseconds(round));
  }
  CHECK(allocations == before);
  // Every source's first datagram passes; sources that keep their entry
  // spend their burst (10) in 20 rounds 1 ms apart and are then refused.
  CHECK(admitted >= sources.size());
  CHECK(admitted < 20 * sources.size());
}

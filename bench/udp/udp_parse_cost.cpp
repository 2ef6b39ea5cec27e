// udp_parse_cost - runs one protocol 2 request parse N times, for counting
// instructions per parse under callgrind (bench/udp/instructions.py runs it
// with two N and divides the difference).
//
//   udp_parse_cost view|general|words|copy N DATAGRAM
//
//   view   buddy::parse_udp_request_view (in place: the common shapes with
//          word loads, anything else by the general reading)
//   general buddy::detail::parse_udp_request_general (the one-pass reading
//          behind them, which was parse_udp_request_view before)
//   words  buddy::detail::parse_udp_request_words (the word-by-word reading,
//          which was parse_udp_request before the one-pass view)
//   copy   buddy::parse_udp_request (the view plus owned strings)

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "improto/buddy/decoder.hpp"

namespace buddy = improto::buddy;

namespace {

// Keeps the compiler from hoisting the parse out of the loop or dropping it.
template <class T>
void keep(T const& value) {
  asm volatile("" : : "r"(&value) : "memory");
}

}  // namespace

// Parses `datagram` n times; returns how many were valid.
template <class Parse>
std::size_t run(long n, const std::string& datagram, Parse parse) {
  std::size_t ok = 0;
  for (long i = 0; i < n; ++i) {
    const char* p = datagram.data();
    asm volatile("" : "+r"(p));  // a fresh datagram each time, as far as the compiler knows
    ok += parse(std::string_view(p, datagram.size()));
  }
  return ok;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: udp_parse_cost view|general|words|copy N DATAGRAM\n");
    return 2;
  }
  const std::string mode = argv[1];
  const long n = std::atol(argv[2]);
  const std::string datagram = argv[3];
  std::size_t ok = 0;
  if (mode == "view") {
    ok = run(n, datagram, [](std::string_view d) {
      auto v = buddy::parse_udp_request_view(d);
      keep(v);
      return v.valid;
    });
  } else if (mode == "general") {
    ok = run(n, datagram, [](std::string_view d) {
      auto v = buddy::detail::parse_udp_request_general(d);
      keep(v);
      return v.valid;
    });
  } else if (mode == "words") {
    ok = run(n, datagram, [](std::string_view d) {
      auto r = buddy::detail::parse_udp_request_words(d);
      keep(r);
      return r.has_value();
    });
  } else if (mode == "copy") {
    ok = run(n, datagram, [](std::string_view d) {
      auto r = buddy::parse_udp_request(d);
      keep(r);
      return r.has_value();
    });
  } else {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  std::printf("%zu of %ld valid\n", ok, n);
  return 0;
}

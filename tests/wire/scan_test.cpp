// frame_reader's scanning kernels (libimproto/src/wire/scan.hpp, not
// installed): every kernel this compiler can build gives the bytewise
// answer, whatever the build's IMPROTO_SCAN picked for the library.

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../../libimproto/src/wire/scan.hpp"

namespace {

using namespace improto::wire::detail;

// Exactly `text.size()` bytes on the heap, so that an over-read is a
// sanitizer error, not a silent look at the next byte.
struct exact {
  explicit exact(const std::string& text) : bytes(text.begin(), text.end()) {}
  const char* begin() const { return bytes.data(); }
  const char* end() const { return bytes.data() + bytes.size(); }
  std::vector<char> bytes;
};

// From every start (all_starts) or from the first two.
template <unsigned char Limit>
void same_ctl(const std::string& text, bool all_starts = true) {
  exact e(text);
  for (std::size_t from = 0; from <= (all_starts ? text.size() : 1); ++from) {
    const char* want = find_ctl_bytewise<Limit>(e.begin() + from, e.end());
    CHECK(find_ctl_swar<Limit>(e.begin() + from, e.end()) == want);
#ifdef IMPROTO_HAVE_SSE2
    CHECK(find_ctl_sse2<Limit>(e.begin() + from, e.end()) == want);
#endif
    CHECK(find_ctl<Limit>(e.begin() + from, e.end()) == want);
  }
}

void same_name_end(const std::string& text, bool all_starts = true) {
  exact e(text);
  for (std::size_t from = 0; from <= (all_starts ? text.size() : 1); ++from) {
    const char* want = find_name_end_bytewise(e.begin() + from, e.end());
#ifdef IMPROTO_HAVE_SSE2
    CHECK(find_name_end_sse2(e.begin() + from, e.end()) == want);
#endif
    CHECK(find_name_end(e.begin() + from, e.end()) == want);
  }
}

}  // namespace

TEST_CASE("scan kernels: one byte of every value at every position") {
  // Around the 8- and 16-byte steps and their tails.
  for (std::size_t len : {1u, 7u, 8u, 9u, 15u, 16u, 17u, 31u, 33u}) {
    for (std::size_t at = 0; at < len; ++at) {
      for (int b = 0; b < 256; ++b) {
        std::string value(len, 'v');
        value[at] = static_cast<char>(b);
        same_ctl<0x20>(value, false);
        same_ctl<0x21>(value, false);
        std::string name(len, 'N');
        name[at] = static_cast<char>(b);
        same_name_end(name, false);
      }
    }
  }
}

TEST_CASE("scan kernels: pseudo-random header bytes") {
  // Letters, digits and '-' mostly, then everything a head may hold.
  const std::string common =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789--::  ";
  std::uint64_t state = 0x9e3779b97f4a7c15ull;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (int round = 0; round < 3000; ++round) {
    std::string text(next() % 70, '\0');
    for (char& c : text) {
      auto r = next();
      c = r % 8 != 0 ? common[(r >> 8) % common.size()] : static_cast<char>((r >> 8) & 0xff);
    }
    same_ctl<0x20>(text);
    same_ctl<0x21>(text);
    same_name_end(text);
  }
}

TEST_CASE("scan kernels: what they stop at") {
  std::string value = "text/html;q=0.9\tmore\xc3\xa9\r\n";
  exact e(value);
  const char* tab = e.begin() + value.find('\t');
  CHECK(find_ctl(e.begin(), e.end()) == tab);  // a tab stops it: the caller steps over
  CHECK(find_ctl(tab + 1, e.end()) == e.begin() + value.find('\r'));
  std::string target = "/a/b?c=d\x80 HTTP/1.1";
  exact t(target);
  CHECK(find_ctl<0x21>(t.begin(), t.end()) == t.begin() + target.find(' '));
  std::string name = "X-Forwarded_For.x: v";
  exact n(name);
  CHECK(find_name_end(n.begin(), n.end()) == n.begin() + name.find(':'));
  std::string bad = "Content-Type@: v";
  exact b(bad);
  CHECK(find_name_end(b.begin(), b.end()) == b.begin() + bad.find('@'));
  MESSAGE("library kernel in this translation unit: " << scan_kernel());
}

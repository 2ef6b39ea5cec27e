#pragma once

// How the stream fuzzers cut one input into the chunks a decoder is fed.
// A decoder must give the same messages and errors however the bytes of a
// stream arrive; the targets compare the input fed whole, one byte at a time
// and cut at pseudo-random points. The cut points come from a hash of the
// input (and a salt), so an input replays exactly: libFuzzer's crash files
// reproduce without any seed of their own.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace improto::fuzz {

// One chunk: the whole input (an empty input still gives one empty chunk,
// so that a decoder is called at least once).
inline std::vector<std::string_view> whole(std::string_view input) { return {input}; }

inline std::vector<std::string_view> bytewise(std::string_view input) {
  std::vector<std::string_view> out;
  out.reserve(input.size());
  for (std::size_t i = 0; i < input.size(); ++i) out.push_back(input.substr(i, 1));
  return out;
}

// Chunks of mixed sizes: mostly short ones (cuts land inside line ends,
// names and numbers), some up to half the input, and now and then an empty
// one (a decoder must answer "need more" to it without losing state).
inline std::vector<std::string_view> random_cuts(std::string_view input, std::uint64_t salt) {
  std::uint64_t h = 0xcbf29ce484222325ULL ^ salt;  // FNV-1a
  for (char c : input) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  auto next = [&h] {  // splitmix64
    std::uint64_t z = (h += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  std::vector<std::string_view> out;
  std::size_t at = 0;
  bool last_empty = false;
  while (at < input.size()) {
    std::uint64_t r = next();
    std::size_t left = input.size() - at;
    std::size_t len;
    switch (r & 7) {
      case 0:
        len = last_empty ? 1 : 0;
        break;
      case 1:
      case 2:
        len = 1 + static_cast<std::size_t>((r >> 8) % (left / 2 + 1));
        break;
      default:
        len = 1 + static_cast<std::size_t>((r >> 8) % 9);
        break;
    }
    if (len > left) len = left;
    out.push_back(input.substr(at, len));
    at += len;
    last_empty = len == 0;
  }
  if (out.empty()) out.push_back(input);
  return out;
}

}  // namespace improto::fuzz

#pragma once

// What bench_parser's translation units share: the parser interface and what
// a server built on llhttp, http-parser or picohttpparser collects per message. llhttp.h and
// http_parser.h cannot meet in one translation unit (their error enums
// clash), so each anchor lives in a file of its own.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cli.hpp"  // bench::die

namespace bench {

constexpr std::size_t read_chunk = 16 * 1024;  // net::stream_limits::read_chunk

extern volatile std::size_t g_sink;  // keeps every parser's results alive

// A parser consumes a whole stream (in read_chunk pieces) and returns the
// number of messages it completed.
struct parser {
  virtual ~parser() = default;
  virtual std::size_t run(std::string_view stream) = 0;
};

template <class F>
void in_chunks(std::string_view stream, F f) {
  while (!stream.empty()) {
    std::string_view piece = stream.substr(0, read_chunk);
    stream.remove_prefix(piece.size());
    f(piece);
  }
}

// Spans into the input, extended when a callback continues a field (the
// pieces of one stream are contiguous in memory here).
struct span {
  const char* p = nullptr;
  std::size_t n = 0;
  void add(const char* at, std::size_t len) {
    if (p == nullptr) {
      p = at;
      n = len;
    } else if (p + n == at) {
      n += len;
    } else {
      die("non-contiguous span");
    }
  }
};

// What a server built on llhttp or http-parser collects per message.
struct collected {
  static constexpr std::size_t max_headers = 64;  // our decoder's default limit too
  span url;
  span names[max_headers];
  span values[max_headers];
  std::size_t headers = 0;
  int last = 0;  // 1 after a name piece, 2 after a value piece
  span body;
  std::string body_copy;
  bool copy_body = false;
  std::uint64_t content_length = 0;
  unsigned method = 0;
  bool keep = false;
  std::size_t messages = 0;

  void begin() {
    url = {};
    headers = 0;
    last = 0;
    body = {};
    body_copy.clear();
  }
  int field(const char* at, std::size_t len) {
    if (last != 1) {
      if (headers == max_headers) return -1;
      names[headers] = {};
      values[headers] = {};
      ++headers;
    }
    names[headers - 1].add(at, len);
    last = 1;
    return 0;
  }
  int value(const char* at, std::size_t len) {
    values[headers - 1].add(at, len);
    last = 2;
    return 0;
  }
  int on_body(const char* at, std::size_t len) {
    if (copy_body) {
      body_copy.append(at, len);
    } else {
      body.add(at, len);
    }
    return 0;
  }
  void complete() {
    ++messages;
    std::size_t names_len = 0;
    for (std::size_t i = 0; i < headers; ++i) names_len += names[i].n + values[i].n;
    g_sink = g_sink + method + url.n + headers + names_len + body.n + body_copy.size() +
             content_length + (keep ? 1 : 0);
  }
};

// copy_body: append each body into a reused buffer instead of locating it.
std::unique_ptr<parser> make_llhttp(bool copy_body);
std::unique_ptr<parser> make_http_parser();
std::unique_ptr<parser> make_picohttpparser();

}  // namespace bench

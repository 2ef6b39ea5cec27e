// bench_parser - our stream decoders against the HTTP parsers a server would
// otherwise be built on: llhttp, http-parser and picohttpparser.
//
//   bench_parser [--rounds N] [--first-round R] [--ms MS] [--only CASE,...]
//                                                        timing rounds R..R+N-1, JSON lines
//   bench_parser --callgrind N1 N2 [--only CASE,...]     instruction counts (run
//                                                        under valgrind --tool=callgrind)
//   bench_parser --list                                 the cases, with their sizes
//
// Cases (each parser gets the same bytes, in 16 KiB pieces as a server's read
// loop hands them over):
//   seed-post       the seed client's ~120-byte `POST /userlist.txt` REGISTER
//   browser-get     a 520-byte browser-like GET
//   pipelined-1000  1000 pipelined requests (seed POSTs, curl and browser GETs)
//   relay-send-64 / relay-send-1k / relay-send-64k
//                   streams of relay SEND messages (ours: relay::decoder);
//                   the anchor, llhttp, parses HTTP POSTs with bodies of the
//                   same size and copies each body into a reused buffer, as a
//                   relay that holds the message until it is delivered must.
//
// Fair work, the same on every side: the method, the target, every header
// (name and value located), Content-Length, keep-alive, and the body located.
// Ours does it through its public API (request_decoder::next_view(in): the
// request as views into the input, as the registry server takes it). The
// anchors use their normal callbacks (picohttpparser: its one call per head,
// then a walk over the headers for Content-Length and Connection) and record
// spans into the input; they copy nothing.
//
// Timing mode: a round times every parser on the same number of iterations
// (calibrated so that ours runs --ms), alternating which goes first; each
// line is {"case","parser","round","requests_per_s","mb_per_s"}.
// Callgrind mode: for every case and parser, N1 and then N2 iterations, each
// between CALLGRIND_ZERO_STATS and CALLGRIND_DUMP_STATS_AT("case/parser/N"),
// so (I(N2) - I(N1)) / ((N2 - N1) * requests per iteration) is the cost of one
// request with setup and the harness loop's fixed costs subtracted.

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "anchors.hpp"
#include "improto/registry/decoder.hpp"
#include "improto/relay/decoder.hpp"

#ifdef BENCH_HAVE_CALLGRIND
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_ZERO_STATS
#define CALLGRIND_DUMP_STATS_AT(x) ((void)(x))
#endif

namespace bench {

volatile std::size_t g_sink = 0;

}  // namespace bench

namespace {

using bench::die;
using bench::g_sink;
using bench::in_chunks;
using bench::parser;

// ------------------------------------------------------------------- inputs

std::string seed_post(std::string_view body) {
  return "POST /userlist.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/*\r\n"
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

std::string browser_get() {
  std::string head =
      "GET /userlist.txt HTTP/1.1\r\n"
      "Host: 127.0.0.1:8080\r\n"
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
      "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
      "Accept-Language: en-US,en;q=0.5\r\n"
      "Accept-Encoding: gzip, deflate, br\r\n"
      "Connection: keep-alive\r\n"
      "Upgrade-Insecure-Requests: 1\r\n"
      "Sec-Fetch-Dest: document\r\n"
      "Sec-Fetch-Mode: navigate\r\n"
      "Sec-Fetch-Site: none\r\n"
      "Sec-Fetch-User: ?1\r\n";
  const std::string cookie = "Cookie: session=";
  const std::size_t want = 520;
  std::size_t fixed = head.size() + cookie.size() + 4;  // cookie's CRLF + the blank line
  if (fixed >= want) die("browser request too long");
  std::string pad;
  for (std::size_t i = 0; pad.size() < want - fixed; ++i) pad += static_cast<char>('a' + i % 26);
  head += cookie + pad + "\r\n\r\n";
  return head;
}

std::string curl_get() {
  return "GET /userlist.txt HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\n"
         "Accept: */*\r\n\r\n";
}

struct http_case {
  std::string name;
  std::string bytes;
  std::size_t messages = 0;  // per iteration
};

std::vector<http_case> http_cases() {
  std::vector<http_case> out;
  out.push_back({"seed-post", seed_post("REGISTER alice@127.0.0.1:40000"), 1});
  out.push_back({"browser-get", browser_get(), 1});
  std::string stream;
  for (int i = 0; i < 1000; ++i) {
    std::string name = "user" + std::to_string(i);
    switch (i % 4) {
      case 0: stream += seed_post("REGISTER " + name + "@127.0.0.1:" + std::to_string(40000 + i)); break;
      case 1: stream += curl_get(); break;
      case 2: stream += seed_post("LOGOUT " + name + "@127.0.0.1:" + std::to_string(40000 + i)); break;
      default: stream += browser_get(); break;
    }
  }
  out.push_back({"pipelined-1000", std::move(stream), 1000});
  return out;
}

struct relay_case {
  std::string name;
  std::string ours;    // SEND messages
  std::string anchor;  // HTTP POSTs with bodies of the same sizes
  std::size_t messages = 0;
};

std::vector<relay_case> relay_cases() {
  std::vector<relay_case> out;
  struct spec { const char* name; std::size_t body; std::size_t count; };
  for (auto s : {spec{"relay-send-64", 64, 4096}, spec{"relay-send-1k", 1024, 512},
                 spec{"relay-send-64k", 64 * 1024, 8}}) {
    relay_case c{s.name, {}, {}, s.count};
    for (std::size_t i = 0; i < s.count; ++i) {
      std::string body(s.body, static_cast<char>('a' + i % 26));
      c.ours += "SEND bob\nContent-length: " + std::to_string(s.body) + "\n\n" + body;
      c.anchor += "POST /bob HTTP/1.1\r\nContent-Length: " + std::to_string(s.body) + "\r\n\r\n" + body;
    }
    out.push_back(std::move(c));
  }
  return out;
}

// ------------------------------------------------------------------ parsers

class ours_http final : public parser {
 public:
  std::size_t run(std::string_view stream) override {
    std::size_t n = 0;
    in_chunks(stream, [&](std::string_view piece) {
      while (!piece.empty()) {
        auto got = dec_.next_view(piece);
        if (!got) die("ours: " + got.error().message());
        if (*got) {
          ++n;
          const auto& req = **got;
          std::size_t fields = 0;
          for (const auto& h : req.headers) fields += h.name.size() + h.value.size();
          g_sink = g_sink + req.method.size() + req.target.size() + req.headers.size() + fields +
                   req.body.size() + (req.keep_alive() ? 1 : 0);
        }
      }
    });
    return n;
  }

 private:
  improto::registry::request_decoder dec_;
};

class ours_relay final : public parser {
 public:
  std::size_t run(std::string_view stream) override {
    std::size_t n = 0;
    in_chunks(stream, [&](std::string_view piece) {
      while (!piece.empty()) {
        auto got = dec_.next(piece);
        if (!got) die("ours relay: " + got.error().message());
        if (*got) {
          auto* s = std::get_if<improto::relay::send>(&**got);
          if (s == nullptr) die("ours relay: not a SEND");
          ++n;
          g_sink = g_sink + s->to.size() + s->body.size();
          dec_.recycle(std::move(**got));
        }
      }
    });
    return n;
  }

 private:
  improto::relay::decoder dec_{improto::relay::direction::to_server};
};

// --------------------------------------------------------------- the harness

struct contender {
  std::string name;
  std::unique_ptr<parser> p;
  const std::string* bytes;
};

struct bench_case {
  std::string name;
  std::size_t messages;
  std::vector<contender> contenders;  // ours first
};

std::vector<bench_case> all_cases(std::vector<http_case>& hc, std::vector<relay_case>& rc) {
  std::vector<bench_case> out;
  for (auto& c : hc) {
    bench_case b{c.name, c.messages, {}};
    b.contenders.push_back({"ours", std::make_unique<ours_http>(), &c.bytes});
    b.contenders.push_back({"llhttp", bench::make_llhttp(false), &c.bytes});
    b.contenders.push_back({"http-parser", bench::make_http_parser(), &c.bytes});
    b.contenders.push_back({"picohttpparser", bench::make_picohttpparser(), &c.bytes});
    out.push_back(std::move(b));
  }
  for (auto& c : rc) {
    bench_case b{c.name, c.messages, {}};
    b.contenders.push_back({"ours", std::make_unique<ours_relay>(), &c.ours});
    b.contenders.push_back({"llhttp", bench::make_llhttp(true), &c.anchor});
    out.push_back(std::move(b));
  }
  return out;
}

// Iterations of one contender; the loop is out of line so that profiles show it.
[[gnu::noinline]] std::size_t iterate(contender& c, std::size_t iterations) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < iterations; ++i) n += c.p->run(*c.bytes);
  return n;
}

double seconds(contender& c, std::size_t iterations, std::size_t expect) {
  auto t0 = std::chrono::steady_clock::now();
  std::size_t n = iterate(c, iterations);
  auto t1 = std::chrono::steady_clock::now();
  if (n != expect) {
    die(c.name + " parsed " + std::to_string(n) + " messages, expected " + std::to_string(expect));
  }
  return std::chrono::duration<double>(t1 - t0).count();
}

int timing(std::vector<bench_case>& cases, int first_round, int rounds, double ms) {
  for (auto& b : cases) {
    // Warm up everyone, then size the rounds on ours.
    for (auto& c : b.contenders) seconds(c, 1, b.messages);
    std::size_t iterations = 1;
    for (;;) {
      double s = seconds(b.contenders[0], iterations, iterations * b.messages);
      if (s >= ms / 1000.0 / 4 || iterations > (1u << 30)) {
        iterations = std::max<std::size_t>(1, static_cast<std::size_t>(
                                                  static_cast<double>(iterations) * (ms / 1000.0) / s));
        break;
      }
      iterations *= 4;
    }
    for (int r = first_round; r < first_round + rounds; ++r) {
      std::size_t k = b.contenders.size();
      for (std::size_t j = 0; j < k; ++j) {
        auto& c = b.contenders[(j + static_cast<std::size_t>(r)) % k];
        double s = seconds(c, iterations, iterations * b.messages);
        double msgs = static_cast<double>(iterations * b.messages);
        double bytes = static_cast<double>(iterations * c.bytes->size());
        std::printf(
            "{\"case\":\"%s\",\"parser\":\"%s\",\"round\":%d,\"requests_per_s\":%.1f,"
            "\"mb_per_s\":%.2f,\"bytes_per_iteration\":%zu,\"messages_per_iteration\":%zu}\n",
            b.name.c_str(), c.name.c_str(), r, msgs / s, bytes / s / 1e6, c.bytes->size(),
            b.messages);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

int callgrind(std::vector<bench_case>& cases, std::size_t n1, std::size_t n2) {
  for (auto& b : cases) {
    // N1 and N2 are iterations of a 128-byte request; bigger inputs get
    // proportionally fewer (at least 1 and 2).
    std::size_t bytes = b.contenders[0].bytes->size();
    std::size_t a = std::max<std::size_t>(1, n1 * 128 / bytes);
    std::size_t z = std::max<std::size_t>(a + 1, n2 * 128 / bytes);
    for (auto& c : b.contenders) {
      seconds(c, 1, b.messages);  // warm: capacities grown, code paged in
      for (std::size_t n : {a, z}) {
        std::string label = b.name + "/" + c.name + "/" + std::to_string(n) + "/" +
                            std::to_string(b.messages);
        CALLGRIND_ZERO_STATS;
        iterate(c, n);
        CALLGRIND_DUMP_STATS_AT(label.c_str());
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 5;
  int first_round = 0;  // numbers the rounds of a run that adds to earlier ones
  double ms = 100;
  std::size_t n1 = 0, n2 = 0;
  bool list = false;
  std::string only;
  bench::program = "bench_parser";
  for (bench::args a(argc, argv); a.next();) {
    if (a.is("--rounds")) {
      rounds = static_cast<int>(a.integer());
    } else if (a.is("--first-round")) {
      first_round = static_cast<int>(a.integer());
    } else if (a.is("--ms")) {
      ms = a.number();
    } else if (a.is("--only")) {
      only = a.value();
    } else if (a.is("--callgrind")) {
      n1 = std::strtoull(a.value().c_str(), nullptr, 10);
      n2 = std::strtoull(a.value().c_str(), nullptr, 10);
      if (n2 <= n1) die("--callgrind N1 N2 needs N2 > N1");
    } else if (a.is("--list")) {
      list = true;
    } else {
      a.unknown();
    }
  }
  if (rounds < 1 || first_round < 0 || ms <= 0) die("bad --rounds, --first-round or --ms");

  auto hc = http_cases();
  auto rc = relay_cases();
  auto cases = all_cases(hc, rc);
  if (!only.empty()) {
    std::string list = "," + only + ",";
    std::erase_if(cases, [&](const bench_case& b) {
      return list.find("," + b.name + ",") == std::string::npos;
    });
    if (cases.empty()) die("no case " + only);
  }
  if (list) {
    for (auto& b : cases) {
      for (auto& c : b.contenders) {
        std::printf("%s %s bytes=%zu messages=%zu\n", b.name.c_str(), c.name.c_str(),
                    c.bytes->size(), b.messages);
      }
    }
    return 0;
  }
  int rc_code = n2 != 0 ? callgrind(cases, n1, n2) : timing(cases, first_round, rounds, ms);
  std::fprintf(stderr, "bench_parser: sink %zu\n", static_cast<std::size_t>(g_sink));
  return rc_code;
}

#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "guarded.hpp"
#include "improto/registry/codes.hpp"
#include "improto/registry/decoder.hpp"
#include "improto/wire/text.hpp"

// Counts every allocation of this test program, so that the steady-state
// "no allocation per request" promise of request_decoder::next() with recycle() is
// checked rather than assumed.
namespace {
std::atomic<long> allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

using namespace improto;

namespace {

// The exact bytes seed 004's listen-mode client sends to register.
const std::string seed_register =
    "POST /userlist.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/*\r\n"
    "Content-Length: 28\r\n\r\nREGISTER Ali@127.0.0.1:54321\r\n\r\n";
const std::string seed_get = "GET /userlist.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

// 579 bytes, like a browser's first request.
const std::string browser_get =
    "GET /userlist.txt?refresh=1 HTTP/1.1\r\n"
    "Host: registry.example.org:65432\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Referer: http://registry.example.org:65432/\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=6f1ed002ab5595859014ebf0951522d9; theme=dark\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Cache-Control: max-age=0\r\n\r\n";

// serialize()'s checks alone.
template <class Message>
result<void> validate(const Message& m) {
  std::string scratch;
  return registry::serialize(m, scratch);
}

struct decoded {
  std::vector<std::string> lines;  // describe() of each message, then "error <name>"
  bool operator==(const decoded&) const = default;
};

template <class Decoder>
void drain(Decoder& d, std::string_view in, decoded& out) {
  while (!d.failed()) {
    auto r = d.next(in);
    if (!r) {
      out.lines.push_back("error " + std::string(name(r.error().code())));
      return;
    }
    if (!*r) {
      CHECK(in.empty());  // need more only once everything is consumed
      return;
    }
    out.lines.push_back(registry::describe(**r));
  }
}

template <class Decoder>
void finish(Decoder& d, decoded& out) {
  while (!d.failed()) {
    auto r = d.finish();
    if (!r) {
      out.lines.push_back("error " + std::string(name(r.error().code())));
      return;
    }
    if (!*r) return;
    out.lines.push_back(registry::describe(**r));
  }
}

template <class Decoder>
decoded decode_whole(std::string_view input, bool eof) {
  Decoder d;
  decoded out;
  drain(d, input, out);
  if (eof) finish(d, out);
  return out;
}

registry::request decode_one(std::string_view input) {
  registry::request_decoder d;
  auto r = d.next(input);
  REQUIRE(r);
  REQUIRE(r->has_value());
  return **r;
}

errc request_error(std::string_view input, wire::limits lim = registry::default_request_limits) {
  registry::request_decoder d(lim);
  while (true) {
    auto r = d.next(input);
    if (!r) {
      CHECK(d.failed());
      // Sticky: more input, and the end of the stream, give the same error.
      std::string_view more = "GET / HTTP/1.1\r\n\r\n";
      auto again = d.next(more);
      REQUIRE_FALSE(again);
      CHECK(again.error() == r.error().code());
      CHECK(more.size() == 18);
      auto end = d.finish();
      REQUIRE_FALSE(end);
      CHECK(end.error() == r.error().code());
      CHECK_FALSE(r.error().detail().empty());
      return r.error().code();
    }
    REQUIRE(r->has_value());  // an error input must fail before it runs out
  }
}

}  // namespace

TEST_CASE("request_decoder reads the seed client's REGISTER") {
  registry::request_decoder d;
  std::string_view in = seed_register;
  auto r = d.next(in);
  REQUIRE(r);
  REQUIRE(r->has_value());
  const registry::request& req = **r;
  CHECK(req.method == "POST");
  CHECK(req.target == "/userlist.txt");
  CHECK(req.version == 1);
  CHECK(req.headers == registry::fields{{"Host", "127.0.0.1"},
                                    {"Content-Type", "text/*"},
                                    {"Content-Length", "28"}});
  CHECK(req.body == "REGISTER Ali@127.0.0.1:54321");
  CHECK(req.header("content-type") == "text/*");
  CHECK(req.header("HOST") == "127.0.0.1");
  CHECK_FALSE(req.header("Connection"));
  CHECK(req.keep_alive());
  CHECK(in == "\r\n\r\n");  // the seed's trailing blank lines wait for the next call
  auto rest = d.next(in);
  REQUIRE(rest);
  CHECK_FALSE(rest->has_value());
  CHECK(in.empty());
  auto end = d.finish();
  REQUIRE(end);
  CHECK_FALSE(end->has_value());
  CHECK_FALSE(d.failed());
}

TEST_CASE("request_decoder returns one request per call from pipelined input") {
  std::string input;
  for (int i = 0; i < 3; ++i) input += seed_get;
  input += seed_register;
  registry::request_decoder d;
  std::string_view in = input;
  std::vector<registry::request> got;
  while (true) {
    auto r = d.next(in);
    REQUIRE(r);
    if (!r->has_value()) break;
    got.push_back(**r);
  }
  REQUIRE(got.size() == 4);
  CHECK(got[0] == got[2]);
  CHECK(got[0].method == "GET");
  CHECK(got[0].body.empty());
  CHECK(got[3].body == "REGISTER Ali@127.0.0.1:54321");
}

TEST_CASE("request_decoder::next() with recycle() allocates nothing per request in steady state") {
  std::string post = "POST /userlist.txt HTTP/1.1\r\nHost: registry.example.org\r\n"
                     "User-Agent: improto-benchmark-client/1.0\r\n"
                     "Content-Length: 34\r\n\r\nREGISTER someone@192.168.100.200:1";
  std::string input;
  for (int i = 0; i < 1000; ++i) input += (i % 2 == 0) ? post : browser_get;
  registry::request_decoder d;
  registry::request req;
  std::string_view in = input;
  int count = 0;
  long before = 0;
  while (!in.empty()) {
    if (count == 10) before = allocations.load();
    d.recycle(std::move(req));
    auto r = d.next(in);
    REQUIRE(r);
    REQUIRE(*r);
    req = std::move(**r);
    if (count % 2 == 0) {
      CHECK(req.method == "POST");
      CHECK(req.body == "REGISTER someone@192.168.100.200:1");
      CHECK(req.headers.size() == 3);
    } else {
      CHECK(req.method == "GET");
      CHECK(req.body.empty());
      CHECK(req.headers.size() == 13);
      CHECK(req.header("cookie") == "session=6f1ed002ab5595859014ebf0951522d9; theme=dark");
    }
    ++count;
  }
  CHECK(count == 1000);
  // Alternating 3 and 13 headers shrinks and regrows the header vector:
  // the 4 regrown strings too long for SSO allocate, once per pair of
  // requests. Everything else is reused.
  long per_request = (allocations.load() - before) / (count - 10);
  CHECK(per_request <= 2);

  // Same shape every time: strictly no allocation.
  std::string same;
  for (int i = 0; i < 500; ++i) same += browser_get;
  std::string_view in2 = same;
  auto next_into = [&](std::string_view& from) {
    d.recycle(std::move(req));
    auto r = d.next(from).value();
    if (r) req = std::move(*r);
    return r.has_value();
  };
  for (int i = 0; i < 10; ++i) REQUIRE(next_into(in2));
  long start = allocations.load();
  int n = 0;
  while (!in2.empty()) {
    REQUIRE(next_into(in2));
    ++n;
  }
  CHECK(n == 490);
  CHECK(allocations.load() - start == 0);
}

TEST_CASE("request_decoder needs more on every proper prefix of a request") {
  for (const std::string& input : {seed_get, browser_get, seed_register.substr(0, seed_register.size() - 4)}) {
    for (std::size_t n = 0; n < input.size(); ++n) {
      CAPTURE(n);
      registry::request_decoder d;
      test::guarded_bytes bytes(std::string_view(input).substr(0, n));
      std::string_view in = bytes.view();
      auto r = d.next(in);
      REQUIRE(r);
      CHECK_FALSE(r->has_value());
      CHECK(in.empty());
      auto end = d.finish();
      if (n == 0) {
        CHECK((end && !end->has_value()));
      } else {
        REQUIRE_FALSE(end);
        CHECK(end.error() == errc::truncated);
      }
    }
  }
}

TEST_CASE("request_decoder errors are typed and sticky") {
  CHECK(request_error("GET /userlist.txt\r\n\r\n") == errc::malformed_start_line);
  CHECK(request_error("GET /a b HTTP/1.1\r\n\r\n") == errc::malformed_start_line);
  CHECK(request_error("G@T / HTTP/1.1\r\n\r\n") == errc::malformed_start_line);
  CHECK(request_error("GET \x7f HTTP/1.1\r\n\r\n") == errc::malformed_start_line);
  CHECK(request_error("GET / HTTP/1.1x\r\n\r\n") == errc::malformed_start_line);
  CHECK(request_error("GET / HTTP/2.0\r\n\r\n") == errc::unsupported_version);
  CHECK(request_error("GET / HTTP/1.9\r\n\r\n") == errc::unsupported_version);
  CHECK(request_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") ==
        errc::unsupported_encoding);
  CHECK(request_error("POST / HTTP/1.1\r\nContent-Length: 1 \x01\r\n\r\n") ==
        errc::malformed_header);
  CHECK(request_error("POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n") ==
        errc::bad_content_length);
  CHECK(request_error("POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n") ==
        errc::body_too_large);
  CHECK(request_error(std::string(8200, 'G')) == errc::line_too_long);
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 65; ++i) many += "X: y\r\n";
  CHECK(request_error(many) == errc::too_many_headers);

  // Two requests, then garbage: the good ones come out first.
  registry::request_decoder d;
  std::string_view in = "GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\nnonsense\r\n\r\n";
  CHECK(d.next(in).value().has_value());
  CHECK(d.next(in).value().has_value());
  CHECK_FALSE(d.failed());
  CHECK(d.next(in).error() == errc::malformed_start_line);
  CHECK(d.failed());
}

TEST_CASE("request_decoder honours custom limits") {
  wire::limits small{.max_line = 20, .max_headers = 2, .max_body = 4};
  CHECK(request_error("GET /0123456789012345 HTTP/1.1\r\n", small) == errc::line_too_long);
  CHECK(request_error("GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n", small) ==
        errc::too_many_headers);
  CHECK(request_error("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", small) ==
        errc::body_too_large);

  registry::request_decoder d(small);
  CHECK(d.limits().max_body == 4);
  std::string_view ok = "POST / HTTP/1.1\r\na: 1\r\nContent-Length: 4\r\n\r\nabcd";
  auto r = d.next(ok);
  REQUIRE(r);
  REQUIRE(r->has_value());
  CHECK((*r)->body == "abcd");
}

TEST_CASE("request_decoder end of stream") {
  registry::request_decoder d;
  std::string_view in = "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab";
  REQUIRE_FALSE(d.next(in).value().has_value());
  auto end = d.finish();
  REQUIRE_FALSE(end);
  CHECK(end.error() == errc::truncated);
  CHECK(d.failed());

  registry::request_decoder clean;
  std::string_view blank = "\r\n\n";
  REQUIRE_FALSE(clean.next(blank).value().has_value());
  CHECK_FALSE(clean.finish().value().has_value());
  CHECK_FALSE(clean.finish().value().has_value());
}

TEST_CASE("response_decoder reads the seed server's answers up to the close") {
  registry::response_decoder d;
  std::string_view in = "HTTP/1.1 200 OK\r\n\r\nAli@127.0.0.1:54321,\r\n\r\n";
  auto r = d.next(in);
  REQUIRE(r);
  CHECK_FALSE(r->has_value());  // the body runs until the server closes
  CHECK(in.empty());
  auto end = d.finish();
  REQUIRE(end);
  REQUIRE(end->has_value());
  CHECK((*end)->status == 200);
  CHECK((*end)->reason == "OK");
  CHECK((*end)->headers.empty());
  CHECK((*end)->body == "Ali@127.0.0.1:54321,\r\n\r\n");
  auto after = d.finish();
  REQUIRE(after);
  CHECK_FALSE(after->has_value());
}

TEST_CASE("response_decoder limits: 16 MiB by default, refused beyond") {
  CHECK(registry::response_decoder().limits().max_body == 16u * 1024 * 1024);

  // A big list read up to the close.
  std::string list;
  while (list.size() < 1'000'000) list += "user" + std::to_string(list.size()) + "@10.0.0.1:4000,";
  std::string input = "HTTP/1.1 200 OK\r\n\r\n" + list;
  registry::response_decoder d;
  std::string_view in = input;
  REQUIRE_FALSE(d.next(in).value().has_value());
  auto end = d.finish();
  REQUIRE(end);
  REQUIRE(end->has_value());
  CHECK((*end)->body == list);

  // Past the limit, whether declared or read up to the close.
  wire::limits small{.max_line = 64, .max_headers = 4, .max_body = 8};
  registry::response_decoder declared(small);
  std::string_view big = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n";
  CHECK(declared.next(big).error() == errc::body_too_large);
  registry::response_decoder until_close(small);
  std::string_view part1 = "HTTP/1.1 200 OK\r\n\r\n12345";
  std::string_view part2 = "6789";
  REQUIRE_FALSE(until_close.next(part1).value().has_value());
  CHECK(until_close.next(part2).error() == errc::body_too_large);
  CHECK(until_close.failed());
  CHECK(until_close.finish().error() == errc::body_too_large);
}

TEST_CASE("response_decoder::next() reuses a recycled response") {
  registry::response_decoder d;
  registry::response resp;
  std::string_view in = "HTTP/1.0 404 Not Found\r\nContent-Length: 2\r\n\r\nnoHTTP/1.1 304 Not Modified\r\n\r\n";
  auto next = [&] {
    d.recycle(std::move(resp));
    auto got = d.next(in).value();
    if (got) resp = std::move(*got);
    return got.has_value();
  };
  REQUIRE(next());
  CHECK(resp.version == 0);
  CHECK(resp.status == 404);
  CHECK(resp.body == "no");
  CHECK_FALSE(resp.keep_alive());
  REQUIRE(next());
  CHECK(resp.status == 304);
  CHECK(resp.body.empty());
  CHECK(resp.headers.empty());
  CHECK(resp.keep_alive());
  CHECK_FALSE(next());
}

TEST_CASE("keep_alive follows the version and the Connection tokens") {
  struct row {
    int version;
    registry::fields headers;
    bool expected;
  };
  const std::vector<row> rows = {
      {1, {}, true},
      {0, {}, false},
      {1, {{"Connection", "close"}}, false},
      {1, {{"connection", "CLOSE"}}, false},
      {1, {{"Connection", "Upgrade, Close"}}, false},
      {1, {{"Connection", "keep-alive"}, {"Connection", " close "}}, false},
      {1, {{"Connection", "closed"}}, true},
      {0, {{"Connection", "keep-alive"}}, true},
      {0, {{"CONNECTION", "Upgrade ,Keep-Alive"}}, true},
      {0, {{"Connection", "keep-alive, close"}}, false},
      {0, {{"Keep-Alive", "timeout=5"}}, false},
  };
  for (const auto& r : rows) {
    CAPTURE(r.version);
    CAPTURE(r.headers.empty() ? std::string() : r.headers.back().value);
    CHECK(registry::keep_alive(r.version, r.headers) == r.expected);
    registry::request req{"GET", "/", r.version, r.headers, ""};
    CHECK(req.keep_alive() == r.expected);
  }
  registry::fields h = {{"Connection", "Upgrade, keep-alive"}};
  CHECK(registry::has_connection_token(h, "upgrade"));
  CHECK(registry::has_connection_token(h, "KEEP-ALIVE"));
  CHECK_FALSE(registry::has_connection_token(h, "close"));
  CHECK(registry::find_header(h, "connection") == "Upgrade, keep-alive");
  CHECK_FALSE(registry::find_header(h, "connectio"));
}

TEST_CASE("serializers write exact bytes") {
  std::string out;
  registry::serialize(registry::make_request("POST", "/userlist.txt", "127.0.0.1",
                                     "REGISTER Ali@127.0.0.1:54321"),
                  out);
  // The seed client's bytes, without its stray trailing blank lines.
  CHECK(out == seed_register.substr(0, seed_register.size() - 4));

  out.clear();
  registry::serialize(registry::make_request("GET", "/userlist.txt", "127.0.0.1"), out);
  CHECK(out == seed_get);

  CHECK(registry::serialize(registry::http_message{registry::make_response(200, "a@1.2.3.4:5,b@1.2.3.4:6,", true)}) ==
        "HTTP/1.1 200 OK\r\nContent-Length: 24\r\n\r\na@1.2.3.4:5,b@1.2.3.4:6,");
  CHECK(registry::serialize(registry::http_message{registry::make_response(406, "", false)}) ==
        "HTTP/1.1 406 Not Acceptable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  CHECK(registry::serialize(registry::http_message{registry::make_response(204, "ignored", true)}) ==
        "HTTP/1.1 204 No Content\r\n\r\n");

  for (int status : {100, 200, 204, 304, 400, 404, 405, 406, 411, 413, 414, 431, 500, 501, 503, 505}) {
    for (bool keep : {true, false}) {
      CAPTURE(status);
      std::string direct;
      registry::write_response(direct, status, "body", keep);
      std::string built;
      registry::serialize(registry::make_response(status, "body", keep), built);
      CHECK(direct == built);
      registry::response_decoder d;
      std::string_view in = direct;
      auto r = d.next(in);
      REQUIRE(r);
      REQUIRE(r->has_value());
      CHECK(**r == registry::make_response(status, "body", keep));
      CHECK((*r)->keep_alive() == keep);
    }
  }

  // A seed-style response (no Content-Length) stays as it is: its body runs
  // to the close.
  registry::response seed{1, 200, "OK", {}, "a@1.2.3.4:5,\r\n\r\n"};
  out.clear();
  registry::serialize(seed, out);
  CHECK(out == "HTTP/1.1 200 OK\r\n\r\na@1.2.3.4:5,\r\n\r\n");
  registry::response no_reason{0, 503, "", {{"Content-Length", "0"}}, ""};
  CHECK(registry::serialize(registry::http_message{no_reason}) == "HTTP/1.0 503 \r\nContent-Length: 0\r\n\r\n");
}

TEST_CASE("serialize refuses a Content-Length that is not the body's, and writes nothing") {
  auto refused = [](const auto& m) {
    std::string out = "kept";
    auto r = registry::serialize(m, out);
    CHECK(out == "kept");
    REQUIRE_FALSE(r);
    return r.error().code();
  };
  CHECK(refused(registry::request{"POST", "/", 1, {{"Content-Length", "99"}, {"X", "y"}}, "abc"}) ==
        errc::bad_content_length);
  CHECK(refused(registry::request{"POST", "/", 0, {{"Host", "h"}}, "abc"}) ==
        errc::missing_content_length);
  CHECK(refused(registry::response{1, 200, "OK", {{"content-length", "2"}}, "1234567"}) ==
        errc::bad_content_length);
  CHECK(refused(registry::request{"GET", "/", 1, {{"X", std::string(9000, 'a')}}, ""}) ==
        errc::line_too_long);
  CHECK(refused(registry::request{"POST", "/", 1, {{"Content-Length", "70000"}},
                                  std::string(70000, 'a')}) == errc::body_too_large);

  registry::response resp{1, 200, "OK", {{"content-length", "007"}}, "1234567"};
  std::string out;
  REQUIRE(registry::serialize(resp, out));
  CHECK(out == "HTTP/1.1 200 OK\r\ncontent-length: 007\r\n\r\n1234567");
  // The unchecked path writes the fields as they are.
  out.clear();
  registry::serialize_unchecked(registry::request{"POST", "/", 0, {{"Host", "h"}}, "abc"}, out);
  CHECK(out == "POST / HTTP/1.0\r\nHost: h\r\n\r\nabc");
}

TEST_CASE("validate rejects what serialize cannot make decodable") {
  registry::request good = registry::make_request("GET", "/userlist.txt", "h");
  CHECK(validate(good));
  auto bad_request = [&](auto change) {
    registry::request r = good;
    change(r);
    auto v = validate(r);
    REQUIRE_FALSE(v);
    return v.error().code();
  };
  CHECK(bad_request([](auto& r) { r.method = "GE T"; }) == errc::malformed_start_line);
  CHECK(bad_request([](auto& r) { r.method = ""; }) == errc::malformed_start_line);
  CHECK(bad_request([](auto& r) { r.target = ""; }) == errc::malformed_start_line);
  CHECK(bad_request([](auto& r) { r.target = "/a b"; }) == errc::malformed_start_line);
  CHECK(bad_request([](auto& r) { r.version = 2; }) == errc::unsupported_version);
  CHECK(bad_request([](auto& r) { r.headers.push_back({"Bad Name", "v"}); }) ==
        errc::malformed_header);
  CHECK(bad_request([](auto& r) { r.headers.push_back({"X", "a\r\nInjected: 1"}); }) ==
        errc::malformed_header);
  CHECK(bad_request([](auto& r) { r.headers.push_back({"X", " padded"}); }) ==
        errc::malformed_header);
  CHECK(bad_request([](auto& r) { r.headers.push_back({"Transfer-Encoding", "chunked"}); }) ==
        errc::unsupported_encoding);

  registry::response ok = registry::make_response(200, "x", true);
  CHECK(validate(ok));
  auto bad_response = [&](auto change) {
    registry::response r = ok;
    change(r);
    auto v = validate(r);
    REQUIRE_FALSE(v);
    return v.error().code();
  };
  CHECK(bad_response([](auto& r) { r.status = 99; }) == errc::malformed_start_line);
  CHECK(bad_response([](auto& r) { r.status = 1000; }) == errc::malformed_start_line);
  CHECK(bad_response([](auto& r) { r.reason = "O\nK"; }) == errc::malformed_start_line);
  CHECK(bad_response([](auto& r) { r.version = -1; }) == errc::unsupported_version);
  CHECK(bad_response([](auto& r) { r.status = 304; }) == errc::invalid_argument);
  CHECK(bad_response([](auto& r) { r.headers.push_back({"Transfer-Encoding", "chunked"}); }) ==
        errc::unsupported_encoding);
  // No body follows a 304, so its Transfer-Encoding frames nothing.
  CHECK(validate(registry::response{1, 304, "Not Modified", {{"Transfer-Encoding", "chunked"}}, ""}));
}

TEST_CASE("requests and responses round-trip") {
  std::vector<registry::request> requests = {
      registry::make_request("POST", "/userlist.txt", "127.0.0.1", "REGISTER Ali@127.0.0.1:54321"),
      registry::make_request("GET", "/userlist.txt", "[::1]:65432"),
      registry::request{"PATCH", "/x?y=%20", 0, {{"A", ""}, {"b", "c d"}}, ""},
      registry::request{"POST", "*", 1, {{"Content-Length", "3"}}, std::string("\r\n\x00", 3)},
  };
  requests.push_back(decode_one(browser_get));
  for (const auto& r : requests) {
    CAPTURE(registry::describe(r));
    REQUIRE(validate(r));
    std::string bytes;
    registry::serialize(r, bytes);
    CHECK(decode_one(bytes) == r);
  }
  std::vector<registry::response> responses = {
      registry::make_response(200, "a@1.2.3.4:5,", true),
      registry::make_response(400, "", false),
      registry::response{0, 101, "Switching Protocols", {{"Upgrade", "x"}}, ""},
      registry::response{1, 599, "", {{"Content-Length", "1"}}, "z"},
  };
  for (const auto& r : responses) {
    CAPTURE(registry::describe(r));
    REQUIRE(validate(r));
    registry::response_decoder d;
    std::string bytes = registry::serialize(registry::http_message{r}).value();
    std::string_view in = bytes;
    auto got = d.next(in);
    REQUIRE(got);
    REQUIRE(got->has_value());
    CHECK(**got == r);
  }
}

TEST_CASE("describe is stable") {
  CHECK(registry::describe(decode_one(seed_register)) ==
        "http.request method=POST target=\"/userlist.txt\" version=1.1 "
        "header=\"Host: 127.0.0.1\" header=\"Content-Type: text/*\" "
        "header=\"Content-Length: 28\" body=\"REGISTER Ali@127.0.0.1:54321\"");
  CHECK(registry::describe(registry::http_message{registry::response{0, 200, "O\"K", {{"A", "b\tc"}}, "\r\n"}}) ==
        "http.response version=1.0 status=200 reason=\"O\\\"K\" header=\"A: b\\tc\" body=\"\\r\\n\"");
}

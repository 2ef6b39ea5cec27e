// The picohttpparser anchor: H2O's parser, built from its unmodified sources
// (../shared/anchors/picohttpparser, found by bench/parser/CMakeLists.txt).
//
// picohttpparser is stateless: it parses a whole head or says "incomplete"
// (-2), and a server re-runs it when more bytes arrive, passing how much it
// had already seen (last_len). It leaves Content-Length and Connection to
// its caller, so this anchor does what H2O does after phr_parse_request():
// one walk over the headers for them (length first, then a case-insensitive
// compare), then locates the body.

#include <strings.h>

#include <cstdint>
#include <string_view>

#include "anchors.hpp"
#include "picohttpparser.h"

namespace bench {
namespace {

bool token_in(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    auto comma = value.find(',');
    std::string_view t = value.substr(0, comma);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (t.size() == token.size() && strncasecmp(t.data(), token.data(), t.size()) == 0) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

class pico_parser final : public parser {
 public:
  std::size_t run(std::string_view stream) override {
    std::size_t before = c_.messages;
    in_chunks(stream, [&](std::string_view piece) { feed(piece); });
    return c_.messages - before;
  }

 private:
  // The pieces of one stream are contiguous in memory, so bytes not yet
  // parsed stay where they are and grow with the next piece (a server would
  // move them to the front of its buffer: a cost spared to the anchor).
  void feed(std::string_view piece) {
    if (pending_.empty()) {
      pending_ = piece;
    } else {
      if (pending_.data() + pending_.size() != piece.data()) die("picohttpparser: non-contiguous");
      pending_ = std::string_view(pending_.data(), pending_.size() + piece.size());
    }
    for (;;) {
      if (body_left_ > 0) {
        if (pending_.size() < body_left_) return;
        c_.body.add(pending_.data(), body_left_);
        pending_.remove_prefix(body_left_);
        body_left_ = 0;
        c_.complete();
      }
      if (pending_.empty()) return;
      const char* method = nullptr;
      const char* path = nullptr;
      std::size_t method_len = 0, path_len = 0, num_headers = collected::max_headers;
      int minor = 0;
      int n = phr_parse_request(pending_.data(), pending_.size(), &method, &method_len, &path,
                                &path_len, &minor, headers_, &num_headers, last_len_);
      if (n == -2) {
        last_len_ = pending_.size();
        return;
      }
      if (n < 0) die("picohttpparser: parse error");
      last_len_ = 0;
      c_.begin();
      c_.url.add(path, path_len);
      c_.method = static_cast<unsigned>(method_len);
      c_.headers = num_headers;
      bool close = false, keep = false;
      c_.content_length = 0;
      for (std::size_t i = 0; i < num_headers; ++i) {
        const phr_header& h = headers_[i];
        c_.names[i] = {h.name, h.name_len};
        c_.values[i] = {h.value, h.value_len};
        if (h.name_len == 14 && strncasecmp(h.name, "content-length", 14) == 0) {
          std::uint64_t v = 0;
          for (std::size_t k = 0; k < h.value_len; ++k) {
            char d = h.value[k];
            if (d < '0' || d > '9') die("picohttpparser: bad Content-Length");
            v = v * 10 + static_cast<std::uint64_t>(d - '0');
          }
          c_.content_length = v;
        } else if (h.name_len == 10 && strncasecmp(h.name, "connection", 10) == 0) {
          std::string_view value(h.value, h.value_len);
          close = close || token_in(value, "close");
          keep = keep || token_in(value, "keep-alive");
        }
      }
      c_.keep = !close && (minor >= 1 || keep);
      pending_.remove_prefix(static_cast<std::size_t>(n));
      if (c_.content_length == 0) {
        c_.complete();
      } else {
        body_left_ = c_.content_length;
      }
    }
  }

  phr_header headers_[collected::max_headers];
  std::string_view pending_;
  std::size_t last_len_ = 0;
  std::uint64_t body_left_ = 0;
  collected c_;
};

}  // namespace

std::unique_ptr<parser> make_picohttpparser() { return std::make_unique<pico_parser>(); }

}  // namespace bench

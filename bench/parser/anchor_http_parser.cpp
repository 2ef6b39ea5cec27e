// The http-parser anchor: Debian's libhttp-parser-dev (2.9), linked statically.

#include <http_parser.h>

#include <climits>

#include "anchors.hpp"

namespace bench {
namespace {

class http_parser_parser final : public parser {
 public:
  http_parser_parser() {
    http_parser_settings_init(&settings_);
    settings_.on_message_begin = [](http_parser* p) { self(p).begin(); return 0; };
    settings_.on_url = [](http_parser* p, const char* at, std::size_t len) {
      self(p).url.add(at, len);
      return 0;
    };
    settings_.on_header_field = [](http_parser* p, const char* at, std::size_t len) {
      return self(p).field(at, len);
    };
    settings_.on_header_value = [](http_parser* p, const char* at, std::size_t len) {
      return self(p).value(at, len);
    };
    settings_.on_headers_complete = [](http_parser* p) {
      auto& c = self(p);
      c.method = p->method;
      c.content_length = p->content_length == ULLONG_MAX ? 0 : p->content_length;
      c.keep = http_should_keep_alive(p) != 0;
      return 0;
    };
    settings_.on_body = [](http_parser* p, const char* at, std::size_t len) {
      return self(p).on_body(at, len);
    };
    settings_.on_message_complete = [](http_parser* p) { self(p).complete(); return 0; };
    http_parser_init(&p_, HTTP_REQUEST);
    p_.data = &c_;
  }

  std::size_t run(std::string_view stream) override {
    std::size_t before = c_.messages;
    in_chunks(stream, [&](std::string_view piece) {
      std::size_t used = http_parser_execute(&p_, &settings_, piece.data(), piece.size());
      if (used != piece.size() || HTTP_PARSER_ERRNO(&p_) != HPE_OK) {
        die(std::string("http-parser: ") +
            http_errno_description(static_cast<http_errno>(HTTP_PARSER_ERRNO(&p_))));
      }
    });
    return c_.messages - before;
  }

 private:
  static collected& self(http_parser* p) { return *static_cast<collected*>(p->data); }
  http_parser_settings settings_{};
  http_parser p_{};
  collected c_;
};

}  // namespace

std::unique_ptr<parser> make_http_parser() { return std::make_unique<http_parser_parser>(); }

}  // namespace bench

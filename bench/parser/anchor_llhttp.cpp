// The llhttp anchor: llhttp 8 built from the C sources of Debian's node-llhttp.

#include <llhttp.h>

#include "anchors.hpp"

namespace bench {
namespace {

class llhttp_parser final : public parser {
 public:
  explicit llhttp_parser(bool hold_split_bodies) {
    c_.hold_split_bodies = hold_split_bodies;
    llhttp_settings_init(&settings_);
    settings_.on_message_begin = [](llhttp_t* p) { self(p).begin(); return 0; };
    settings_.on_url = [](llhttp_t* p, const char* at, std::size_t len) {
      self(p).url.add(at, len);
      return 0;
    };
    settings_.on_header_field = [](llhttp_t* p, const char* at, std::size_t len) {
      return self(p).field(at, len);
    };
    settings_.on_header_value = [](llhttp_t* p, const char* at, std::size_t len) {
      return self(p).value(at, len);
    };
    settings_.on_headers_complete = [](llhttp_t* p) {
      auto& c = self(p);
      c.method = llhttp_get_method(p);
      c.content_length = p->content_length;
      c.keep = llhttp_should_keep_alive(p) != 0;
      return 0;
    };
    settings_.on_body = [](llhttp_t* p, const char* at, std::size_t len) {
      return self(p).on_body(at, len);
    };
    settings_.on_message_complete = [](llhttp_t* p) { self(p).complete(); return 0; };
    llhttp_init(&p_, HTTP_REQUEST, &settings_);
    p_.data = &c_;
  }

  std::size_t run(std::string_view stream) override {
    std::size_t before = c_.messages;
    in_chunks(stream, [&](std::string_view piece) {
      if (llhttp_execute(&p_, piece.data(), piece.size()) != HPE_OK) {
        die(std::string("llhttp: ") + llhttp_get_error_reason(&p_));
      }
    });
    return c_.messages - before;
  }

 private:
  static collected& self(llhttp_t* p) { return *static_cast<collected*>(p->data); }
  llhttp_settings_t settings_{};
  llhttp_t p_{};
  collected c_;
};

}  // namespace

std::unique_ptr<parser> make_llhttp(bool hold_split_bodies) {
  return std::make_unique<llhttp_parser>(hold_split_bodies);
}

}  // namespace bench

// libFuzzer target: send-side validation of every protocol.
//
// The input is read as a recipe for one message of any protocol (the first
// byte picks the type, the rest fills its fields: texts with any bytes,
// numbers of any size). Invariant: when serialize() accepts the message, its
// own decoder gives back the same message, consuming every byte; when it
// refuses, it appends nothing.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "improto/buddy/decoder.hpp"
#include "improto/registry/decoder.hpp"
#include "improto/relay/decoder.hpp"
#include "improto/wire/text.hpp"

namespace registry = improto::registry;
namespace buddy = improto::buddy;
namespace relay = improto::relay;
namespace wire = improto::wire;

namespace {

[[noreturn]] void broken(const char* what, const std::string& detail) {
  std::fprintf(stderr, "invariant broken: %s\n  %s\n", what, detail.c_str());
  std::abort();
}

// Reads fields off the fuzz input; past its end every read gives zeros.
class recipe {
 public:
  explicit recipe(std::string_view in) : in_(in) {}

  std::uint8_t byte() {
    if (in_.empty()) return 0;
    auto b = static_cast<std::uint8_t>(in_.front());
    in_.remove_prefix(1);
    return b;
  }
  bool flag() { return (byte() & 1) != 0; }
  std::uint64_t number(int bytes) {
    std::uint64_t n = 0;
    for (int i = 0; i < bytes; ++i) n = (n << 8) | byte();
    return n;
  }
  // Mostly short texts; a length byte of 255 asks for a long one.
  std::string text() {
    std::size_t size = byte();
    if (size == 255) size = static_cast<std::size_t>(number(2));
    size = std::min(size, in_.size());
    std::string out(in_.substr(0, size));
    in_.remove_prefix(size);
    return out;
  }
  // Texts from a small alphabet reach valid names and addresses more often.
  std::string word() {
    static constexpr std::string_view alphabet = "abcXYZ019.:-_@, \t\r\n/[]";
    std::size_t size = byte() % 40;
    std::string out;
    for (std::size_t i = 0; i < size; ++i) out += alphabet[byte() % alphabet.size()];
    return out;
  }
  std::string any_text() { return flag() ? word() : text(); }

 private:
  std::string_view in_;
};

// serialize() into a string that already holds bytes: on a refusal they
// must be all there is.
template <class Serialize>
bool serialized(std::string& out, Serialize&& serialize) {
  out = "prefix";
  auto ok = serialize(out);
  if (!ok) {
    if (out != "prefix") broken("a refused message appended bytes", wire::escape(out));
    return false;
  }
  if (out.compare(0, 6, "prefix") != 0) broken("serialize() overwrote bytes", wire::escape(out));
  out.erase(0, 6);
  return true;
}

template <class Message>
void same(const Message& got, const Message& sent, const std::string& bytes,
          const std::string& got_text, const std::string& sent_text) {
  if (!(got == sent)) {
    broken("decoded message differs", sent_text + "\n  bytes:   " + wire::escape(bytes) +
                                          "\n  decoded: " + got_text);
  }
}

// One whole message from a stream decoder (finish() for a body that runs to
// the end of the stream).
template <class Decoder, class Message, class Describe>
void stream_back(Decoder decoder, const Message& m, const std::string& bytes, Describe describe) {
  std::string_view in = bytes;
  auto got = decoder.next(in);
  if (got && !*got && in.empty()) got = decoder.finish();
  if (!got) broken("serialized bytes do not decode", describe(m) + ": " + got.error().message());
  if (!*got) broken("serialized bytes are incomplete", describe(m));
  if (!in.empty()) broken("bytes left after the message", describe(m) + ": " + wire::escape(in));
  same<Message>(**got, m, bytes, describe(**got), describe(m));
}

template <class Message, class Parse, class Describe>
void parse_back(const Message& m, const std::string& bytes, Parse parse, Describe describe) {
  auto got = parse(bytes);
  if (!got) broken("serialized bytes do not parse", describe(m) + ": " + got.error().message());
  same<Message>(*got, m, bytes, describe(*got), describe(m));
}

// ------------------------------------------------------------- protocol 1

registry::fields some_headers(recipe& r) {
  registry::fields headers;
  int n = r.byte() % 4;
  for (int i = 0; i < n; ++i) {
    std::string name = r.flag() ? std::string(r.flag() ? "Content-Length" : "Connection")
                                : r.any_text();
    headers.push_back({std::move(name), r.any_text()});
  }
  return headers;
}

registry::entry some_entry(recipe& r) {
  registry::entry e;
  e.user = r.any_text();
  e.host = r.flag() ? std::string("127.0.0.1") : r.any_text();
  e.port = static_cast<std::uint16_t>(r.number(2));
  return e;
}

void registry_message(recipe& r, int kind) {
  std::string out;
  auto describe = [](const auto& m) { return registry::describe(m); };
  switch (kind) {
    case 0: {
      registry::request m;
      m.method = r.flag() ? std::string("POST") : r.any_text();
      m.target = r.any_text();
      m.version = r.byte() % 3;
      m.body = r.text();
      m.headers = some_headers(r);
      if (r.flag()) m.headers.push_back({"Content-Length", std::to_string(m.body.size())});
      if (serialized(out, [&](std::string& o) { return registry::serialize(m, o); })) {
        stream_back(registry::request_decoder(), m, out, describe);
      }
      return;
    }
    case 1: {
      registry::response m;
      m.version = r.byte() % 3;
      m.status = static_cast<int>(r.number(2)) - 100;
      m.reason = r.any_text();
      m.body = r.text();
      m.headers = some_headers(r);
      if (r.flag()) m.headers.push_back({"Content-Length", std::to_string(m.body.size())});
      if (serialized(out, [&](std::string& o) { return registry::serialize(m, o); })) {
        stream_back(registry::response_decoder(), m, out, describe);
      }
      return;
    }
    case 2: {
      auto m = some_entry(r);
      if (serialized(out, [&](std::string& o) { return registry::serialize(m, o); })) {
        parse_back(m, out, registry::parse_entry, describe);
      }
      return;
    }
    case 3: {
      registry::command m{r.flag() ? registry::command_kind::logout
                                   : registry::command_kind::register_,
                          some_entry(r)};
      if (serialized(out, [&](std::string& o) { return registry::serialize(m, o); })) {
        parse_back(m, out, registry::parse_command, describe);
      }
      return;
    }
    case 4: {
      registry::user_list m;
      int n = r.byte() % 4;
      for (int i = 0; i < n; ++i) m.entries.push_back(some_entry(r));
      if (serialized(out, [&](std::string& o) { return registry::serialize(m, o); })) {
        parse_back(m, out, registry::parse_list, describe);
      }
      return;
    }
    default: {
      registry::peer_message m{r.any_text(), r.text()};
      if (serialized(out, [&](std::string& o) { return registry::serialize(m, o); })) {
        parse_back(m, out, registry::parse_peer_message, describe);
      }
      return;
    }
  }
}

// ------------------------------------------------------------- protocol 2

buddy::presence some_presence(recipe& r) {
  std::uint8_t b = r.byte();
  if (b < 120) return buddy::presence::online;
  if (b < 250) return buddy::presence::offline;
  return static_cast<buddy::presence>(b);
}

void buddy_message(recipe& r, int kind) {
  std::string out;
  auto describe = [](const auto& m) { return buddy::describe(m); };
  switch (kind) {
    case 0: {
      buddy::request m;
      switch (r.byte() % 3) {
        case 0: m = buddy::register_request{r.any_text()}; break;
        case 1: m = buddy::add_request{r.any_text(), r.any_text()}; break;
        default: m = buddy::delete_request{r.any_text(), r.any_text()}; break;
      }
      if (serialized(out, [&](std::string& o) { return buddy::serialize(m, o); })) {
        stream_back(buddy::request_decoder(), m, out, describe);
      }
      return;
    }
    case 1: {
      buddy::response m{static_cast<std::uint16_t>(r.number(2)), r.any_text()};
      if (serialized(out, [&](std::string& o) { return buddy::serialize(m, o); })) {
        stream_back(buddy::response_decoder(), m, out, describe);
      }
      return;
    }
    case 2: {
      buddy::udp_request m;
      if (r.flag()) {
        m = buddy::set_request{r.any_text(), some_presence(r),
                               static_cast<std::uint16_t>(r.number(2))};
      } else {
        m = buddy::get_request{r.any_text()};
      }
      if (serialized(out, [&](std::string& o) { return buddy::serialize(m, o); })) {
        parse_back(m, out, buddy::parse_udp_request, describe);
      }
      return;
    }
    case 3: {
      buddy::status_reply m;
      if (r.flag()) {
        m = buddy::response{static_cast<std::uint16_t>(r.number(2)), r.any_text()};
      } else {
        buddy::buddy_list list;
        int n = r.byte() % 4;
        for (int i = 0; i < n; ++i) {
          list.buddies.push_back({r.any_text(), some_presence(r),
                                  r.flag() ? std::string("10.0.0.1") : r.any_text(),
                                  static_cast<std::uint16_t>(r.number(2))});
        }
        m = std::move(list);
      }
      if (serialized(out, [&](std::string& o) { return buddy::serialize(m, o); })) {
        parse_back(m, out, buddy::parse_status_reply, describe);
      }
      return;
    }
    default: {
      // Chat control lines are read as such only as the first line, so text
      // is decoded after an opening empty line.
      buddy::chat_message m;
      bool opening = true;
      switch (r.byte() % 4) {
        case 0: m = buddy::chat_hello{r.any_text()}; break;
        case 1:
          m = buddy::chat_text{r.any_text()};
          opening = false;
          break;
        case 2: m = buddy::chat_quit{}; break;
        default: m = buddy::chat_busy{}; break;
      }
      if (!serialized(out, [&](std::string& o) { return buddy::serialize(m, o); })) return;
      buddy::chat_decoder decoder;
      if (!opening) {
        std::string_view opener = "\n";
        if (!decoder.next(opener)) broken("chat opener", "");
      }
      stream_back(std::move(decoder), m, out, describe);
      return;
    }
  }
}

// ------------------------------------------------------------- protocol 3/4

relay::message relay_message_of(recipe& r) {
  auto role = r.flag() ? relay::role::to_recv : relay::role::to_send;
  auto id = [&] { return static_cast<std::uint32_t>(r.number(r.flag() ? 4 : 1)); };
  auto big = [&] { return r.number(r.flag() ? 8 : 2); };
  switch (r.byte() % 25) {
    case 0: return relay::register_request{role, r.any_text()};
    case 1: return relay::registered{role, r.any_text()};
    case 2: return relay::send{r.any_text(), r.text()};
    case 3: return relay::sent{r.any_text()};
    case 4: return relay::forward{r.any_text(), r.text()};
    case 5: return relay::received{r.any_text()};
    case 6: return relay::error_reply{static_cast<int>(r.number(2)) - 100, r.any_text()};
    case 7: return relay::list_users{r.any_text()};
    case 8: {
      relay::user_list m;
      int n = r.byte() % 4;
      for (int i = 0; i < n; ++i) m.users.push_back(r.any_text());
      m.more = r.flag();
      return m;
    }
    case 9: return relay::list_files{r.any_text()};
    case 10: {
      relay::file_list m;
      int n = r.byte() % 4;
      for (int i = 0; i < n; ++i) m.files.push_back({r.any_text(), big()});
      m.more = r.flag();
      return m;
    }
    case 11: return relay::subscribe{};
    case 12: return relay::subscribed{};
    case 13: return relay::unsubscribe{};
    case 14: return relay::unsubscribed{};
    case 15: return relay::joined{r.any_text()};
    case 16: return relay::left{r.any_text()};
    case 17: return relay::download{r.any_text(), static_cast<std::uint16_t>(r.number(2)), big()};
    case 18: {
      relay::transfer m;
      m.id = id();
      m.size = big();
      m.offset = big();
      m.sha256 = r.flag() ? std::string(64, "0a9f"[r.byte() % 4]) : r.any_text();
      m.udp_port = static_cast<std::uint16_t>(r.number(2));
      return m;
    }
    case 19: return relay::pause{id()};
    case 20: return relay::resume{id()};
    case 21: return relay::cancel{id()};
    case 22: return relay::paused{id()};
    case 23: return relay::resumed{id()};
    default: return relay::cancelled{id()};
  }
}

void relay_message(recipe& r) {
  wire::limits lim;
  if (r.flag()) lim = wire::limits{.max_line = 40, .max_headers = 2, .max_body = 16};
  relay::message m = relay_message_of(r);
  std::string out;
  if (!serialized(out, [&](std::string& o) { return relay::serialize(m, o, lim); })) return;
  stream_back(relay::decoder(relay::direction_of(m), lim), m, out,
              [](const relay::message& v) { return relay::describe(v); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  recipe r(std::string_view(reinterpret_cast<const char*>(data), size));
  std::uint8_t pick = r.byte();
  switch (pick % 3) {
    case 0: registry_message(r, (pick / 3) % 6); break;
    case 1: buddy_message(r, (pick / 3) % 5); break;
    default: relay_message(r); break;
  }
  return 0;
}

#include "improto/relay/messages.hpp"

#include <type_traits>

#include "improto/wire/text.hpp"
#include "verbs.hpp"

namespace improto::relay {
namespace {

using namespace detail;

// "VERB arg\n\n": the shape of most messages.
void line_message(std::string& out, std::string_view verb, std::string_view arg) {
  out.reserve(out.size() + verb.size() + arg.size() + 3);
  out += verb;
  out += ' ';
  out += arg;
  out += "\n\n";
}

void id_message(std::string& out, verb v, std::uint32_t id) {
  out += word(v);
  out += ' ';
  wire::append_decimal(out, id);
  out += "\n\n";
}

void write_header(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += '\n';
}

void number_header(std::string& out, std::string_view name, std::uint64_t value) {
  out += name;
  out += ": ";
  wire::append_decimal(out, value);
  out += '\n';
}

// "VERB arg\nContent-length: N\n\n<body>": the hot path of SEND and FORWARD,
// so the output grows once.
void body_message(std::string& out, verb v, std::string_view arg, std::string_view body) {
  std::string_view verb_word = word(v);
  out.reserve(out.size() + verb_word.size() + arg.size() + body.size() + 40);
  out += verb_word;
  out += ' ';
  out += arg;
  out += '\n';
  out += header::content_length;
  out += ": ";
  wire::append_decimal(out, body.size());
  out += "\n\n";
  out += body;
}

void list_message(std::string& out, verb v, bool more, std::string_view body) {
  out += word(v);
  out += '\n';
  if (more) write_header(out, header::more, "yes");
  number_header(out, header::content_length, body.size());
  out += '\n';
  out += body;
}

void list_request(std::string& out, std::string_view what, std::string_view after) {
  out += word(verb::list);
  out += ' ';
  out += what;
  out += '\n';
  if (!after.empty()) write_header(out, header::after, after);
  out += '\n';
}

void topic_message(std::string& out, verb v) {
  out += word(v);
  out += ' ';
  out += presence_word;
  out += "\n\n";
}

std::string user_list_body(const user_list& m) {
  std::string body;
  for (const auto& u : m.users) {
    body += u;
    body += '\n';
  }
  return body;
}

std::string file_list_body(const file_list& m) {
  std::string body;
  for (const auto& f : m.files) {
    wire::append_decimal(body, f.size);
    body += ' ';
    body += f.name;
    body += '\n';
  }
  return body;
}

// ------------------------------------------------------------------- checks
// What the decoder would reject or read differently, field by field.

class checker {
 public:
  explicit checker(const wire::limits& lim) : lim_(lim) {}

  // A start-line argument or header value: read back trimmed, and refused
  // with a control character in it.
  result<void> text(std::string_view what, std::string_view value) const {
    if (wire::has_ctl(value)) {
      return fail(errc::invalid_argument,
                  std::string(what) + " " + wire::quote(value.substr(0, 64)) +
                      " has a control character (CR, LF, ...)");
    }
    if (wire::has_outer_blank(value)) {
      return fail(errc::invalid_argument,
                  std::string(what) + " " + wire::quote(value.substr(0, 64)) +
                      " starts or ends with a blank");
    }
    return {};
  }
  result<void> entry(std::string_view what, std::string_view value) const {
    if (value.empty()) return fail(errc::invalid_argument, "empty " + std::string(what));
    return text(what, value);
  }
  result<void> line(std::size_t size) const {
    if (size <= lim_.max_line) return {};
    return fail(errc::line_too_long, "a line of " + std::to_string(size) + " bytes exceeds " +
                                         std::to_string(lim_.max_line));
  }
  // "VERB arg" and its header lines.
  // `before` counts the bytes between the verb's space and `arg`.
  result<void> head(verb v, std::string_view what, std::string_view arg,
                    std::size_t headers = 0, std::size_t before = 0) const {
    if (auto ok = text(what, arg); !ok) return ok;
    if (headers > lim_.max_headers) {
      return fail(errc::too_many_headers, std::to_string(headers) + " header lines, at most " +
                                              std::to_string(lim_.max_headers));
    }
    return line(word(v).size() + 1 + before + arg.size());
  }
  result<void> header_line(std::string_view name, std::string_view value) const {
    if (auto ok = text(name, value); !ok) return ok;
    return line(name.size() + 2 + value.size());
  }
  result<void> body(std::size_t size) const {
    if (size <= lim_.max_body) return {};
    return fail(errc::body_too_large, "body of " + std::to_string(size) + " bytes exceeds " +
                                          std::to_string(lim_.max_body));
  }
  static result<void> id(std::uint32_t value) {
    if (value != 0) return {};
    return fail(errc::invalid_argument, "transfer id 0 (ids are 1..4294967295)");
  }
  static result<void> port(std::uint16_t value) {
    if (value != 0) return {};
    return fail(errc::invalid_argument, "UDP port 0");
  }
  static result<void> size(std::string_view what, std::uint64_t value, std::uint64_t max) {
    if (value <= max) return {};
    return fail(errc::invalid_argument, std::string(what) + " " + std::to_string(value) +
                                            " is over " + std::to_string(max));
  }

  result<void> operator()(const register_request& m) const {
    return head(verb::register_, "user name", m.user, 0, to_send_word.size() + 1);
  }
  result<void> operator()(const registered& m) const {
    return head(verb::registered, "user name", m.user, 0, to_send_word.size() + 1);
  }
  result<void> operator()(const relay::send& m) const {
    if (auto ok = head(verb::send, "recipient", m.to, 1); !ok) return ok;
    return body(m.body.size());
  }
  result<void> operator()(const sent& m) const { return head(verb::sent, "recipient", m.to); }
  result<void> operator()(const forward& m) const {
    if (auto ok = head(verb::forward, "sender", m.from, 1); !ok) return ok;
    return body(m.body.size());
  }
  result<void> operator()(const received& m) const {
    return head(verb::received, "sender", m.from);
  }
  result<void> operator()(const error_reply& m) const {
    if (m.code < 100 || m.code > 999) {
      return fail(errc::invalid_argument,
                  "error code " + std::to_string(m.code) + " is not three digits 100..999");
    }
    return head(verb::error, "error text", m.text, 0, 4);
  }
  result<void> operator()(const list_users& m) const { return list(m.after); }
  result<void> operator()(const list_files& m) const { return list(m.after); }
  result<void> operator()(const user_list& m) const {
    std::size_t size = 0;
    for (const auto& u : m.users) {
      if (auto ok = entry("user list entry", u); !ok) return ok;
      size += u.size() + 1;
    }
    return list_reply(m.more, size);
  }
  result<void> operator()(const file_list& m) const {
    std::size_t size = 0;
    for (const auto& f : m.files) {
      if (auto ok = entry("file name", f.name); !ok) return ok;
      if (auto ok = checker::size("file size", f.size, max_size); !ok) return ok;
      size += wire::decimal_digits(f.size) + 1 + f.name.size() + 1;
    }
    return list_reply(m.more, size);
  }
  result<void> operator()(const subscribe&) const { return {}; }
  result<void> operator()(const subscribed&) const { return {}; }
  result<void> operator()(const unsubscribe&) const { return {}; }
  result<void> operator()(const unsubscribed&) const { return {}; }
  result<void> operator()(const joined& m) const { return head(verb::joined, "user name", m.user); }
  result<void> operator()(const left& m) const { return head(verb::left, "user name", m.user); }
  result<void> operator()(const download& m) const {
    if (auto ok = head(verb::download, "file name", m.file, 2); !ok) return ok;
    if (auto ok = port(m.udp_port); !ok) return ok;
    return checker::size("offset", m.offset, max_size);
  }
  result<void> operator()(const transfer& m) const {
    if (auto ok = id(m.id); !ok) return ok;
    if (4 > lim_.max_headers) return fail(errc::too_many_headers, "TRANSFER has 4 header lines");
    if (auto ok = checker::size("size", m.size, max_size); !ok) return ok;
    if (auto ok = checker::size("offset", m.offset, m.size); !ok) return ok;
    if (auto ok = port(m.udp_port); !ok) return ok;
    bool hex = m.sha256.size() == 64;
    for (char c : m.sha256) {
      if (!wire::is_digit(c) && (c < 'a' || c > 'f')) hex = false;
    }
    if (!hex) {
      return fail(errc::invalid_argument,
                  "sha256 " + wire::quote(m.sha256.substr(0, 80)) +
                      " is not 64 lowercase hex digits");
    }
    return {};
  }
  result<void> operator()(const pause& m) const { return id(m.id); }
  result<void> operator()(const resume& m) const { return id(m.id); }
  result<void> operator()(const cancel& m) const { return id(m.id); }
  result<void> operator()(const paused& m) const { return id(m.id); }
  result<void> operator()(const resumed& m) const { return id(m.id); }
  result<void> operator()(const cancelled& m) const { return id(m.id); }

 private:
  result<void> list(std::string_view after) const {
    if (after.empty()) return {};
    if (1 > lim_.max_headers) return fail(errc::too_many_headers, "no room for an After header");
    return header_line(header::after, after);
  }
  result<void> list_reply(bool more, std::size_t body_size) const {
    std::size_t headers = more ? 2 : 1;
    if (headers > lim_.max_headers) {
      return fail(errc::too_many_headers, std::to_string(headers) + " header lines, at most " +
                                              std::to_string(lim_.max_headers));
    }
    return body(body_size);
  }

  const wire::limits& lim_;
};

}  // namespace

std::string_view role_name(role r) noexcept {
  return r == role::to_send ? to_send_word : to_recv_word;
}

void serialize_unchecked(const register_request& m, std::string& out) {
  out += word(verb::register_);
  out += ' ';
  line_message(out, role_name(m.role), m.user);
}
void serialize_unchecked(const registered& m, std::string& out) {
  out += word(verb::registered);
  out += ' ';
  line_message(out, role_name(m.role), m.user);
}
void serialize_unchecked(const send& m, std::string& out) {
  body_message(out, verb::send, m.to, m.body);
}
void serialize_unchecked(const sent& m, std::string& out) {
  line_message(out, word(verb::sent), m.to);
}
void serialize_unchecked(const forward& m, std::string& out) {
  body_message(out, verb::forward, m.from, m.body);
}
void serialize_forward(std::string_view from, std::string_view body, std::string& out) {
  body_message(out, verb::forward, from, body);
}
void serialize_unchecked(const received& m, std::string& out) {
  line_message(out, word(verb::received), m.from);
}
void serialize_unchecked(const error_reply& m, std::string& out) {
  out += word(verb::error);
  out += ' ';
  out += std::to_string(m.code);
  if (!m.text.empty()) {
    out += ' ';
    out += m.text;
  }
  out += "\n\n";
}
void serialize_unchecked(const list_users& m, std::string& out) {
  list_request(out, users_word, m.after);
}
void serialize_unchecked(const user_list& m, std::string& out) {
  list_message(out, verb::users, m.more, user_list_body(m));
}
void serialize_unchecked(const list_files& m, std::string& out) {
  list_request(out, files_word, m.after);
}
void serialize_unchecked(const file_list& m, std::string& out) {
  list_message(out, verb::files, m.more, file_list_body(m));
}
void serialize_unchecked(const subscribe&, std::string& out) {
  topic_message(out, verb::subscribe);
}
void serialize_unchecked(const subscribed&, std::string& out) {
  topic_message(out, verb::subscribed);
}
void serialize_unchecked(const unsubscribe&, std::string& out) {
  topic_message(out, verb::unsubscribe);
}
void serialize_unchecked(const unsubscribed&, std::string& out) {
  topic_message(out, verb::unsubscribed);
}
void serialize_unchecked(const joined& m, std::string& out) {
  line_message(out, word(verb::joined), m.user);
}
void serialize_unchecked(const left& m, std::string& out) {
  line_message(out, word(verb::left), m.user);
}
void serialize_unchecked(const download& m, std::string& out) {
  out += word(verb::download);
  out += ' ';
  out += m.file;
  out += '\n';
  number_header(out, header::udp_port, m.udp_port);
  number_header(out, header::offset, m.offset);
  out += '\n';
}
void serialize_unchecked(const transfer& m, std::string& out) {
  out += word(verb::transfer);
  out += ' ';
  wire::append_decimal(out, m.id);
  out += '\n';
  number_header(out, header::size, m.size);
  number_header(out, header::offset, m.offset);
  write_header(out, header::sha256, m.sha256);
  number_header(out, header::udp_port, m.udp_port);
  out += '\n';
}
void serialize_unchecked(const pause& m, std::string& out) { id_message(out, verb::pause, m.id); }
void serialize_unchecked(const resume& m, std::string& out) { id_message(out, verb::resume, m.id); }
void serialize_unchecked(const cancel& m, std::string& out) { id_message(out, verb::cancel, m.id); }
void serialize_unchecked(const paused& m, std::string& out) { id_message(out, verb::paused, m.id); }
void serialize_unchecked(const resumed& m, std::string& out) {
  id_message(out, verb::resumed, m.id);
}
void serialize_unchecked(const cancelled& m, std::string& out) {
  id_message(out, verb::cancelled, m.id);
}

void serialize_unchecked(const message& m, std::string& out) {
  std::visit([&out](const auto& v) { serialize_unchecked(v, out); }, m);
}

std::string serialize_unchecked(const message& m) {
  std::string out;
  serialize_unchecked(m, out);
  return out;
}

result<void> serialize(const message& m, std::string& out, const wire::limits& lim) {
  if (auto ok = std::visit(checker(lim), m); !ok) return ok;
  serialize_unchecked(m, out);
  return {};
}

result<std::string> serialize(const message& m, const wire::limits& lim) {
  std::string out;
  if (auto ok = serialize(m, out, lim); !ok) return tl::unexpected<error>(std::move(ok.error()));
  return out;
}

direction direction_of(const message& m) noexcept {
  return std::visit(
      [](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        constexpr bool to_server =
            std::is_same_v<T, register_request> || std::is_same_v<T, send> ||
            std::is_same_v<T, received> || std::is_same_v<T, list_users> ||
            std::is_same_v<T, list_files> || std::is_same_v<T, subscribe> ||
            std::is_same_v<T, unsubscribe> || std::is_same_v<T, download> ||
            std::is_same_v<T, pause> || std::is_same_v<T, resume> || std::is_same_v<T, cancel>;
        return to_server ? direction::to_server : direction::to_client;
      },
      m);
}

namespace {

struct describe_visitor {
  std::string operator()(const register_request& m) const {
    return wire::describer("register").word("role", role_name(m.role)).text("user", m.user).str();
  }
  std::string operator()(const registered& m) const {
    return wire::describer("registered")
        .word("role", role_name(m.role))
        .text("user", m.user)
        .str();
  }
  std::string operator()(const send& m) const {
    return wire::describer("send").text("to", m.to).text("body", m.body).str();
  }
  std::string operator()(const sent& m) const {
    return wire::describer("sent").text("to", m.to).str();
  }
  std::string operator()(const forward& m) const {
    return wire::describer("forward").text("from", m.from).text("body", m.body).str();
  }
  std::string operator()(const received& m) const {
    return wire::describer("received").text("from", m.from).str();
  }
  std::string operator()(const error_reply& m) const {
    return wire::describer("error_reply")
        .word("code", std::to_string(m.code))
        .text("text", m.text)
        .str();
  }
  std::string operator()(const list_users& m) const {
    return wire::describer("list_users").text("after", m.after).str();
  }
  std::string operator()(const user_list& m) const {
    wire::describer d("user_list");
    d.number("count", m.users.size()).word("more", m.more ? "yes" : "no");
    for (const auto& u : m.users) d.text("user", u);
    return d.str();
  }
  std::string operator()(const list_files& m) const {
    return wire::describer("list_files").text("after", m.after).str();
  }
  std::string operator()(const file_list& m) const {
    wire::describer d("file_list");
    d.number("count", m.files.size()).word("more", m.more ? "yes" : "no");
    for (const auto& f : m.files) d.text("file", f.name).number("size", f.size);
    return d.str();
  }
  std::string operator()(const subscribe&) const { return "subscribe"; }
  std::string operator()(const subscribed&) const { return "subscribed"; }
  std::string operator()(const unsubscribe&) const { return "unsubscribe"; }
  std::string operator()(const unsubscribed&) const { return "unsubscribed"; }
  std::string operator()(const joined& m) const {
    return wire::describer("joined").text("user", m.user).str();
  }
  std::string operator()(const left& m) const {
    return wire::describer("left").text("user", m.user).str();
  }
  std::string operator()(const download& m) const {
    return wire::describer("download")
        .text("file", m.file)
        .number("udp_port", m.udp_port)
        .number("offset", m.offset)
        .str();
  }
  std::string operator()(const transfer& m) const {
    return wire::describer("transfer")
        .number("id", m.id)
        .number("size", m.size)
        .number("offset", m.offset)
        .text("sha256", m.sha256)
        .number("udp_port", m.udp_port)
        .str();
  }
  std::string operator()(const pause& m) const { return id("pause", m.id); }
  std::string operator()(const resume& m) const { return id("resume", m.id); }
  std::string operator()(const cancel& m) const { return id("cancel", m.id); }
  std::string operator()(const paused& m) const { return id("paused", m.id); }
  std::string operator()(const resumed& m) const { return id("resumed", m.id); }
  std::string operator()(const cancelled& m) const { return id("cancelled", m.id); }

  static std::string id(std::string_view type, std::uint32_t value) {
    return wire::describer(type).number("id", value).str();
  }
};

}  // namespace

std::string describe(const message& m) { return std::visit(describe_visitor{}, m); }

bool valid_user(std::string_view name) noexcept {
  if (name.empty() || name.size() > 32) return false;
  for (char c : name) {
    if (!wire::is_alnum(c)) return false;
  }
  return !is_broadcast(name);
}

result<void> check_user(std::string_view name) {
  if (valid_user(name)) return {};
  return fail(errc::invalid_name, "user name " + wire::quote(name.substr(0, 40)) +
                                      " is not 1 to 32 letters and digits (or is ALL)");
}

bool valid_file_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  if (wire::is_blank(name.front()) || wire::is_blank(name.back())) return false;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (c == '/' || u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

bool is_broadcast(std::string_view recipient) noexcept {
  return wire::iequals(recipient, broadcast_recipient);
}

}  // namespace improto::relay

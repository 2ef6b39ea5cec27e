#include "improto/relay/messages.hpp"

#include <charconv>
#include <type_traits>

#include "improto/relay/decoder.hpp"
#include "improto/wire/text.hpp"

namespace improto::relay {
namespace {

void append_number(std::string& out, std::uint64_t value) {
  char buf[20];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, r.ptr);
}

// "VERB arg\n\n": the shape of most messages.
void line_message(std::string& out, std::string_view verb, std::string_view arg) {
  out.reserve(out.size() + verb.size() + arg.size() + 3);
  out += verb;
  out += ' ';
  out += arg;
  out += "\n\n";
}

void id_message(std::string& out, std::string_view verb, std::uint32_t id) {
  out += verb;
  out += ' ';
  append_number(out, id);
  out += "\n\n";
}

void header(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += '\n';
}

void number_header(std::string& out, std::string_view name, std::uint64_t value) {
  out += name;
  out += ": ";
  append_number(out, value);
  out += '\n';
}

// "VERB arg\nContent-length: N\n\n<body>": the hot path of SEND and FORWARD,
// so the output grows once.
void body_message(std::string& out, std::string_view verb, std::string_view arg,
                  std::string_view body) {
  out.reserve(out.size() + verb.size() + arg.size() + body.size() + 40);
  out += verb;
  out += ' ';
  out += arg;
  out += "\nContent-length: ";
  append_number(out, body.size());
  out += "\n\n";
  out += body;
}

void list_message(std::string& out, std::string_view verb, bool more, std::string_view body) {
  out += verb;
  out += '\n';
  if (more) header(out, "More", "yes");
  number_header(out, "Content-length", body.size());
  out += '\n';
  out += body;
}

void list_request(std::string& out, std::string_view what, std::string_view after) {
  out += "LIST ";
  out += what;
  out += '\n';
  if (!after.empty()) header(out, "After", after);
  out += '\n';
}

}  // namespace

std::string_view role_name(role r) noexcept { return r == role::to_send ? "TOSEND" : "TORECV"; }

void serialize(const register_request& m, std::string& out) {
  out += "REGISTER ";
  line_message(out, role_name(m.role), m.user);
}
void serialize(const registered& m, std::string& out) {
  out += "REGISTERED ";
  line_message(out, role_name(m.role), m.user);
}
void serialize(const send& m, std::string& out) { body_message(out, "SEND", m.to, m.body); }
void serialize(const sent& m, std::string& out) { line_message(out, "SENT", m.to); }
void serialize(const forward& m, std::string& out) {
  body_message(out, "FORWARD", m.from, m.body);
}
void serialize(const received& m, std::string& out) { line_message(out, "RECEIVED", m.from); }
void serialize(const error_reply& m, std::string& out) {
  out += "ERROR ";
  out += std::to_string(m.code);
  if (!m.text.empty()) {
    out += ' ';
    out += m.text;
  }
  out += "\n\n";
}
void serialize(const list_users& m, std::string& out) { list_request(out, "USERS", m.after); }
void serialize(const user_list& m, std::string& out) {
  std::string body;
  for (const auto& u : m.users) {
    body += u;
    body += '\n';
  }
  list_message(out, "USERS", m.more, body);
}
void serialize(const list_files& m, std::string& out) { list_request(out, "FILES", m.after); }
void serialize(const file_list& m, std::string& out) {
  std::string body;
  for (const auto& f : m.files) {
    append_number(body, f.size);
    body += ' ';
    body += f.name;
    body += '\n';
  }
  list_message(out, "FILES", m.more, body);
}
void serialize(const subscribe&, std::string& out) { out += "SUBSCRIBE PRESENCE\n\n"; }
void serialize(const subscribed&, std::string& out) { out += "SUBSCRIBED PRESENCE\n\n"; }
void serialize(const unsubscribe&, std::string& out) { out += "UNSUBSCRIBE PRESENCE\n\n"; }
void serialize(const unsubscribed&, std::string& out) { out += "UNSUBSCRIBED PRESENCE\n\n"; }
void serialize(const joined& m, std::string& out) { line_message(out, "JOINED", m.user); }
void serialize(const left& m, std::string& out) { line_message(out, "LEFT", m.user); }
void serialize(const download& m, std::string& out) {
  out += "DOWNLOAD ";
  out += m.file;
  out += '\n';
  number_header(out, "Udp-port", m.udp_port);
  number_header(out, "Offset", m.offset);
  out += '\n';
}
void serialize(const transfer& m, std::string& out) {
  out += "TRANSFER ";
  append_number(out, m.id);
  out += '\n';
  number_header(out, "Size", m.size);
  number_header(out, "Offset", m.offset);
  header(out, "Sha256", m.sha256);
  number_header(out, "Udp-port", m.udp_port);
  out += '\n';
}
void serialize(const pause& m, std::string& out) { id_message(out, "PAUSE", m.id); }
void serialize(const resume& m, std::string& out) { id_message(out, "RESUME", m.id); }
void serialize(const cancel& m, std::string& out) { id_message(out, "CANCEL", m.id); }
void serialize(const paused& m, std::string& out) { id_message(out, "PAUSED", m.id); }
void serialize(const resumed& m, std::string& out) { id_message(out, "RESUMED", m.id); }
void serialize(const cancelled& m, std::string& out) { id_message(out, "CANCELLED", m.id); }

void serialize(const message& m, std::string& out) {
  std::visit([&out](const auto& v) { serialize(v, out); }, m);
}

std::string serialize(const message& m) {
  std::string out;
  serialize(m, out);
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

// The decoder is the definition of what a message's bytes mean, so a
// message is writable exactly when its bytes decode back to it, whole.
result<void> check(const message& m, const wire::limits& lim) {
  std::string bytes = serialize(m);
  decoder d(direction_of(m), lim);
  std::string_view in(bytes);
  auto r = d.next(in);
  if (!r) return tl::unexpected<error>(r.error());
  if (!*r || !in.empty() || **r != m) {
    return fail(errc::invalid_argument,
                "a field cannot be written as is (a control character, a blank at either "
                "end, an empty list entry, or a value out of range)");
  }
  return {};
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

bool valid_username(std::string_view name) noexcept {
  if (name.empty() || name.size() > 32) return false;
  for (char c : name) {
    if (!wire::is_alnum(c)) return false;
  }
  return !is_broadcast(name);
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

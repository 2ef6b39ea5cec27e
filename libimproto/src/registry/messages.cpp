#include "improto/registry/messages.hpp"

#include <array>

#include "improto/registry/decoder.hpp"
#include "improto/wire/address.hpp"

#include "improto/wire/text.hpp"

namespace improto::registry {
namespace {

// Blanks and line ends: what may surround a command or separate list items.
constexpr bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

std::string_view trim_space(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Unicode White_Space outside ASCII; C1 controls are refused separately.
constexpr bool is_unicode_space(std::uint32_t cp) noexcept {
  return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

// Decodes one UTF-8 sequence at s[i] (s[i] >= 0x80), strictly: no overlong
// forms, no surrogates, nothing past U+10FFFF. Returns its length (0: bad).
std::size_t decode_utf8(std::string_view s, std::size_t i, std::uint32_t& cp) noexcept {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b0 = byte(i);
  std::size_t len;
  std::uint32_t min;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    len = 2, min = 0x80, cp = b0 & 0x1fu;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    len = 3, min = 0x800, cp = b0 & 0x0fu;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    len = 4, min = 0x10000, cp = b0 & 0x07u;
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    unsigned char b = byte(i + k);
    if ((b & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3fu);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

bool valid_hostname(std::string_view s) noexcept {
  while (true) {
    auto dot = s.find('.');
    std::string_view label = s.substr(0, dot);
    if (label.empty() || label.size() > 63) return false;
    for (char c : label) {
      if (!wire::is_alnum(c) && c != '-' && c != '_') return false;
    }
    if (dot == std::string_view::npos) return true;
    s.remove_prefix(dot + 1);
  }
}

void append_entry(const entry& e, std::string& out) {
  out += e.user;
  out += '@';
  if (e.host.find(':') != std::string::npos) {
    out += '[';
    out += e.host;
    out += ']';
  } else {
    out += e.host;
  }
  out += ':';
  out += std::to_string(e.port);
}

result<void> validate_entry(const entry& e) {
  if (auto r = check_user(e.user); !r) return r;
  if (auto r = check_host(e.host); !r) return r;
  if (e.port == 0) return fail(errc::invalid_argument, "port 0 is not a port");
  return {};
}

// The commands' one table: wire verb (any case on input) and describe() name.
struct command_spelling {
  command_kind kind;
  std::string_view verb;
  std::string_view type;
};
constexpr std::array<command_spelling, 2> commands{{
    {command_kind::register_, "REGISTER", "register"},
    {command_kind::logout, "LOGOUT", "logout"},
}};

const command_spelling& spelling(command_kind k) noexcept {
  return commands[k == command_kind::register_ ? 0 : 1];
}

}  // namespace

std::string_view verb(command_kind k) noexcept { return spelling(k).verb; }

// ------------------------------------------------------------------ names, hosts

result<void> check_user(std::string_view name) {
  if (name.empty()) return fail(errc::invalid_name, "the name is empty");
  if (name.size() > max_name_length) {
    return fail(errc::invalid_name,
                "the name is longer than " + std::to_string(max_name_length) + " bytes");
  }
  for (std::size_t i = 0; i < name.size();) {
    char c = name[i];
    auto u = static_cast<unsigned char>(c);
    if (u < 0x80) {
      if (u <= 0x20 || u == 0x7f || c == ':' || c == '@' || c == ',') {
        return fail(errc::invalid_name, "the name contains '" + wire::escape({&c, 1}) +
                                            "' (no ':', '@', ',', blanks or control characters)");
      }
      ++i;
      continue;
    }
    std::uint32_t cp = 0;
    std::size_t len = decode_utf8(name, i, cp);
    if (len == 0) return fail(errc::invalid_name, "the name is not valid UTF-8");
    if (cp < 0xa0 || is_unicode_space(cp)) {
      return fail(errc::invalid_name, "the name contains a white space or control character");
    }
    i += len;
  }
  return {};
}

bool valid_user(std::string_view name) { return check_user(name).has_value(); }

result<void> check_host(std::string_view host) {
  if (host.empty()) return fail(errc::invalid_argument, "the host is empty");
  if (host.size() > max_host_length) {
    return fail(errc::invalid_argument, "the host is longer than 253 bytes");
  }
  bool ok;
  if (host.find(':') != std::string_view::npos) {
    ok = wire::is_ipv6(host);
  } else if (host.find_first_not_of("0123456789.") == std::string_view::npos) {
    ok = wire::is_ipv4(host);  // all digits and dots: only an address will do
  } else {
    ok = valid_hostname(host);
  }
  if (!ok) return fail(errc::invalid_argument, "'" + wire::escape(host) + "' is not a host");
  return {};
}

// ------------------------------------------------------------------------ entry

result<entry> parse_entry(std::string_view text) {
  auto at = text.rfind('@');
  if (at == std::string_view::npos) {
    return fail(errc::invalid_argument, "'" + wire::escape(text) + "' is not name@host:port");
  }
  std::string_view name = text.substr(0, at);
  if (auto r = check_user(name); !r) return tl::unexpected<error>(std::move(r.error()));
  std::string_view rest = text.substr(at + 1);
  std::string_view host;
  std::string_view port;
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return fail(errc::invalid_argument, "'" + wire::escape(rest) + "' is not [address]:port");
    }
    host = rest.substr(1, close - 1);
    if (host.find(':') == std::string_view::npos) {
      return fail(errc::invalid_argument, "brackets are for IPv6 addresses only");
    }
    port = rest.substr(close + 2);
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      return fail(errc::invalid_argument, "'" + wire::escape(rest) + "' has no :port");
    }
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (auto r = check_host(host); !r) return tl::unexpected<error>(std::move(r.error()));
  auto number = wire::parse_decimal(port, 65535);
  if (!number || *number == 0) {
    return fail(errc::invalid_argument, "port '" + wire::escape(port) + "' is not 1..65535");
  }
  return entry{std::string(name), std::string(host), static_cast<std::uint16_t>(*number)};
}

result<void> serialize(const entry& e, std::string& out) {
  if (auto r = validate_entry(e); !r) return r;
  append_entry(e, out);
  return {};
}

std::string to_string(const entry& e) {
  std::string out;
  append_entry(e, out);
  return out;
}

std::string describe(const entry& e) {
  return wire::describer("entry")
      .text("name", e.user)
      .text("host", e.host)
      .number("port", e.port)
      .str();
}

// ---------------------------------------------------------------------- command

result<command> parse_command(std::string_view body) {
  std::string_view text = trim_space(body);
  if (text.empty()) return fail(errc::unknown_command, "the body has no command");
  auto [word, rest] = wire::split_first(text);
  command c;
  const command_spelling* found = nullptr;
  for (const auto& k : commands) {
    if (wire::iequals(word, k.verb)) found = &k;
  }
  if (found == nullptr) {
    return fail(errc::unknown_command,
                "'" + wire::escape(word.substr(0, 32)) + "' is not REGISTER or LOGOUT");
  }
  c.kind = found->kind;
  if (rest.empty()) {
    return fail(errc::invalid_argument, std::string(verb(c.kind)) + " needs name@host:port");
  }
  auto e = parse_entry(rest);
  if (!e) return tl::unexpected<error>(std::move(e.error()));
  c.entry = std::move(*e);
  return c;
}

result<void> serialize(const command& c, std::string& out) {
  if (auto r = validate_entry(c.entry); !r) return r;
  out += verb(c.kind);
  out += ' ';
  append_entry(c.entry, out);
  return {};
}

std::string describe(const command& c) {
  return wire::describer(spelling(c.kind).type)
      .text("name", c.entry.user)
      .text("host", c.entry.host)
      .number("port", c.entry.port)
      .str();
}

// -------------------------------------------------------------------- user list

result<user_list> parse_list(std::string_view body) {
  user_list list;
  std::size_t i = 0;
  while (i < body.size()) {
    if (body[i] == ',' || is_space(body[i])) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < body.size() && body[end] != ',' && !is_space(body[end])) ++end;
    auto e = parse_entry(body.substr(i, end - i));
    if (!e) {
      return fail(e.error().code(), "entry " + std::to_string(list.entries.size() + 1) +
                                        ": " + e.error().detail());
    }
    list.entries.push_back(std::move(*e));
    i = end;
  }
  return list;
}

result<void> serialize(const user_list& l, std::string& out) {
  for (const auto& e : l.entries) {
    if (auto r = validate_entry(e); !r) return r;
  }
  for (const auto& e : l.entries) {
    append_entry(e, out);
    out += ',';
  }
  return {};
}

result<std::string> serialize_list(std::span<const entry> entries) {
  std::string out;
  for (const auto& e : entries) {
    if (auto r = validate_entry(e); !r) return tl::unexpected<error>(std::move(r.error()));
    append_entry(e, out);
    out += ',';
  }
  return out;
}

std::string describe(const user_list& l) {
  wire::describer d("list");
  d.number("count", l.entries.size());
  for (const auto& e : l.entries) d.text("entry", to_string(e));
  return d.str();
}

// ------------------------------------------------------------------ peer message

result<peer_message> parse_peer_message(std::string_view datagram) {
  if (datagram.size() > max_datagram_size) {
    return fail(errc::datagram_too_large, std::to_string(datagram.size()) + " bytes, at most " +
                                              std::to_string(max_datagram_size));
  }
  auto sep = datagram.find(": ");
  if (sep == std::string_view::npos) {
    return fail(errc::invalid_argument, "a peer message is 'sender: text'");
  }
  std::string_view sender = datagram.substr(0, sep);
  if (auto r = check_user(sender); !r) return tl::unexpected<error>(std::move(r.error()));
  return peer_message{std::string(sender), std::string(datagram.substr(sep + 2))};
}

result<void> serialize(const peer_message& m, std::string& out) {
  std::size_t size = m.sender.size() + 2 + m.text.size();
  if (size > max_datagram_size) {
    return fail(errc::datagram_too_large,
                std::to_string(size) + " bytes, at most " + std::to_string(max_datagram_size));
  }
  if (auto r = check_user(m.sender); !r) return r;
  out += m.sender;
  out += ": ";
  out += m.text;
  return {};
}

std::string describe(const peer_message& m) {
  return wire::describer("peer").text("sender", m.sender).text("text", m.text).str();
}

// ---------------------------------------------------------------------- variant

result<std::string> serialize(const message& m) {
  std::string out;
  auto r = std::visit([&](const auto& v) { return serialize(v, out); }, m);
  if (!r) return tl::unexpected<error>(std::move(r.error()));
  return out;
}

std::string describe(const message& m) {
  return std::visit([](const auto& v) { return describe(v); }, m);
}

}  // namespace improto::registry

// UDP side of protocol 2: SET / GET datagrams and the GET reply.

#include <array>
#include <cstdint>
#include <string>

#include "grammar.hpp"
#include "udp_shape.hpp"
#include "improto/wire/address.hpp"
#include "improto/wire/text.hpp"

namespace improto::buddy {
namespace {

result<void> check_size(std::string_view datagram) {
  if (datagram.size() <= max_datagram) return {};
  return fail(errc::datagram_too_large, std::to_string(datagram.size()) + " bytes, more than " +
                                            std::to_string(max_datagram));
}

// Removes one trailing `\n` or `\r\n`.
std::string_view strip_line_end(std::string_view s) noexcept {
  if (!s.empty() && s.back() == '\n') {
    s.remove_suffix(1);
    if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
  }
  return s;
}

result<std::uint16_t> parse_port(std::string_view word) {
  auto port = wire::parse_decimal(word, 65535);
  if (!port) return fail(errc::invalid_argument, "port " + detail::shown(word) + " is not 0 to 65535");
  return static_cast<std::uint16_t>(*port);
}

result<buddy_entry> parse_buddy_line(std::string_view line) {
  std::array<std::string_view, 4> w;
  if (detail::split_words(line, w) != 4) {
    return fail(errc::invalid_argument,
                "expected 'buddyid status ip port', got " + detail::shown(line));
  }
  if (auto ok = check_user(w[0], "buddyid"); !ok) return tl::unexpected(ok.error());
  auto status = detail::parse_presence(w[1]);
  if (!status) {
    return fail(errc::invalid_argument, "status " + detail::shown(w[1]) + " is not 100 or 101");
  }
  if (!wire::is_ip(w[2])) {
    return fail(errc::invalid_argument, detail::shown(w[2]) + " is not an IP address");
  }
  auto port = parse_port(w[3]);
  if (!port) return tl::unexpected(port.error());
  return buddy_entry{std::string(w[0]), *status, std::string(w[2]), *port};
}

// A presence as the decoders read it: only the enum's two values.
bool valid_presence(presence p) noexcept {
  return p == presence::online || p == presence::offline;
}

result<void> check_presence(presence p) {
  if (valid_presence(p)) return {};
  return fail(errc::invalid_argument,
              "status " + std::to_string(static_cast<unsigned>(p)) + " is not 100 or 101");
}

result<void> check(const set_request& m) {
  if (auto ok = check_user(m.user, "userid"); !ok) return ok;
  if (auto ok = check_presence(m.status); !ok) return ok;
  if (m.status == presence::online && m.msgport == 0) {
    return fail(errc::invalid_argument, "an online user needs a msgport from 1 to 65535");
  }
  return {};
}
result<void> check(const get_request& m) { return check_user(m.user, "userid"); }

void write(const set_request& m, std::string& out) {
  out += detail::wire_word(detail::verb::set);
  out += ' ';
  out += m.user;
  out += ' ';
  wire::append_decimal(out, static_cast<unsigned>(m.status));
  out += ' ';
  wire::append_decimal(out, m.msgport);
}
void write(const get_request& m, std::string& out) {
  out += detail::wire_word(detail::verb::get);
  out += ' ';
  out += m.user;
}

std::size_t line_size(const buddy_entry& b) noexcept {
  return b.user.size() + b.ip.size() + wire::decimal_digits(static_cast<unsigned>(b.status)) +
         wire::decimal_digits(b.port) + 4;  // three spaces and '\n'
}

result<void> check(const buddy_entry& b) {
  if (auto ok = check_user(b.user, "buddyid"); !ok) return ok;
  if (auto ok = check_presence(b.status); !ok) return ok;
  if (!wire::is_ip(b.ip)) {
    return fail(errc::invalid_argument, detail::shown(b.ip) + " is not an IP address");
  }
  return {};
}

}  // namespace

// ------------------------------------------------------------- SET and GET

namespace {

// The three bytes at `p` folded to lower case as an integer (`| 0x20` folds
// exactly the letters it is compared with here).
constexpr std::uint32_t folded3(const char* p) noexcept {
  auto b = [p](int i) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(p[i]) | 0x20);
  };
  return b(0) << 16 | b(1) << 8 | b(2);
}
constexpr std::uint32_t folded_set = folded3("set");
constexpr std::uint32_t folded_get = folded3("get");

}  // namespace

udp_request_view parse_udp_request_view(std::string_view datagram) noexcept {
  udp_request_view r;
  if (detail::read_common_shape(datagram, r)) return r;
  return detail::parse_udp_request_general(datagram);
}

// Not inlined into parse_udp_request_view(), whose common shapes then need
// no saved registers.
[[gnu::noinline]] udp_request_view detail::parse_udp_request_general(
    std::string_view datagram) noexcept {
  udp_request_view r;
  const char* p = datagram.data();
  const char* const end = p + datagram.size();
  while (p != end && classes.is(*p, blank_char)) ++p;
  // The verb: three letters, ended by a blank, a line end or the end.
  if (end - p < 3) return r;
  if (end - p > 3 && !classes.is(p[3], blank_char) && p[3] != '\r' && p[3] != '\n') return r;
  const std::uint32_t verb = folded3(p);
  if (verb == folded_set) {
    r.verb = udp_verb::set;
  } else if (verb == folded_get) {
    r.verb = udp_verb::get;
  } else {
    return r;
  }
  p += 3;
  if (datagram.size() > max_datagram) return r;
  // One trailing line end is allowed; any other line end is in a field or
  // after the last one, where the checks below refuse it.
  const char* e = end;
  if (e != p && e[-1] == '\n') {
    --e;
    if (e != p && e[-1] == '\r') --e;
  }
  // Each field must start after a blank and end at one or at the end:
  // `next_field()` is false when the byte at `p` is neither, and otherwise
  // moves past the blanks (the common case is one space, read once).
  auto next_field = [&p, e]() noexcept {
    if (p == e) return true;
    if (!classes.is(*p, blank_char)) return false;
    do ++p;
    while (p != e && classes.is(*p, blank_char));
    return true;
  };
  if (!next_field()) return r;
  const char* user = p;
  while (p != e && classes.is(*p, user_char)) ++p;
  const auto user_size = static_cast<std::size_t>(p - user);
  if (user_size == 0 || user_size > max_userid || !next_field()) return r;
  if (r.verb == udp_verb::set) {
    // 100 and 101 first, as clients send them; ONLINE and OFFLINE in any case.
    if (e - p >= 3 && p[0] == '1' && p[1] == '0' && (p[2] == '0' || p[2] == '1')) {
      r.status = p[2] == '0' ? presence::online : presence::offline;
      p += 3;
    } else {
      const char* word = p;
      while (p != e && !classes.is(*p, blank_char)) ++p;
      std::string_view w(word, static_cast<std::size_t>(p - word));
      if (wire::iequals(w, "ONLINE")) {
        r.status = presence::online;
      } else if (wire::iequals(w, "OFFLINE")) {
        r.status = presence::offline;
      } else {
        return r;
      }
    }
    if (!next_field()) return r;
    // The port: digits only, leading zeros allowed, at most 65535 (refused
    // as soon as the value passes it, so it cannot wrap).
    const char* digits = p;
    std::uint32_t port = 0;
    while (p != e) {
      const auto digit = static_cast<std::uint32_t>(static_cast<unsigned char>(*p)) - '0';
      if (digit > 9) break;
      port = port * 10 + digit;
      if (port > 65535) return r;
      ++p;
    }
    if (p == digits || !next_field()) return r;
    r.msgport = static_cast<std::uint16_t>(port);
    // Nobody can connect to port 0; going offline needs no port.
    if (r.status == presence::online && r.msgport == 0) return r;
  }
  if (p != e) return r;
  r.user = std::string_view(user, user_size);
  r.valid = true;
  return r;
}

result<udp_request> parse_udp_request(std::string_view datagram) {
  auto v = parse_udp_request_view(datagram);
  if (!v.valid) return detail::parse_udp_request_words(datagram);
  if (v.verb == udp_verb::set) return set_request{std::string(v.user), v.status, v.msgport};
  return get_request{std::string(v.user)};
}

result<udp_request> detail::parse_udp_request_words(std::string_view datagram) {
  if (auto ok = check_size(datagram); !ok) return tl::unexpected(ok.error());
  std::string_view body = strip_line_end(datagram);
  if (body.find('\n') != std::string_view::npos) {
    return fail(errc::invalid_argument, "more than one line in a request datagram");
  }
  std::array<std::string_view, 4> w;
  std::size_t n = detail::split_words(body, w);
  if (n == 0) return fail(errc::malformed_start_line, "empty request datagram");
  using detail::verb;
  if (detail::is_verb(w[0], verb::set)) {
    if (n != 4) return fail(errc::invalid_argument, "expected 'SET userid status msgport'");
    if (auto ok = check_user(w[1], "userid"); !ok) return tl::unexpected(ok.error());
    auto status = detail::parse_presence(w[2]);
    if (!status) {
      return fail(errc::invalid_argument,
                  "status " + detail::shown(w[2]) + " is not 100, 101, ONLINE or OFFLINE");
    }
    auto port = parse_port(w[3]);
    if (!port) return tl::unexpected(port.error());
    // Nobody can connect to port 0; going offline needs no port.
    if (*status == presence::online && *port == 0) {
      return fail(errc::invalid_argument, "an online user needs a msgport from 1 to 65535");
    }
    return set_request{std::string(w[1]), *status, *port};
  }
  if (detail::is_verb(w[0], verb::get)) {
    if (n != 2) return fail(errc::invalid_argument, "expected 'GET userid'");
    if (auto ok = check_user(w[1], "userid"); !ok) return tl::unexpected(ok.error());
    return get_request{std::string(w[1])};
  }
  return fail(errc::unknown_command,
              "unknown request " + detail::shown(w[0]) + "; expected SET or GET");
}

udp_verb udp_verb_of(std::string_view datagram) noexcept {
  // The first word, ended by a blank or a line end, whatever follows it.
  std::size_t begin = 0;
  while (begin < datagram.size() && wire::is_blank(datagram[begin])) ++begin;
  std::size_t end = begin;
  while (end < datagram.size() && !wire::is_blank(datagram[end]) && datagram[end] != '\r' &&
         datagram[end] != '\n') {
    ++end;
  }
  std::string_view first = datagram.substr(begin, end - begin);
  if (detail::is_verb(first, detail::verb::set)) return udp_verb::set;
  if (detail::is_verb(first, detail::verb::get)) return udp_verb::get;
  return udp_verb::none;
}

result<void> serialize(const set_request& m, std::string& out) {
  if (auto ok = check(m); !ok) return ok;
  write(m, out);
  return {};
}
result<void> serialize(const get_request& m, std::string& out) {
  if (auto ok = check(m); !ok) return ok;
  write(m, out);
  return {};
}
result<void> serialize(const udp_request& m, std::string& out) {
  return std::visit([&](const auto& r) { return serialize(r, out); }, m);
}
result<std::string> serialize(const udp_request& m) {
  std::string out;
  if (auto ok = serialize(m, out); !ok) return tl::unexpected(ok.error());
  return out;
}

// ---------------------------------------------------------------- GET reply

result<status_reply> parse_status_reply(std::string_view datagram) {
  if (auto ok = check_size(datagram); !ok) return tl::unexpected(ok.error());
  std::string_view body = strip_line_end(datagram);
  buddy_list list;
  if (body.empty()) return list;
  if (body.find('\n') == std::string_view::npos) {
    // A buddy may be called "202", so an error line is recognised only when
    // the single line is not a buddy line.
    auto entry = parse_buddy_line(body);
    if (entry) {
      list.buddies.push_back(std::move(*entry));
      return list;
    }
    auto error_line = parse_response_line(body);
    if (error_line) return *error_line;
    return tl::unexpected(entry.error());
  }
  std::size_t number = 0;
  while (true) {
    ++number;
    std::size_t nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto entry = parse_buddy_line(line);
    if (!entry) {
      return fail(entry.error().code(),
                  "line " + std::to_string(number) + ": " + entry.error().detail());
    }
    list.buddies.push_back(std::move(*entry));
    if (nl == std::string_view::npos) break;
    body.remove_prefix(nl + 1);
  }
  return list;
}

result<void> serialize(const buddy_list& m, std::string& out) {
  std::size_t size = 0;
  for (const auto& b : m.buddies) {
    if (auto ok = check(b); !ok) return ok;
    size += line_size(b);
  }
  if (size > max_datagram) {
    return fail(errc::datagram_too_large, std::to_string(m.buddies.size()) + " buddies need " +
                                              std::to_string(size) + " bytes, more than " +
                                              std::to_string(max_datagram));
  }
  serialize_unchecked(m, out);
  return {};
}

void serialize_unchecked(const buddy_list& m, std::string& out) {
  std::size_t size = 0;
  for (const auto& b : m.buddies) size += line_size(b);
  out.reserve(out.size() + size);
  for (const auto& b : m.buddies) {
    out += b.user;
    out += ' ';
    wire::append_decimal(out, static_cast<unsigned>(b.status));
    out += ' ';
    out += b.ip;
    out += ' ';
    wire::append_decimal(out, b.port);
    out += '\n';
  }
}

result<void> serialize(const status_reply& m, std::string& out) {
  if (const auto* list = std::get_if<buddy_list>(&m)) return serialize(*list, out);
  const auto& line = std::get<response>(m);
  std::string bytes;
  if (auto ok = serialize(line, bytes); !ok) return ok;
  // A single line that reads as a buddy line is taken for one.
  if (parse_buddy_line(strip_line_end(bytes))) {
    return fail(errc::invalid_argument, "the error line " + detail::shown(bytes) +
                                            " would be read as a buddy line");
  }
  if (auto ok = check_size(bytes); !ok) return ok;
  out += bytes;
  return {};
}

result<std::string> serialize(const status_reply& m) {
  std::string out;
  if (auto ok = serialize(m, out); !ok) return tl::unexpected(ok.error());
  return out;
}

}  // namespace improto::buddy

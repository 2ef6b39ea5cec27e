// UDP side of protocol 2: SET / GET datagrams and the GET reply.

#include <array>
#include <string>

#include "grammar.hpp"
#include "improto/buddy/codec.hpp"
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

// 0-255, no leading zeros ("010" reads as octal to inet_aton).
bool valid_ipv4(std::string_view s) noexcept {
  int parts = 0;
  while (true) {
    std::size_t dot = s.find('.');
    std::string_view part = s.substr(0, dot);
    if (part.empty() || part.size() > 3 || (part.size() > 1 && part[0] == '0')) return false;
    auto value = wire::parse_decimal(part, 255);
    if (!value) return false;
    if (++parts > 4) return false;
    if (dot == std::string_view::npos) break;
    s.remove_prefix(dot + 1);
  }
  return parts == 4;
}

bool is_hex(char c) noexcept {
  char l = wire::to_lower(c);
  return wire::is_digit(c) || (l >= 'a' && l <= 'f');
}

// Colon-separated groups of 1-4 hex digits; the last may be an IPv4 address
// (worth two groups) when `ipv4_tail`. Returns the group count, -1 if bad.
int ipv6_groups(std::string_view s, bool ipv4_tail) noexcept {
  if (s.empty()) return 0;
  int groups = 0;
  while (true) {
    std::size_t colon = s.find(':');
    std::string_view g = s.substr(0, colon);
    if (colon == std::string_view::npos && ipv4_tail && g.find('.') != std::string_view::npos) {
      return valid_ipv4(g) ? groups + 2 : -1;
    }
    if (g.empty() || g.size() > 4) return -1;
    for (char c : g) {
      if (!is_hex(c)) return -1;
    }
    ++groups;
    if (colon == std::string_view::npos) return groups;
    s.remove_prefix(colon + 1);
  }
}

// RFC 4291 text forms, without zone ids.
bool valid_ipv6(std::string_view s) noexcept {
  if (s.size() < 2 || s.size() > 45) return false;
  std::size_t gap = s.find("::");
  if (gap == std::string_view::npos) return ipv6_groups(s, true) == 8;
  if (s.find("::", gap + 1) != std::string_view::npos) return false;
  std::string_view tail = s.substr(gap + 2);
  int head_groups = ipv6_groups(s.substr(0, gap), false);
  int tail_groups = ipv6_groups(tail, true);
  // "::" stands for at least one zero group.
  return head_groups >= 0 && tail_groups >= 0 && head_groups + tail_groups <= 7;
}

bool valid_ip(std::string_view s) noexcept {
  return s.find(':') == std::string_view::npos ? valid_ipv4(s) : valid_ipv6(s);
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
  if (auto ok = detail::check_userid(w[0], "buddyid"); !ok) return tl::unexpected(ok.error());
  auto status = detail::parse_presence(w[1]);
  if (!status) {
    return fail(errc::invalid_argument, "status " + detail::shown(w[1]) + " is not 100 or 101");
  }
  if (!valid_ip(w[2])) {
    return fail(errc::invalid_argument, detail::shown(w[2]) + " is not an IP address");
  }
  auto port = parse_port(w[3]);
  if (!port) return tl::unexpected(port.error());
  return buddy_entry{std::string(w[0]), *status, std::string(w[2]), *port};
}

std::size_t decimal_digits(std::uint64_t n) noexcept {
  std::size_t d = 1;
  while (n >= 10) {
    n /= 10;
    ++d;
  }
  return d;
}

}  // namespace

// ------------------------------------------------------------- SET and GET

result<udp_request> parse_udp_request(std::string_view datagram) {
  if (auto ok = check_size(datagram); !ok) return tl::unexpected(ok.error());
  std::string_view body = strip_line_end(datagram);
  if (body.find('\n') != std::string_view::npos) {
    return fail(errc::invalid_argument, "more than one line in a request datagram");
  }
  std::array<std::string_view, 4> w;
  std::size_t n = detail::split_words(body, w);
  if (n == 0) return fail(errc::malformed_start_line, "empty request datagram");
  if (wire::iequals(w[0], "SET")) {
    if (n != 4) return fail(errc::invalid_argument, "expected 'SET userid status msgport'");
    if (auto ok = detail::check_userid(w[1], "userid"); !ok) return tl::unexpected(ok.error());
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
  if (wire::iequals(w[0], "GET")) {
    if (n != 2) return fail(errc::invalid_argument, "expected 'GET userid'");
    if (auto ok = detail::check_userid(w[1], "userid"); !ok) return tl::unexpected(ok.error());
    return get_request{std::string(w[1])};
  }
  return fail(errc::unknown_command,
              "unknown request " + detail::shown(w[0]) + "; expected SET or GET");
}

void serialize(const set_request& m, std::string& out) {
  out += "SET ";
  out += m.user;
  out += ' ';
  out += std::to_string(static_cast<unsigned>(m.status));
  out += ' ';
  out += std::to_string(m.msgport);
}

void serialize(const get_request& m, std::string& out) {
  out += "GET ";
  out += m.user;
}

std::string serialize(const udp_request& m) {
  std::string out;
  std::visit([&](const auto& r) { serialize(r, out); }, m);
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
    size += b.id.size() + b.ip.size() + decimal_digits(static_cast<unsigned>(b.status)) +
            decimal_digits(b.port) + 4;  // three spaces and '\n'
  }
  if (size > max_datagram) {
    return fail(errc::datagram_too_large, std::to_string(m.buddies.size()) + " buddies need " +
                                              std::to_string(size) + " bytes, more than " +
                                              std::to_string(max_datagram));
  }
  out.reserve(out.size() + size);
  for (const auto& b : m.buddies) {
    out += b.id;
    out += ' ';
    out += std::to_string(static_cast<unsigned>(b.status));
    out += ' ';
    out += b.ip;
    out += ' ';
    out += std::to_string(b.port);
    out += '\n';
  }
  return {};
}

result<std::string> serialize(const status_reply& m) {
  std::string out;
  if (const auto* list = std::get_if<buddy_list>(&m)) {
    if (auto ok = serialize(*list, out); !ok) return tl::unexpected(ok.error());
    return out;
  }
  serialize(std::get<response>(m), out);
  if (auto ok = check_size(out); !ok) return tl::unexpected(ok.error());
  return out;
}

}  // namespace improto::buddy

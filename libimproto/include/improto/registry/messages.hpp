#pragma once

// Protocol 1's payloads, parsed whole (datagram codecs):
//  * entry: `name@host:port`, one registered user;
//  * command: the body of a POST /userlist.txt, `REGISTER entry` or
//    `LOGOUT entry`;
//  * user_list: the body of a GET /userlist.txt answer, `a@h:1,b@h:2,`;
//  * peer_message: one UDP datagram between peers, `sender: text`.
// Parsers take arbitrary bytes and return typed errors; serializers refuse
// (with the same error) what the parsers would reject, so a client learns of
// a bad name before anything is sent.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "improto/error.hpp"

namespace improto::registry {

inline constexpr std::size_t max_name_length = 64;         // bytes
inline constexpr std::size_t max_host_length = 253;        // a DNS name's limit
inline constexpr std::size_t max_datagram_size = 65'507;   // UDP over IPv4

// A user name: 1..64 bytes of UTF-8 without `:` `@` `,` (the list
// separator), white space or control characters (ASCII or Unicode).
// Fails with invalid_name.
result<void> validate_name(std::string_view name);
// A dotted-quad IPv4 address, an IPv6 address (without brackets) or a host
// name of letters, digits, `-` and `_` in dot-separated labels. Fails with
// invalid_argument.
result<void> validate_host(std::string_view host);

struct entry {
  std::string name;
  std::string host;         // IPv6 without the brackets it has on the wire
  std::uint16_t port = 0;   // 1..65535
  bool operator==(const entry&) const = default;
};

// `name@host:port`, IPv6 as `name@[::1]:4000` (bare `name@::1:4000` is
// accepted too: the port follows the last colon). The name runs up to the
// last `@`, so `a@b@h:1` is the invalid name `a@b`.
result<entry> parse_entry(std::string_view text);
result<void> serialize(const entry& e, std::string& out);
std::string to_string(const entry& e);  // serialize() for a valid entry
std::string describe(const entry& e);   // entry name="bob" host="1.2.3.4" port=5

enum class command_kind { register_, logout };

struct command {
  command_kind kind = command_kind::register_;
  registry::entry entry;
  bool operator==(const command&) const = default;
};

// `REGISTER name@ip:port` or `LOGOUT name@ip:port`; the verb in any case,
// blanks and line ends around the command ignored. Errors: unknown_command
// (other verb or empty body), invalid_name, invalid_argument.
result<command> parse_command(std::string_view body);
result<void> serialize(const command& c, std::string& out);
std::string describe(const command& c);  // register name="bob" host=... port=...

struct user_list {
  std::vector<entry> entries;
  bool operator==(const user_list&) const = default;
};

// `a@1.2.3.4:5,b@1.2.3.4:6,`: entries separated by commas; blanks, CR/LF
// and empty items (the trailing comma, the seed server's trailing
// `\r\n\r\n`) are ignored, so an empty body is an empty list. Any bad entry
// fails the whole list with its error.
result<user_list> parse_list(std::string_view body);
// Each entry followed by a comma, exactly as the seed server sends it.
result<void> serialize(const user_list& l, std::string& out);
result<std::string> serialize_list(std::span<const entry> entries);
std::string describe(const user_list& l);  // list count=2 entry="a@..." entry="b@..."

struct peer_message {
  std::string sender;  // a valid name
  std::string text;    // any bytes (UTF-8 by convention), may be empty
  bool operator==(const peer_message&) const = default;
};

// `sender: text`, split at the first `: `. Errors: datagram_too_large over
// max_datagram_size, invalid_argument without `: `, invalid_name.
result<peer_message> parse_peer_message(std::string_view datagram);
result<void> serialize(const peer_message& m, std::string& out);
std::string describe(const peer_message& m);  // peer sender="bob" text="hi"

using message = std::variant<command, user_list, peer_message>;
result<std::string> serialize(const message& m);
std::string describe(const message& m);

}  // namespace improto::registry

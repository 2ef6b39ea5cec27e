#pragma once

// Protocol 2 (seed 002): buddy list and status. Sans-I/O codecs for
//  * the TCP requests to the server (REG / ADD / DEL) and its one-line
//    responses (`200 OK` ...);
//  * the UDP datagrams to the server (SET / GET) and the GET reply (one line
//    per buddy, or an error line);
//  * the direct buddy-to-buddy chat (`CHAT userid`, text lines, `q`, `BUSY`).
// The grammar, with byte-exact examples, is in docs/protocols.md.
//
// Accepting: `\n` or `\r\n` line ends; verbs (REG ADD DEL SET GET) and the
// words ONLINE / OFFLINE in any case; runs of spaces or tabs between fields
// and around the line. Userids are case-sensitive. Chat control lines (CHAT,
// BUSY, q) match exactly, because every other line is free text.
// Sending: one space between fields, upper-case verbs, numeric status,
// `\n` line ends; UDP requests carry no line end (seed servers read the last
// field up to the end of the datagram).
//
// This header: the messages, serialize() and describe(). The decoders and the
// datagram parsers are in decoder.hpp, the response codes in codes.hpp.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "improto/error.hpp"
#include "improto/wire/framing.hpp"

namespace improto::buddy {

inline constexpr std::uint16_t default_tcp_port = 1234;
inline constexpr std::uint16_t default_udp_port = 1235;
inline constexpr std::size_t max_userid = 32;
// The largest UDP payload over IPv4; longer datagrams cannot be sent.
inline constexpr std::size_t max_datagram = 65507;

// A userid: 1 to 32 characters of [A-Za-z0-9_.-], case-sensitive. The one
// copy of the rule (the store and the clients use it too).
bool valid_user(std::string_view id) noexcept;
// valid_user() with an error: invalid_name, `<role> "x" is not 1 to 32
// characters of A-Z a-z 0-9 _ . -` (role: "userid", "buddyid").
result<void> check_user(std::string_view id, std::string_view role = "userid");

enum class presence : std::uint16_t { online = 100, offline = 101 };

// ------------------------------------------------------------- TCP requests

struct register_request {  // REG userid
  std::string user;
  bool operator==(const register_request&) const = default;
};
struct add_request {  // ADD userid buddyid
  std::string user;
  std::string buddy;
  bool operator==(const add_request&) const = default;
};
struct delete_request {  // DEL userid buddyid
  std::string user;
  std::string buddy;
  bool operator==(const delete_request&) const = default;
};
using request = std::variant<register_request, add_request, delete_request>;

// ------------------------------------------------------------ TCP responses

struct response {
  std::uint16_t code = 200;  // 100..999
  std::string text;          // no control characters; may be empty
  bool operator==(const response&) const = default;

  static response ok() { return {200, "OK"}; }
  static response invalid() { return {201, "INVALID"}; }
  static response no_such_user() { return {202, "NO SUCH USER"}; }
  static response user_exists() { return {203, "USER EXISTS"}; }
};

// ------------------------------------------------------------ UDP requests

struct set_request {  // SET userid status msgport
  std::string user;
  presence status = presence::online;
  std::uint16_t msgport = 0;  // 1..65535 when online, 0..65535 when offline
  bool operator==(const set_request&) const = default;
};
struct get_request {  // GET userid
  std::string user;
  bool operator==(const get_request&) const = default;
};
using udp_request = std::variant<set_request, get_request>;

// ---------------------------------------------------------- GET reply (UDP)

struct buddy_entry {  // buddyid status ip port
  std::string user;
  presence status = presence::offline;
  std::string ip = "0.0.0.0";  // IPv4 dotted quad or IPv6 text
  std::uint16_t port = 0;
  bool operator==(const buddy_entry&) const = default;
};
struct buddy_list {
  std::vector<buddy_entry> buddies;  // empty: an empty datagram
  bool operator==(const buddy_list&) const = default;
};
// A GET answer is the list or an error line (202 NO SUCH USER, 201 INVALID).
using status_reply = std::variant<buddy_list, response>;

// --------------------------------------------------------------------- chat

struct chat_hello {  // CHAT userid - the caller's first line
  std::string user;
  bool operator==(const chat_hello&) const = default;
};
struct chat_text {  // one message; any line but the control lines
  std::string line;
  bool operator==(const chat_text&) const = default;
};
struct chat_quit {  // q - ends the chat
  bool operator==(const chat_quit&) const = default;
};
struct chat_busy {  // BUSY - the callee refuses, then closes
  bool operator==(const chat_busy&) const = default;
};
using chat_message = std::variant<chat_hello, chat_text, chat_quit, chat_busy>;

// -------------------------------------------------------------- serializing
// Exact bytes. Each serialize() refuses, appending nothing, a message its
// decoder would reject or read differently: userids that break the rule
// (invalid_name), a response code outside 100..999, text with control
// characters (CR, LF) or outer blanks, a presence outside the enum, an online
// SET without a msgport, a buddy ip that is not an IP address, a chat_text
// `q` (invalid_argument), a datagram over max_datagram (datagram_too_large).
// A chat_text `BUSY` or `CHAT ...` is read as a control line only as the first
// line of a chat: its sender must not start a chat with one.
// serialize_unchecked() writes the fields as they are, for callers whose
// fields are known to be valid.

result<void> serialize(const register_request& m, std::string& out);  // "REG alice\n"
result<void> serialize(const add_request& m, std::string& out);
result<void> serialize(const delete_request& m, std::string& out);
result<void> serialize(const request& m, std::string& out);
result<std::string> serialize(const request& m);
void serialize_unchecked(const request& m, std::string& out);

result<void> serialize(const response& m, std::string& out);  // "200 OK\n"
void serialize_unchecked(const response& m, std::string& out);

result<void> serialize(const set_request& m, std::string& out);  // "SET alice 100 4000"
result<void> serialize(const get_request& m, std::string& out);  // "GET alice"
result<void> serialize(const udp_request& m, std::string& out);
result<std::string> serialize(const udp_request& m);

// "bob 100 1.2.3.4 4000\n" per buddy, or the error line.
result<void> serialize(const buddy_list& m, std::string& out);
void serialize_unchecked(const buddy_list& m, std::string& out);
result<void> serialize(const status_reply& m, std::string& out);
result<std::string> serialize(const status_reply& m);

result<void> serialize(const chat_hello& m, std::string& out);  // "CHAT alice\n"
result<void> serialize(const chat_text& m, std::string& out);   // "hi there\n"
result<void> serialize(const chat_quit& m, std::string& out);   // "q\n"
result<void> serialize(const chat_busy& m, std::string& out);   // "BUSY\n"
result<void> serialize(const chat_message& m, std::string& out);
result<std::string> serialize(const chat_message& m);

// --------------------------------------------------------------- describing
// Stable one-line descriptions (wire::describer), e.g.
//   reg user="alice"                add user="alice" buddy="bob"
//   response code=202 text="NO SUCH USER"
//   set user="alice" status=online msgport=4000
//   buddies n=1 id="bob" status=online ip="1.2.3.4" port=4000  (user is `id`)
//   chat_hello user="alice"         chat_text line="hi"      chat_quit

std::string_view name(presence p) noexcept;  // "online", "offline"

std::string describe(const register_request& m);
std::string describe(const add_request& m);
std::string describe(const delete_request& m);
std::string describe(const request& m);
std::string describe(const response& m);
std::string describe(const set_request& m);
std::string describe(const get_request& m);
std::string describe(const udp_request& m);
std::string describe(const buddy_list& m);
std::string describe(const status_reply& m);
std::string describe(const chat_hello& m);
std::string describe(const chat_text& m);
std::string describe(const chat_quit& m);
std::string describe(const chat_busy& m);
std::string describe(const chat_message& m);

}  // namespace improto::buddy

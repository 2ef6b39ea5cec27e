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

// 1 to 32 characters of [A-Za-z0-9_.-].
bool valid_userid(std::string_view id) noexcept;

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
  std::string id;
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

// ------------------------------------------------------------------ parsing

// One request or response line, without its line end.
result<request> parse_request_line(std::string_view line);
result<response> parse_response_line(std::string_view line);

// Whole datagrams; one trailing `\n` or `\r\n` is tolerated.
result<udp_request> parse_udp_request(std::string_view datagram);
result<status_reply> parse_status_reply(std::string_view datagram);

// TCP requests: a complete line with bad content (malformed_start_line for an
// empty line, unknown_command, invalid_argument, invalid_name) is a non-sticky
// error; line_too_long and truncated are sticky.
class request_decoder {
 public:
  explicit request_decoder(wire::limits lim = {});
  wire::decode_result<request> next(std::string_view& in);
  wire::decode_result<request> finish();
  bool failed() const noexcept { return error_.has_value(); }

 private:
  wire::line_reader lines_;
  std::optional<error> error_;
};

// TCP responses, same error rules (malformed_start_line for a bad line).
class response_decoder {
 public:
  explicit response_decoder(wire::limits lim = {});
  wire::decode_result<response> next(std::string_view& in);
  wire::decode_result<response> finish();
  bool failed() const noexcept { return error_.has_value(); }

 private:
  wire::line_reader lines_;
  std::optional<error> error_;
};

// Either direction of a chat connection. The first line may be `CHAT userid`
// (hello, from the caller) or `BUSY` (from the callee); after it, `CHAT ...`
// and `BUSY` are ordinary text. `q` on any line ends the chat; lines after the
// end are non-sticky invalid_argument errors. A first line that starts with
// the word CHAT but has no single valid userid is a non-sticky error, and the
// chat goes on. Lines with control characters (other than tab) are rejected
// (invalid_argument, non-sticky) so that no peer can drive a terminal.
class chat_decoder {
 public:
  enum class phase {
    opening,  // nothing decoded yet: CHAT and BUSY are control lines
    talking,  // text lines until q
    ended,    // after q or BUSY
  };

  explicit chat_decoder(wire::limits lim = {});
  wire::decode_result<chat_message> next(std::string_view& in);
  wire::decode_result<chat_message> finish();
  bool failed() const noexcept { return error_.has_value(); }
  phase current_phase() const noexcept { return phase_; }

 private:
  result<chat_message> decode_line(std::string_view line);

  wire::line_reader lines_;
  std::optional<error> error_;
  phase phase_ = phase::opening;
};

// -------------------------------------------------------------- serializing
// Exact bytes. A message must hold what its decoder can produce (valid
// userids, text without line breaks or control characters, a chat_text that
// is not `q`, and not `BUSY` / `CHAT ...` as a first line); every decoded
// message does.

void serialize(const register_request& m, std::string& out);  // "REG alice\n"
void serialize(const add_request& m, std::string& out);
void serialize(const delete_request& m, std::string& out);
std::string serialize(const request& m);

void serialize(const response& m, std::string& out);  // "200 OK\n"

void serialize(const set_request& m, std::string& out);  // "SET alice 100 4000"
void serialize(const get_request& m, std::string& out);  // "GET alice"
std::string serialize(const udp_request& m);

// "bob 100 1.2.3.4 4000\n" per buddy, or the error line. Fails with
// datagram_too_large, appending nothing, past max_datagram bytes.
result<void> serialize(const buddy_list& m, std::string& out);
result<std::string> serialize(const status_reply& m);

void serialize(const chat_hello& m, std::string& out);  // "CHAT alice\n"
void serialize(const chat_text& m, std::string& out);   // "hi there\n"
void serialize(const chat_quit& m, std::string& out);   // "q\n"
void serialize(const chat_busy& m, std::string& out);   // "BUSY\n"
std::string serialize(const chat_message& m);

// --------------------------------------------------------------- describing
// Stable one-line descriptions (wire::describer), e.g.
//   reg user="alice"                add user="alice" buddy="bob"
//   response code=202 text="NO SUCH USER"
//   set user="alice" status=online msgport=4000
//   buddies n=1 id="bob" status=online ip="1.2.3.4" port=4000
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

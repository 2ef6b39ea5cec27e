#pragma once

// Protocol 3 (the relay of seed 003) and the TCP part of protocol 4 (the
// messenger extensions: user and file lists, presence, download control).
// Both share one grammar: a verb line, optional `Name: value` header lines,
// a blank line, and a body of exactly `Content-length` bytes when the verb
// carries one. docs/protocols.md (protocols 3 and 4) give every
// message with examples.
//
// All messages live in one variant; which of them may appear depends on the
// direction of the stream (see decoder.hpp).

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "improto/error.hpp"
#include "improto/wire/framing.hpp"

namespace improto::relay {

enum class role { to_send, to_recv };  // TOSEND / TORECV

enum class direction {
  to_server,  // bytes a client sends: REGISTER, SEND, RECEIVED, ERROR, LIST, ...
  to_client,  // bytes a server sends: REGISTERED, SENT, FORWARD, ERROR, USERS, ...
};

// ---------------------------------------------------------------- protocol 3

// REGISTER TOSEND alice\n\n  (client -> server)
struct register_request {
  relay::role role = relay::role::to_send;
  std::string user;
  bool operator==(const register_request&) const = default;
};

// REGISTERED TOSEND alice\n\n  (server -> client)
struct registered {
  relay::role role = relay::role::to_send;
  std::string user;
  bool operator==(const registered&) const = default;
};

// SEND bob\nContent-length: 5\n\nhello  (client -> server; `to` may be ALL)
struct send {
  std::string to;
  std::string body;
  bool operator==(const send&) const = default;
};

// SENT bob\n\n  (server -> client: delivered; the seed's table spells it SEND)
struct sent {
  std::string to;
  bool operator==(const sent&) const = default;
};

// FORWARD alice\nContent-length: 5\n\nhello  (server -> receiving socket)
struct forward {
  std::string from;
  std::string body;
  bool operator==(const forward&) const = default;
};

// RECEIVED alice\n\n  (receiving socket -> server)
struct received {
  std::string from;
  bool operator==(const received&) const = default;
};

// ERROR 102 Unable to send\n\n  (either direction; codes in codes.hpp)
struct error_reply {
  int code = 0;  // three digits, 100..999
  std::string text;
  bool operator==(const error_reply&) const = default;
};

// ---------------------------------------------------------------- protocol 4
// Requests go on the TOSEND socket; each gets exactly one reply, in order.

// LIST USERS\n\n, or with `After: bob` for the page after `bob`.
struct list_users {
  std::string after;  // empty: from the start
  bool operator==(const list_users&) const = default;
};

// USERS\nContent-length: 10\n\nalice\nbob\n  (`More: yes` when a page is cut)
struct user_list {
  std::vector<std::string> users;
  bool more = false;
  bool operator==(const user_list&) const = default;
};

// LIST FILES\n\n, or with `After: name` for the next page.
struct list_files {
  std::string after;
  bool operator==(const list_files&) const = default;
};

struct file_entry {
  std::string name;
  std::uint64_t size = 0;
  bool operator==(const file_entry&) const = default;
};

// FILES\nContent-length: 20\n\n5 hello.txt\n0 a b.txt\n  (size, space, name)
struct file_list {
  std::vector<file_entry> files;
  bool more = false;
  bool operator==(const file_list&) const = default;
};

// SUBSCRIBE PRESENCE\n\n -> SUBSCRIBED PRESENCE\n\n; afterwards the TORECV
// socket also gets JOINED / LEFT notices.
struct subscribe {
  bool operator==(const subscribe&) const = default;
};
struct subscribed {
  bool operator==(const subscribed&) const = default;
};
// UNSUBSCRIBE PRESENCE\n\n -> UNSUBSCRIBED PRESENCE\n\n
struct unsubscribe {
  bool operator==(const unsubscribe&) const = default;
};
struct unsubscribed {
  bool operator==(const unsubscribed&) const = default;
};

// JOINED bob\n\n / LEFT bob\n\n  (server -> TORECV socket of a subscriber;
// never answered)
struct joined {
  std::string user;
  bool operator==(const joined&) const = default;
};
struct left {
  std::string user;
  bool operator==(const left&) const = default;
};

// DOWNLOAD my song.mp3\nUdp-port: 40000\nOffset: 0\n\n
struct download {
  std::string file;
  std::uint16_t udp_port = 0;  // the client's UDP port; its IP is the TCP peer's
  std::uint64_t offset = 0;    // first byte wanted: > 0 resumes a broken transfer
  bool operator==(const download&) const = default;
};

// TRANSFER 7\nSize: 5\nOffset: 0\nSha256: <64 hex>\nUdp-port: 50001\n\n
struct transfer {
  std::uint32_t id = 0;        // names the transfer in PAUSE/RESUME/CANCEL and on UDP
  std::uint64_t size = 0;      // whole file
  std::uint64_t offset = 0;    // first byte the server sends (<= size)
  std::string sha256;          // of the whole file, 64 lowercase hex digits
  std::uint16_t udp_port = 0;  // the server's UDP port for this transfer
  bool operator==(const transfer&) const = default;
};

// PAUSE 7\n\n -> PAUSED 7\n\n, RESUME 7 -> RESUMED 7, CANCEL 7 -> CANCELLED 7
struct pause {
  std::uint32_t id = 0;
  bool operator==(const pause&) const = default;
};
struct resume {
  std::uint32_t id = 0;
  bool operator==(const resume&) const = default;
};
struct cancel {
  std::uint32_t id = 0;
  bool operator==(const cancel&) const = default;
};
struct paused {
  std::uint32_t id = 0;
  bool operator==(const paused&) const = default;
};
struct resumed {
  std::uint32_t id = 0;
  bool operator==(const resumed&) const = default;
};
struct cancelled {
  std::uint32_t id = 0;
  bool operator==(const cancelled&) const = default;
};

using message =
    std::variant<register_request, registered, send, sent, forward, received, error_reply,
                 list_users, user_list, list_files, file_list, subscribe, subscribed,
                 unsubscribe, unsubscribed, joined, left, download, transfer, pause, resume,
                 cancel, paused, resumed, cancelled>;

// ------------------------------------------------------------ serialization
// Exact bytes: `\n` line ends, the header spelled `Content-length` as in the
// seed.
//
// serialize() refuses, appending nothing, a message whose bytes its decoder
// would reject or read differently under `lim`, field by field:
// invalid_argument for a name, text or header value with a control character
// (CR, LF, ...) or a blank at either end, an empty list entry, an error code
// outside 100..999, a zero id or port, a size or offset of 2^63 or more, an
// offset past the size, a sha256 that is not 64 lowercase hex digits;
// line_too_long, too_many_headers and body_too_large past `lim`. Every
// message a decoder returns passes, given room for the canonical form (which
// can be a few bytes longer than what was received, e.g. `After:x` is written
// `After: x`). The decoder does not judge names (ERROR 100 is the server's
// answer), and neither does serialize(): `alice smith` is written as is.
result<void> serialize(const message& m, std::string& out, const wire::limits& lim = {});
result<std::string> serialize(const message& m, const wire::limits& lim = {});

// The same bytes without the checks, for callers whose fields are known to be
// valid (the server's hot paths, benchmarks).
void serialize_unchecked(const message& m, std::string& out);
std::string serialize_unchecked(const message& m);
void serialize_unchecked(const register_request& m, std::string& out);
void serialize_unchecked(const registered& m, std::string& out);
void serialize_unchecked(const send& m, std::string& out);
void serialize_unchecked(const sent& m, std::string& out);
void serialize_unchecked(const forward& m, std::string& out);
void serialize_unchecked(const received& m, std::string& out);
void serialize_unchecked(const error_reply& m, std::string& out);
void serialize_unchecked(const list_users& m, std::string& out);
void serialize_unchecked(const user_list& m, std::string& out);
void serialize_unchecked(const list_files& m, std::string& out);
void serialize_unchecked(const file_list& m, std::string& out);
void serialize_unchecked(const subscribe& m, std::string& out);
void serialize_unchecked(const subscribed& m, std::string& out);
void serialize_unchecked(const unsubscribe& m, std::string& out);
void serialize_unchecked(const unsubscribed& m, std::string& out);
void serialize_unchecked(const joined& m, std::string& out);
void serialize_unchecked(const left& m, std::string& out);
void serialize_unchecked(const download& m, std::string& out);
void serialize_unchecked(const transfer& m, std::string& out);
void serialize_unchecked(const pause& m, std::string& out);
void serialize_unchecked(const resume& m, std::string& out);
void serialize_unchecked(const cancel& m, std::string& out);
void serialize_unchecked(const paused& m, std::string& out);
void serialize_unchecked(const resumed& m, std::string& out);
void serialize_unchecked(const cancelled& m, std::string& out);
// A FORWARD from views (a SEND's body as decoder::next_view() hands it out),
// without the checks.
void serialize_forward(std::string_view from, std::string_view body, std::string& out);

// The direction a message travels in; error_reply goes both ways and gives
// to_client.
direction direction_of(const message& m) noexcept;

// Canonical one-line text, e.g. `send to="bob" body="hello"`; stable (test
// vectors and Python reprs compare it).
std::string describe(const message& m);

std::string_view role_name(role r) noexcept;  // "TOSEND" / "TORECV"

// ---------------------------------------------------------------- validation
// The decoder does not judge names: a malformed user name is answered with
// ERROR 100 by the server and the client may retry on the same connection.

// [A-Za-z0-9]{1,32}, and not ALL in any case (ALL addresses a broadcast).
bool valid_user(std::string_view name) noexcept;
// valid_user() with an error: invalid_name, `user name "x" is not 1 to 32
// letters and digits (or is ALL)`.
result<void> check_user(std::string_view name);
// 1..255 bytes, no `/`, no control character, no blank at either end, not
// `.` or `..`: names a server may list and serve from its one directory.
bool valid_file_name(std::string_view name) noexcept;
// True for the broadcast recipient of `SEND ALL`.
bool is_broadcast(std::string_view recipient) noexcept;

inline constexpr std::string_view broadcast_recipient = "ALL";
// A server keeps each USERS / FILES body within this many bytes (the default
// body limit of a client's decoder) and sets `More: yes` when it cuts a page.
inline constexpr std::size_t max_list_body = 64 * 1024;

}  // namespace improto::relay

#pragma once

// The relay's ERROR codes: the one place where an errc becomes a code and
// back. 100-103 are seed 003's, 104 is the SPEC's
// extension, 105-109 belong to the messenger extensions (protocol 4).
// The code a server answers is chosen here from an errc, or by the server
// from its own state (101, 102, 106, 107).

#include <string_view>

#include "improto/error.hpp"
#include "improto/relay/messages.hpp"

namespace improto::relay {

namespace codes {
inline constexpr int malformed_username = 100;  // REGISTER with a bad name; may retry
inline constexpr int no_user_registered = 101;  // a command before both sockets registered
inline constexpr int unable_to_send = 102;      // no such receiver, it failed or timed out
inline constexpr int header_incomplete = 103;   // framing error; the server closes the socket
inline constexpr int username_taken = 104;      // the name is registered on that kind of socket
inline constexpr int unknown_command = 105;     // a verb the server does not take
inline constexpr int no_such_file = 106;        // DOWNLOAD of a file the server does not serve
inline constexpr int no_such_transfer = 107;    // PAUSE/RESUME/CANCEL of an unknown id
inline constexpr int bad_request = 108;         // known verb, wrong arguments
inline constexpr int server_busy = 109;         // a server bound (e.g. transfers) is reached
}  // namespace codes

// The code a server answers a decode error (or a server-side errc) with:
// framing errors -> 103, unknown_command -> 105, malformed_start_line and
// invalid_argument -> 108, invalid_name -> 100, name_taken -> 104,
// overloaded -> 109, anything else (a delivery failure) -> 102.
int to_wire(errc code) noexcept;

// True when the server must close the socket after answering: the decoder
// cannot find the next message (the seed's "header incomplete" case).
bool closes_connection(int code) noexcept;

// Canonical text, as the server sends it: "Malformed username", ...;
// empty for a code this protocol does not define.
std::string_view wire_text(int code) noexcept;

// ERROR <code> <canonical text>.
error_reply error_for(int code);
error_reply error_for(errc code);

// What a client makes of an ERROR it received: the errc closest to the code
// (100 -> invalid_name, 104 -> name_taken, 106/107 -> not_found,
// 109 -> overloaded, others -> rejected), with the reply as the detail.
error from_wire(const error_reply& reply);

}  // namespace improto::relay

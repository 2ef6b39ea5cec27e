#pragma once

// Protocol 4, UDP part: parsing one datagram. There is no stream: each
// datagram is parsed whole, and any bytes give a datagram or a typed error.

#include <optional>
#include <string_view>

#include "improto/error.hpp"
#include "improto/transfer/messages.hpp"

namespace improto::transfer {

// Errors: truncated (shorter than its type's fixed part or its SACK count),
// unsupported_version (first byte not 1), unknown_command (type not 1..4),
// invalid_argument (id 0, key 0, an empty DATA payload, an offset past
// max_offset, bad SACK ranges as serialize() describes them, bytes after an
// ACK's ranges or after a FIN or ABORT, an unknown abort reason),
// datagram_too_large (over max_datagram). DATA's payload views `bytes`.
result<datagram> parse_datagram(std::string_view bytes);

// The header alone, for a transport that routes datagrams to transfers by id
// before parsing them: nullopt when there are fewer than header_size bytes
// or the version is not ours.
std::optional<header> peek_header(std::string_view bytes) noexcept;

}  // namespace improto::transfer

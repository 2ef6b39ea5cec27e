#pragma once

// Protocol 4, UDP part: the ABORT reasons, the one place where an errc
// becomes a reason and back.

#include "improto/error.hpp"
#include "improto/transfer/messages.hpp"

namespace improto::transfer {

// cancelled -> cancelled; io_error and storage_error -> io_error; anything
// else -> protocol.
abort_reason to_wire(errc code) noexcept;

// What the side that receives an ABORT reports: cancelled ("the peer
// cancelled the transfer"), io_error ("the peer could not read or write the
// file"), invalid_argument ("the peer rejected our datagrams").
error from_wire(abort_reason r);

}  // namespace improto::transfer

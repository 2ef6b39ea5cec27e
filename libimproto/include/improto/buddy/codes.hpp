#pragma once

// Protocol 2's response codes (200 OK, 201 INVALID, 202 NO SUCH USER,
// 203 USER EXISTS): the one place where an errc becomes a response and back.

#include <optional>

#include "improto/buddy/messages.hpp"
#include "improto/error.hpp"

namespace improto::buddy {

// The answer a server gives for a failed request: invalid_argument and
// invalid_name -> 201, not_found -> 202, name_taken -> 203; nullopt for a
// failure the protocol has no code for (the server then does not answer
// rather than send something that could be taken for success).
std::optional<response> to_wire(errc code);

// What a client makes of a response: success for 200; 201
// invalid_argument, 202 not_found, 203 name_taken, any other code
// `rejected`, each with "the server answered '<code> <text>'" as the detail.
result<void> from_wire(const response& r);

}  // namespace improto::buddy

#pragma once

// Protocol 1's status codes: the one place where an errc becomes an HTTP
// status and back.

#include <optional>

#include "improto/error.hpp"

namespace improto::registry {

// The status a server answers an error with: 400 for bad syntax, a bad name
// or argument, 404 not_found, 406 name_taken, 411 missing_content_length,
// 413 body too large, 431 line too long or too many headers, 501 for
// Transfer-Encoding, 503 overloaded, 505 for other HTTP versions, 500 for
// the rest.
int to_wire(errc code) noexcept;

// What a client makes of a final status: nullopt (success) for 2xx; 400
// invalid_argument, 404 not_found, 406 name_taken, 503 overloaded, any
// other status `rejected`.
std::optional<errc> from_wire(int status) noexcept;

}  // namespace improto::registry

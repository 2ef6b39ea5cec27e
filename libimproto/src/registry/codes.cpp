#include "improto/registry/codes.hpp"

namespace improto::registry {

int to_wire(errc code) noexcept {
  switch (code) {
    case errc::malformed_start_line:
    case errc::malformed_header:
    case errc::bad_content_length:
    case errc::truncated:
    case errc::unknown_command:
    case errc::invalid_name:
    case errc::invalid_argument:
      return 400;
    case errc::rejected: return 403;  // a LOGOUT from another address than the registration's
    case errc::not_found: return 404;
    case errc::name_taken: return 406;
    case errc::missing_content_length: return 411;
    case errc::body_too_large: return 413;
    case errc::line_too_long:
    case errc::too_many_headers:
      return 431;
    case errc::unsupported_encoding: return 501;
    case errc::overloaded: return 503;
    case errc::unsupported_version: return 505;
    default: return 500;
  }
}

std::optional<errc> from_wire(int status) noexcept {
  if (status >= 200 && status < 300) return std::nullopt;
  switch (status) {
    case 400: return errc::invalid_argument;
    case 403: return errc::rejected;
    case 404: return errc::not_found;
    case 406: return errc::name_taken;
    case 503: return errc::overloaded;
    default: return errc::rejected;
  }
}

}  // namespace improto::registry

#include "improto/relay/codes.hpp"

#include <string>

namespace improto::relay {

int to_wire(errc code) noexcept {
  switch (code) {
    // The decoder lost the message boundaries: the seed's "header incomplete".
    case errc::line_too_long:
    case errc::too_many_headers:
    case errc::malformed_header:
    case errc::bad_content_length:
    case errc::missing_content_length:
    case errc::body_too_large:
    case errc::truncated:
      return codes::header_incomplete;
    case errc::unknown_command:
      return codes::unknown_command;
    case errc::malformed_start_line:
    case errc::invalid_argument:
    case errc::unsupported_version:
    case errc::unsupported_encoding:
      return codes::bad_request;
    case errc::invalid_name:
      return codes::malformed_username;
    case errc::name_taken:
      return codes::username_taken;
    case errc::overloaded:
      return codes::server_busy;
    default:
      // Everything else is a failure to deliver: no such receiver, it
      // closed, timed out or answered an error.
      return codes::unable_to_send;
  }
}

bool closes_connection(int code) noexcept { return code == codes::header_incomplete; }

std::string_view wire_text(int code) noexcept {
  switch (code) {
    case codes::malformed_username: return "Malformed username";
    case codes::no_user_registered: return "No user registered";
    case codes::unable_to_send: return "Unable to send";
    case codes::header_incomplete: return "Header incomplete";
    case codes::username_taken: return "Username taken";
    case codes::unknown_command: return "Unknown command";
    case codes::no_such_file: return "No such file";
    case codes::no_such_transfer: return "No such transfer";
    case codes::bad_request: return "Bad request";
    case codes::server_busy: return "Server busy";
    default: return {};
  }
}

error_reply error_for(int code) { return error_reply{code, std::string(wire_text(code))}; }

error_reply error_for(errc code) { return error_for(to_wire(code)); }

error from_wire(const error_reply& reply) {
  errc code = errc::rejected;
  switch (reply.code) {
    case codes::malformed_username: code = errc::invalid_name; break;
    case codes::username_taken: code = errc::name_taken; break;
    case codes::no_such_file:
    case codes::no_such_transfer: code = errc::not_found; break;
    case codes::server_busy: code = errc::overloaded; break;
    default: break;
  }
  std::string detail = "ERROR " + std::to_string(reply.code);
  if (!reply.text.empty()) detail += " " + reply.text;
  return error(code, std::move(detail));
}

}  // namespace improto::relay

#include "improto/error.hpp"

namespace improto {
namespace {

struct entry {
  std::string_view name;
  std::string_view text;
};

entry lookup(errc code) noexcept {
  switch (code) {
    case errc::line_too_long: return {"line_too_long", "line too long"};
    case errc::too_many_headers: return {"too_many_headers", "too many header lines"};
    case errc::malformed_header: return {"malformed_header", "malformed header line"};
    case errc::bad_content_length: return {"bad_content_length", "bad content length"};
    case errc::missing_content_length: return {"missing_content_length", "content length missing"};
    case errc::body_too_large: return {"body_too_large", "body too large"};
    case errc::truncated: return {"truncated", "stream ended inside a message"};
    case errc::malformed_start_line: return {"malformed_start_line", "malformed start line"};
    case errc::unknown_command: return {"unknown_command", "unknown command"};
    case errc::invalid_name: return {"invalid_name", "invalid user name"};
    case errc::invalid_argument: return {"invalid_argument", "invalid argument"};
    case errc::unsupported_version: return {"unsupported_version", "unsupported protocol version"};
    case errc::unsupported_encoding: return {"unsupported_encoding", "unsupported transfer encoding"};
    case errc::datagram_too_large: return {"datagram_too_large", "datagram too large"};
    case errc::address_in_use: return {"address_in_use", "address already in use"};
    case errc::connection_refused: return {"connection_refused", "connection refused"};
    case errc::connection_closed: return {"connection_closed", "connection closed"};
    case errc::timeout: return {"timeout", "timed out"};
    case errc::io_error: return {"io_error", "input/output error"};
    case errc::overloaded: return {"overloaded", "overloaded"};
    case errc::storage_error: return {"storage_error", "storage error"};
    case errc::name_taken: return {"name_taken", "name already taken"};
    case errc::not_found: return {"not_found", "not found"};
    case errc::rejected: return {"rejected", "rejected by peer"};
    case errc::invalid_config: return {"invalid_config", "invalid configuration"};
    case errc::cancelled: return {"cancelled", "transfer cancelled"};
    case errc::hash_mismatch: return {"hash_mismatch", "SHA-256 mismatch"};
  }
  return {"unknown", "unknown error"};
}

class category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "improto"; }
  std::string message(int value) const override {
    return std::string(lookup(static_cast<errc>(value)).text);
  }
};

}  // namespace

const std::error_category& category() noexcept {
  static const category_impl instance;
  return instance;
}

std::error_code make_error_code(errc code) noexcept {
  return {static_cast<int>(code), category()};
}

std::string_view describe(errc code) noexcept { return lookup(code).text; }
std::string_view name(errc code) noexcept { return lookup(code).name; }

std::string error::message() const {
  std::string out(describe(code_));
  if (!detail_.empty()) {
    out += ": ";
    out += detail_;
  }
  return out;
}

}  // namespace improto

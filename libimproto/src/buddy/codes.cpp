#include "improto/buddy/codes.hpp"

#include <string>

namespace improto::buddy {

std::optional<response> to_wire(errc code) {
  switch (code) {
    case errc::invalid_argument:
    case errc::invalid_name:
      return response::invalid();
    case errc::not_found:
      return response::no_such_user();
    case errc::name_taken:
      return response::user_exists();
    default:
      return std::nullopt;
  }
}

result<void> from_wire(const response& r) {
  if (r.code == 200) return {};
  std::string said = "the server answered '" + std::to_string(r.code) +
                     (r.text.empty() ? "" : " " + r.text) + "'";
  switch (r.code) {
    case 201: return fail(errc::invalid_argument, said);
    case 202: return fail(errc::not_found, said);
    case 203: return fail(errc::name_taken, said);
    default: return fail(errc::rejected, said);
  }
}

}  // namespace improto::buddy

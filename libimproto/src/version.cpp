#include "improto/version.hpp"

namespace improto {

std::string_view version() noexcept { return IMPROTO_VERSION_STRING; }

}  // namespace improto

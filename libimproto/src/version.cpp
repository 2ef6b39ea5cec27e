#include "improto/version.hpp"

namespace improto {

// IMPROTO_VERSION comes from CMake (libimproto/CMakeLists.txt).
std::string_view version() noexcept { return IMPROTO_VERSION; }

}  // namespace improto

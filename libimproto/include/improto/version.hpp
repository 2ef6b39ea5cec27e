#pragma once

#include <string_view>

namespace improto {

// The library's version, "MAJOR.MINOR.PATCH" as project() in the top-level
// CMakeLists.txt gives it (the one place it is written).
std::string_view version() noexcept;

}  // namespace improto

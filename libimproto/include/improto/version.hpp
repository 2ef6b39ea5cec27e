#pragma once

#include <string_view>

#define IMPROTO_VERSION_STRING "0.1.0"

namespace improto {

std::string_view version() noexcept;

}  // namespace improto

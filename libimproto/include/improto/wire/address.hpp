#pragma once

// IP address text forms, as every protocol here writes them: one rule for
// the registry's entries and the buddy list's addresses.

#include <string_view>

namespace improto::wire {

// A dotted quad, each part 0..255 without leading zeros (inet_aton reads
// "010" as octal).
bool is_ipv4(std::string_view s) noexcept;
// RFC 4291 text form without brackets or zone id: eight groups of 1..4 hex
// digits, one `::` for a run of zero groups, optionally ending in a dotted
// quad worth two groups.
bool is_ipv6(std::string_view s) noexcept;
// is_ipv6 when `s` has a colon, else is_ipv4.
bool is_ip(std::string_view s) noexcept;

}  // namespace improto::wire

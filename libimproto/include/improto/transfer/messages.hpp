#pragma once

// Protocol 4, UDP part: the datagrams of a file download (seed 001's "fast
// reliable UDP"). The grammar, with byte-exact examples, is in
// docs/protocols.md ("Protocol 4 — UDP part"); tests/vectors/transfer/ is its
// executable form.
//
// Every datagram starts with the same 14-byte header, all integers
// big-endian:
//
//   version u8 (= 1) | type u8 | transfer id u32 | key u64
//
// The id is the TRANSFER's (TCP); the key is the per-transfer secret the
// receiver draws at random and announces in its first ACK. A datagram whose
// id or key is not the transfer's is dropped, so a stranger who has not seen
// the key cannot inject data or acknowledgements.
//
//   DATA  (server -> client)  offset u64 | payload (1.. bytes, the rest)
//   ACK   (client -> server)  cumulative u64 | window u32 | delay_us u32 |
//                             flags u8 (bit 0: fin) | count u8 |
//                             count x (start u32 | length u32)  SACK ranges,
//                             start relative to cumulative
//   FIN   (server -> client)  end u64 (the file size; last byte at end - 1) |
//                             last_byte u8 (its value; 0 for an empty file)
//   ABORT (either way)        reason u8 (1 cancelled, 2 io error, 3 protocol)
//
// This header: the messages, serialize() and describe(). parse_datagram() is
// in decoder.hpp, the ABORT reasons <-> errc in codes.hpp.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "improto/error.hpp"

namespace improto::transfer {

inline constexpr std::uint8_t version = 1;
inline constexpr std::size_t header_size = 14;
inline constexpr std::size_t data_header_size = header_size + 8;
inline constexpr std::size_t ack_fixed_size = header_size + 18;
inline constexpr std::size_t sack_range_size = 8;
inline constexpr std::size_t max_sack_ranges = 255;
// The largest UDP payload over IPv4 (seed 001: datagrams up to 64 KiB).
inline constexpr std::size_t max_datagram = 65507;
// The default: fits the IPv6 minimum MTU (1280 - 40 - 8), so a datagram is
// never fragmented on a 1500-byte Ethernet link nor on any IPv6 path.
inline constexpr std::size_t default_datagram = 1232;
// Offsets and sizes are 0..2^63-1, as in the TCP part.
inline constexpr std::uint64_t max_offset = (std::uint64_t{1} << 63) - 1;

enum class type : std::uint8_t { data = 1, ack = 2, fin = 3, abort = 4 };

enum class abort_reason : std::uint8_t {
  cancelled = 1,  // the user cancelled (CANCEL on TCP says the same)
  io_error = 2,   // the file could not be read (server) or written (client)
  protocol = 3,   // the peer sent something impossible (e.g. data past the end)
};

struct header {
  std::uint32_t id = 0;   // 1..2^32-1, the TRANSFER's id
  std::uint64_t key = 0;  // non-zero per-transfer secret
  bool operator==(const header&) const = default;
};

// `payload` views the parsed datagram (or the caller's bytes when
// serializing): valid as long as those bytes are.
struct data {
  header h;
  std::uint64_t offset = 0;
  std::string_view payload;
  bool operator==(const data&) const = default;
};

// [begin, end) in file offsets.
struct byte_range {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  bool operator==(const byte_range&) const = default;
};

struct ack {
  header h;
  std::uint64_t cumulative = 0;  // every byte before it was received
  std::uint32_t window = 0;      // bytes the receiver accepts from cumulative on
  std::uint32_t delay_us = 0;    // how long the receiver held this ACK back
  bool fin = false;              // the receiver has the whole file and the FIN
  std::vector<byte_range> sack;  // ascending, disjoint, not touching, above cumulative
  bool operator==(const ack&) const = default;
};

struct fin {
  header h;
  std::uint64_t end = 0;         // file size; the last byte's offset is end - 1
  std::uint8_t last_byte = 0;    // that byte's value (0 when end == 0)
  bool operator==(const fin&) const = default;
};

struct abort {
  header h;
  abort_reason reason = abort_reason::cancelled;
  bool operator==(const abort&) const = default;
};

using datagram = std::variant<data, ack, fin, abort>;

// ------------------------------------------------------------- serializing
// serialize() refuses, writing nothing, a datagram parse_datagram() would
// reject or read differently: id 0 or key 0, an empty DATA payload, offsets
// past max_offset, SACK ranges that are empty, unordered, touching, not above
// cumulative, or not expressible in 32 bits relative to it, more than
// max_sack_ranges, a FIN with last_byte != 0 for an empty file, an unknown
// abort reason (invalid_argument); more than max_datagram bytes
// (datagram_too_large); a buffer too small for it (invalid_argument).
// Returns the number of bytes written at the start of `out`.
result<std::size_t> serialize(const datagram& d, std::span<char> out);
result<std::string> serialize(const datagram& d);
// Bytes serialize() writes for `d` (whether or not it is valid).
std::size_t serialized_size(const datagram& d) noexcept;

// Writes the 22-byte DATA header only, unchecked, so a sender can read the
// payload from the file straight into out[data_header_size..].
void write_data_header(std::span<char, data_header_size> out, header h,
                       std::uint64_t offset) noexcept;

// One line, e.g. `data id=7 key=0x0123456789abcdef offset=0 length=5 payload="hello"`
// (payloads over 32 bytes are shown by their first 32 and `...`).
std::string describe(const datagram& d);
std::string_view describe(abort_reason r) noexcept;

}  // namespace improto::transfer

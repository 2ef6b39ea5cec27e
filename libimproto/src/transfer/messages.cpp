#include "improto/transfer/messages.hpp"

#include <cstring>
#include <limits>

#include "improto/transfer/codes.hpp"
#include "improto/transfer/decoder.hpp"
#include "improto/wire/text.hpp"

namespace improto::transfer {
namespace {

template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

void put(char*& p, std::uint64_t v, int bytes) noexcept {
  for (int i = bytes - 1; i >= 0; --i) *p++ = static_cast<char>((v >> (8 * i)) & 0xff);
}

std::uint64_t get(const char* p, int bytes) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

type type_of(const datagram& d) noexcept { return static_cast<type>(d.index() + 1); }

const header& header_of(const datagram& d) noexcept {
  return std::visit([](const auto& m) -> const header& { return m.h; }, d);
}

bool valid_reason(std::uint8_t r) noexcept { return r >= 1 && r <= 3; }

result<void> check_header(const header& h) {
  if (h.id == 0) return fail(errc::invalid_argument, "transfer id 0 is never used");
  if (h.key == 0) return fail(errc::invalid_argument, "key 0 is never used");
  return {};
}

result<void> check_sack(std::uint64_t cumulative, const std::vector<byte_range>& sack) {
  if (sack.size() > max_sack_ranges) {
    return fail(errc::invalid_argument, "more than 255 SACK ranges");
  }
  std::uint64_t floor = cumulative;  // each range starts above the previous end
  for (const auto& r : sack) {
    if (r.begin <= floor) {
      return fail(errc::invalid_argument,
                  "SACK range starting at " + std::to_string(r.begin) +
                      " is not above the cumulative offset or the previous range");
    }
    if (r.end <= r.begin) {
      return fail(errc::invalid_argument, "empty SACK range at " + std::to_string(r.begin));
    }
    if (r.end > max_offset) return fail(errc::invalid_argument, "SACK range past 2^63-1");
    if (r.begin - cumulative > std::numeric_limits<std::uint32_t>::max() ||
        r.end - r.begin > std::numeric_limits<std::uint32_t>::max()) {
      return fail(errc::invalid_argument, "SACK range too far from the cumulative offset");
    }
    floor = r.end;
  }
  return {};
}

result<void> check(const datagram& d) {
  if (auto ok = check_header(header_of(d)); !ok) return ok;
  return std::visit(
      overloaded{
          [](const data& m) -> result<void> {
            if (m.payload.empty()) return fail(errc::invalid_argument, "empty DATA payload");
            if (m.offset > max_offset || m.payload.size() > max_offset - m.offset) {
              return fail(errc::invalid_argument, "DATA past offset 2^63-1");
            }
            return {};
          },
          [](const ack& m) -> result<void> {
            if (m.cumulative > max_offset) {
              return fail(errc::invalid_argument, "cumulative offset past 2^63-1");
            }
            return check_sack(m.cumulative, m.sack);
          },
          [](const fin& m) -> result<void> {
            if (m.end > max_offset) return fail(errc::invalid_argument, "FIN end past 2^63-1");
            if (m.end == 0 && m.last_byte != 0) {
              return fail(errc::invalid_argument, "FIN of an empty file with a last byte");
            }
            return {};
          },
          [](const abort& m) -> result<void> {
            if (!valid_reason(static_cast<std::uint8_t>(m.reason))) {
              return fail(errc::invalid_argument, "unknown abort reason");
            }
            return {};
          },
      },
      d);
}

}  // namespace

std::size_t serialized_size(const datagram& d) noexcept {
  return std::visit(overloaded{
                        [](const data& m) { return data_header_size + m.payload.size(); },
                        [](const ack& m) {
                          return ack_fixed_size + sack_range_size * m.sack.size();
                        },
                        [](const fin&) { return header_size + 9; },
                        [](const abort&) { return header_size + 1; },
                    },
                    d);
}

void write_data_header(std::span<char, data_header_size> out, header h,
                       std::uint64_t offset) noexcept {
  char* p = out.data();
  put(p, version, 1);
  put(p, static_cast<std::uint8_t>(type::data), 1);
  put(p, h.id, 4);
  put(p, h.key, 8);
  put(p, offset, 8);
}

result<std::size_t> serialize(const datagram& d, std::span<char> out) {
  if (auto ok = check(d); !ok) return tl::unexpected(ok.error());
  std::size_t size = serialized_size(d);
  if (size > max_datagram) {
    return fail(errc::datagram_too_large,
                std::to_string(size) + " bytes, over the " + std::to_string(max_datagram) +
                    "-byte limit");
  }
  if (out.size() < size) {
    return fail(errc::invalid_argument, "buffer of " + std::to_string(out.size()) +
                                            " bytes for a " + std::to_string(size) +
                                            "-byte datagram");
  }
  char* p = out.data();
  const header& h = header_of(d);
  put(p, version, 1);
  put(p, static_cast<std::uint8_t>(type_of(d)), 1);
  put(p, h.id, 4);
  put(p, h.key, 8);
  std::visit(overloaded{
                 [&](const data& m) {
                   put(p, m.offset, 8);
                   std::memcpy(p, m.payload.data(), m.payload.size());
                 },
                 [&](const ack& m) {
                   put(p, m.cumulative, 8);
                   put(p, m.window, 4);
                   put(p, m.delay_us, 4);
                   put(p, m.fin ? 1 : 0, 1);
                   put(p, m.sack.size(), 1);
                   for (const auto& r : m.sack) {
                     put(p, r.begin - m.cumulative, 4);
                     put(p, r.end - r.begin, 4);
                   }
                 },
                 [&](const fin& m) {
                   put(p, m.end, 8);
                   put(p, m.last_byte, 1);
                 },
                 [&](const abort& m) { put(p, static_cast<std::uint8_t>(m.reason), 1); },
             },
             d);
  return size;
}

result<std::string> serialize(const datagram& d) {
  std::string out(serialized_size(d), '\0');
  return serialize(d, std::span<char>(out)).map([&](std::size_t) { return std::move(out); });
}

std::optional<header> peek_header(std::string_view bytes) noexcept {
  if (bytes.size() < header_size || static_cast<unsigned char>(bytes[0]) != version) {
    return std::nullopt;
  }
  return header{static_cast<std::uint32_t>(get(bytes.data() + 2, 4)), get(bytes.data() + 6, 8)};
}

result<datagram> parse_datagram(std::string_view bytes) {
  if (bytes.size() > max_datagram) {
    return fail(errc::datagram_too_large, std::to_string(bytes.size()) + " bytes");
  }
  if (bytes.empty()) return fail(errc::truncated, "empty datagram");
  if (static_cast<unsigned char>(bytes[0]) != version) {
    return fail(errc::unsupported_version,
                "version " + std::to_string(static_cast<unsigned char>(bytes[0])));
  }
  if (bytes.size() < 2) return fail(errc::truncated, "no type byte");
  auto t = static_cast<unsigned char>(bytes[1]);
  if (t < 1 || t > 4) return fail(errc::unknown_command, "datagram type " + std::to_string(t));
  if (bytes.size() < header_size) return fail(errc::truncated, "header shorter than 14 bytes");
  header h{static_cast<std::uint32_t>(get(bytes.data() + 2, 4)), get(bytes.data() + 6, 8)};
  const char* p = bytes.data() + header_size;
  std::size_t rest = bytes.size() - header_size;
  auto exact = [&](std::size_t need, const char* what) -> result<void> {
    if (rest < need) return fail(errc::truncated, std::string(what) + " is cut short");
    if (rest > need) return fail(errc::invalid_argument, std::string("bytes after the ") + what);
    return {};
  };
  datagram d;
  switch (static_cast<type>(t)) {
    case type::data: {
      if (rest < 8) return fail(errc::truncated, "DATA offset is cut short");
      d = data{h, get(p, 8), bytes.substr(data_header_size)};
      break;
    }
    case type::ack: {
      if (rest < 18) return fail(errc::truncated, "ACK is cut short");
      ack a{h, get(p, 8), static_cast<std::uint32_t>(get(p + 8, 4)),
            static_cast<std::uint32_t>(get(p + 12, 4)), false, {}};
      auto flags = static_cast<unsigned char>(p[16]);
      if ((flags & ~1u) != 0) return fail(errc::invalid_argument, "unknown ACK flags");
      a.fin = (flags & 1u) != 0;
      std::size_t count = static_cast<unsigned char>(p[17]);
      rest -= 18;
      p += 18;
      if (auto ok = exact(count * sack_range_size, "ACK's SACK ranges"); !ok) {
        return tl::unexpected(ok.error());
      }
      a.sack.reserve(count);
      for (std::size_t i = 0; i < count; ++i, p += sack_range_size) {
        std::uint64_t begin = a.cumulative + get(p, 4);
        a.sack.push_back({begin, begin + get(p + 4, 4)});
      }
      d = std::move(a);
      break;
    }
    case type::fin: {
      if (auto ok = exact(9, "FIN"); !ok) return tl::unexpected(ok.error());
      d = fin{h, get(p, 8), static_cast<std::uint8_t>(p[8])};
      break;
    }
    case type::abort: {
      if (auto ok = exact(1, "ABORT"); !ok) return tl::unexpected(ok.error());
      d = abort{h, static_cast<abort_reason>(static_cast<unsigned char>(p[0]))};
      break;
    }
  }
  if (auto ok = check(d); !ok) return tl::unexpected(ok.error());
  return d;
}

std::string_view describe(abort_reason r) noexcept {
  switch (r) {
    case abort_reason::cancelled: return "cancelled";
    case abort_reason::io_error: return "io_error";
    case abort_reason::protocol: return "protocol";
  }
  return "unknown";
}

std::string describe(const datagram& d) {
  static constexpr char digits[] = "0123456789abcdef";
  const header& h = header_of(d);
  std::string key = "0x";
  for (int i = 15; i >= 0; --i) key += digits[(h.key >> (4 * i)) & 0xf];
  std::string head = " id=" + std::to_string(h.id) + " key=" + key;
  return std::visit(
      overloaded{
          [&](const data& m) {
            std::string out = "data" + head + " offset=" + std::to_string(m.offset) +
                              " length=" + std::to_string(m.payload.size()) + " payload=";
            if (m.payload.size() <= 32) {
              out += wire::quote(m.payload);
            } else {
              out += wire::quote(m.payload.substr(0, 32));
              out += "...";
            }
            return out;
          },
          [&](const ack& m) {
            std::string out = "ack" + head + " cumulative=" + std::to_string(m.cumulative) +
                              " window=" + std::to_string(m.window) +
                              " delay_us=" + std::to_string(m.delay_us) +
                              " fin=" + (m.fin ? "yes" : "no") + " sack=";
            if (m.sack.empty()) out += "none";
            for (std::size_t i = 0; i < m.sack.size(); ++i) {
              if (i) out += ',';
              out += std::to_string(m.sack[i].begin) + "-" + std::to_string(m.sack[i].end);
            }
            return out;
          },
          [&](const fin& m) {
            std::string out = "fin" + head + " end=" + std::to_string(m.end) + " last_offset=";
            out += m.end == 0 ? std::string("none") : std::to_string(m.end - 1);
            out += " last_byte=0x";
            out += digits[m.last_byte >> 4];
            out += digits[m.last_byte & 0xf];
            return out;
          },
          [&](const abort& m) {
            return "abort" + head + " reason=" + std::string(describe(m.reason));
          },
      },
      d);
}

abort_reason to_wire(errc code) noexcept {
  switch (code) {
    case errc::cancelled: return abort_reason::cancelled;
    case errc::io_error:
    case errc::storage_error: return abort_reason::io_error;
    default: return abort_reason::protocol;
  }
}

error from_wire(abort_reason r) {
  switch (r) {
    case abort_reason::cancelled: return {errc::cancelled, "the peer cancelled the transfer"};
    case abort_reason::io_error:
      return {errc::io_error, "the peer could not read or write the file"};
    case abort_reason::protocol: break;
  }
  return {errc::invalid_argument, "the peer rejected our datagrams"};
}

}  // namespace improto::transfer

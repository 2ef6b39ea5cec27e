#pragma once

// Helpers shared by the buddy codec's source files (not installed).

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "improto/buddy/decoder.hpp"
#include "improto/buddy/messages.hpp"
#include "improto/wire/framing.hpp"
#include "improto/wire/text.hpp"

namespace improto::buddy::detail {

// Every verb and control line of the protocol, spelled once: the decoders,
// the serializers and describe() read them here.
enum class verb : std::uint8_t { reg, add, del, set, get, chat, busy, quit };

struct spelling {
  std::string_view wire;  // verbs match in any case, chat control lines exactly
  std::string_view type;  // describe()'s name of the message
};

inline constexpr std::array<spelling, 8> spellings{{
    {"REG", "reg"},
    {"ADD", "add"},
    {"DEL", "del"},
    {"SET", "set"},
    {"GET", "get"},
    {"CHAT", "chat_hello"},
    {"BUSY", "chat_busy"},
    {"q", "chat_quit"},
}};

constexpr std::string_view wire_word(verb v) noexcept {
  return spellings[static_cast<std::size_t>(v)].wire;
}
constexpr std::string_view type_name(verb v) noexcept {
  return spellings[static_cast<std::size_t>(v)].type;
}
inline bool is_verb(std::string_view word, verb v) noexcept {
  return wire::iequals(word, wire_word(v));
}

// Splits `line` at runs of blanks, ignoring blanks at both ends. Returns the
// number of words, or N + 1 when there are more than N (the rest unread, so
// a long line costs no more than N words).
template <std::size_t N>
std::size_t split_words(std::string_view line, std::array<std::string_view, N>& words) noexcept {
  std::size_t count = 0;
  line = wire::trim(line);
  while (!line.empty()) {
    if (count == N) return N + 1;
    auto [first, rest] = wire::split_first(line);
    words[count++] = first;
    line = rest;
  }
  return count;
}

// A field for an error detail: quoted, escaped, cut after 40 bytes so that
// a hostile 8 KiB line does not become a 32 KiB message.
std::string shown(std::string_view field);

std::optional<presence> parse_presence(std::string_view word) noexcept;

// One line from `lines` parsed by `parse`. Framing errors become sticky in
// `sticky`; grammar errors from `parse` are returned and forgotten.
template <class Message, class Parse>
wire::decode_result<Message> next_line(wire::line_reader& lines, std::optional<error>& sticky,
                                       std::string_view& in, Parse&& parse) {
  if (sticky) return tl::unexpected<error>(*sticky);
  // An empty view may hold a null pointer, which line_reader would pass to
  // memchr; with no bytes there is no line to find anyway.
  if (in.empty()) return std::optional<Message>{};
  auto line = lines.next(in);
  if (!line) {
    sticky = line.error();
    return tl::unexpected<error>(*sticky);
  }
  if (!*line) return std::optional<Message>{};
  auto message = parse(**line);
  if (!message) return tl::unexpected<error>(std::move(message.error()));
  return std::optional<Message>(std::move(*message));
}

// End of stream: a clean end between lines, else a sticky `truncated`, since
// a request cut short ("REG ali" of "REG alice") must not be acted on.
template <class Message>
wire::decode_result<Message> finish_lines(wire::line_reader& lines, std::optional<error>& sticky) {
  if (sticky) return tl::unexpected<error>(*sticky);
  auto line = lines.finish();
  if (!line) {
    sticky = line.error();
    return tl::unexpected<error>(*sticky);
  }
  if (!*line) return std::optional<Message>{};
  sticky.emplace(errc::truncated, "stream ended before the end of a line");
  return tl::unexpected<error>(*sticky);
}

}  // namespace improto::buddy::detail

// Buddy-to-buddy chat over direct TCP: `CHAT userid`, text lines, `q`, `BUSY`.

#include <array>
#include <string>

#include "grammar.hpp"
#include "improto/wire/text.hpp"

namespace improto::buddy {

chat_decoder::chat_decoder(wire::limits lim) : lines_(lim.max_line) {}

wire::decode_result<chat_message> chat_decoder::next(std::string_view& in) {
  return detail::next_line<chat_message>(lines_, error_, in,
                                         [this](std::string_view line) { return decode_line(line); });
}

wire::decode_result<chat_message> chat_decoder::finish() {
  return detail::finish_lines<chat_message>(lines_, error_);
}

result<chat_message> chat_decoder::decode_line(std::string_view line) {
  if (phase_ == phase::ended) {
    return fail(errc::invalid_argument, "line after the chat ended (q or BUSY)");
  }
  if (phase_ == phase::opening) {
    phase_ = phase::talking;
    using detail::verb;
    if (line == detail::wire_word(verb::busy)) {
      phase_ = phase::ended;
      return chat_busy{};
    }
    if (wire::split_first(line).first == detail::wire_word(verb::chat)) {
      std::array<std::string_view, 2> w;
      if (detail::split_words(line, w) != 2) {
        return fail(errc::invalid_argument, "expected 'CHAT userid' as the first line");
      }
      if (auto ok = check_user(w[1], "userid"); !ok) return tl::unexpected(ok.error());
      return chat_hello{std::string(w[1])};
    }
  }
  if (line == detail::wire_word(detail::verb::quit)) {
    phase_ = phase::ended;
    return chat_quit{};
  }
  for (char c : line) {
    if (wire::is_ctl(c)) {
      return fail(errc::invalid_argument, "control character in a chat line");
    }
  }
  return chat_text{std::string(line)};
}

result<void> serialize(const chat_hello& m, std::string& out) {
  if (auto ok = check_user(m.user, "userid"); !ok) return ok;
  out += detail::wire_word(detail::verb::chat);
  out += ' ';
  out += m.user;
  out += '\n';
  return {};
}

result<void> serialize(const chat_text& m, std::string& out) {
  if (wire::has_ctl(m.line)) {
    return fail(errc::invalid_argument, "control character (CR, LF, ...) in a chat line");
  }
  if (m.line == detail::wire_word(detail::verb::quit)) {
    return fail(errc::invalid_argument, "a chat line 'q' would end the chat; send chat_quit");
  }
  out += m.line;
  out += '\n';
  return {};
}

result<void> serialize(const chat_quit&, std::string& out) {
  out += detail::wire_word(detail::verb::quit);
  out += '\n';
  return {};
}

result<void> serialize(const chat_busy&, std::string& out) {
  out += detail::wire_word(detail::verb::busy);
  out += '\n';
  return {};
}

result<void> serialize(const chat_message& m, std::string& out) {
  return std::visit([&](const auto& c) { return serialize(c, out); }, m);
}

result<std::string> serialize(const chat_message& m) {
  std::string out;
  if (auto ok = serialize(m, out); !ok) return tl::unexpected(ok.error());
  return out;
}

}  // namespace improto::buddy

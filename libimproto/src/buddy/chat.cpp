// Buddy-to-buddy chat over direct TCP: `CHAT userid`, text lines, `q`, `BUSY`.

#include <array>
#include <string>

#include "grammar.hpp"
#include "improto/buddy/codec.hpp"
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
    if (line == "BUSY") {
      phase_ = phase::ended;
      return chat_busy{};
    }
    if (wire::split_first(line).first == "CHAT") {
      std::array<std::string_view, 2> w;
      if (detail::split_words(line, w) != 2) {
        return fail(errc::invalid_argument, "expected 'CHAT userid' as the first line");
      }
      if (auto ok = detail::check_userid(w[1], "userid"); !ok) return tl::unexpected(ok.error());
      return chat_hello{std::string(w[1])};
    }
  }
  if (line == "q") {
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

void serialize(const chat_hello& m, std::string& out) {
  out += "CHAT ";
  out += m.user;
  out += '\n';
}

void serialize(const chat_text& m, std::string& out) {
  out += m.line;
  out += '\n';
}

void serialize(const chat_quit&, std::string& out) { out += "q\n"; }
void serialize(const chat_busy&, std::string& out) { out += "BUSY\n"; }

std::string serialize(const chat_message& m) {
  std::string out;
  std::visit([&](const auto& c) { serialize(c, out); }, m);
  return out;
}

}  // namespace improto::buddy

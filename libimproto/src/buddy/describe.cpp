// describe(): the stable one-line text of every protocol 2 message.

#include <string>

#include "grammar.hpp"
#include "improto/wire/text.hpp"

namespace improto::buddy {
namespace {

// A value outside the enum (only a hand-built message can hold one) shows
// as its number, so describe() never hides what would be sent.
wire::describer& add_status(wire::describer& d, presence p) {
  std::string_view n = name(p);
  if (n.empty()) return d.number("status", static_cast<std::uint64_t>(p));
  return d.word("status", n);
}

}  // namespace

std::string_view name(presence p) noexcept {
  switch (p) {
    case presence::online: return "online";
    case presence::offline: return "offline";
  }
  return {};
}

std::string describe(const register_request& m) {
  return wire::describer(detail::type_name(detail::verb::reg)).text("user", m.user).str();
}
std::string describe(const add_request& m) {
  return wire::describer(detail::type_name(detail::verb::add))
      .text("user", m.user)
      .text("buddy", m.buddy)
      .str();
}
std::string describe(const delete_request& m) {
  return wire::describer(detail::type_name(detail::verb::del))
      .text("user", m.user)
      .text("buddy", m.buddy)
      .str();
}
std::string describe(const request& m) {
  return std::visit([](const auto& r) { return describe(r); }, m);
}

std::string describe(const response& m) {
  return wire::describer("response").number("code", m.code).text("text", m.text).str();
}

std::string describe(const set_request& m) {
  wire::describer d(detail::type_name(detail::verb::set));
  d.text("user", m.user);
  add_status(d, m.status);
  return d.number("msgport", m.msgport).str();
}
std::string describe(const get_request& m) {
  return wire::describer(detail::type_name(detail::verb::get)).text("user", m.user).str();
}
std::string describe(const udp_request& m) {
  return std::visit([](const auto& r) { return describe(r); }, m);
}

std::string describe(const buddy_list& m) {
  wire::describer d("buddies");
  d.number("n", m.buddies.size());
  for (const auto& b : m.buddies) {
    d.text("id", b.user);
    add_status(d, b.status);
    d.text("ip", b.ip).number("port", b.port);
  }
  return d.str();
}
std::string describe(const status_reply& m) {
  return std::visit([](const auto& r) { return describe(r); }, m);
}

std::string describe(const chat_hello& m) {
  return wire::describer(detail::type_name(detail::verb::chat)).text("user", m.user).str();
}
std::string describe(const chat_text& m) {
  return wire::describer("chat_text").text("line", m.line).str();
}
std::string describe(const chat_quit&) {
  return wire::describer(detail::type_name(detail::verb::quit)).str();
}
std::string describe(const chat_busy&) {
  return wire::describer(detail::type_name(detail::verb::busy)).str();
}
std::string describe(const chat_message& m) {
  return std::visit([](const auto& c) { return describe(c); }, m);
}

}  // namespace improto::buddy

#pragma once

// The relay protocol's words, spelled once: the decoder, the serializers and
// describe() read them here (not installed).

#include <array>
#include <cstdint>
#include <limits>
#include <string_view>

namespace improto::relay::detail {

enum class verb : std::uint8_t {
  unknown,
  send, forward, received, sent, register_, registered, error,
  list, users, files, subscribe, subscribed, unsubscribe, unsubscribed, joined, left,
  download, transfer, pause, resume, cancel, paused, resumed, cancelled,
};

struct verb_entry {
  std::string_view word;
  verb v;
  bool to_server;  // may appear in bytes a client sends
  bool to_client;  // may appear in bytes a server sends
};

// SEND and FORWARD first: they are the bulk of the traffic.
inline constexpr std::array<verb_entry, 24> verbs{{
    {"SEND", verb::send, true, true},  // to a client only as the seed's spelling of SENT
    {"FORWARD", verb::forward, false, true},
    {"RECEIVED", verb::received, true, false},
    {"SENT", verb::sent, false, true},
    {"REGISTER", verb::register_, true, false},
    {"REGISTERED", verb::registered, false, true},
    {"ERROR", verb::error, true, true},
    {"LIST", verb::list, true, false},
    {"USERS", verb::users, false, true},
    {"FILES", verb::files, false, true},
    {"SUBSCRIBE", verb::subscribe, true, false},
    {"SUBSCRIBED", verb::subscribed, false, true},
    {"UNSUBSCRIBE", verb::unsubscribe, true, false},
    {"UNSUBSCRIBED", verb::unsubscribed, false, true},
    {"JOINED", verb::joined, false, true},
    {"LEFT", verb::left, false, true},
    {"DOWNLOAD", verb::download, true, false},
    {"TRANSFER", verb::transfer, false, true},
    {"PAUSE", verb::pause, true, false},
    {"RESUME", verb::resume, true, false},
    {"CANCEL", verb::cancel, true, false},
    {"PAUSED", verb::paused, false, true},
    {"RESUMED", verb::resumed, false, true},
    {"CANCELLED", verb::cancelled, false, true},
}};

constexpr const verb_entry* find_verb(std::string_view word) noexcept {
  for (const auto& e : verbs) {
    if (e.word == word) return &e;
  }
  return nullptr;
}

constexpr std::string_view word(verb v) noexcept {
  for (const auto& e : verbs) {
    if (e.v == v) return e.word;
  }
  return {};
}

// Arguments and header names.
inline constexpr std::string_view to_send_word = "TOSEND";
inline constexpr std::string_view to_recv_word = "TORECV";
inline constexpr std::string_view users_word = "USERS";    // LIST USERS
inline constexpr std::string_view files_word = "FILES";    // LIST FILES
inline constexpr std::string_view presence_word = "PRESENCE";
namespace header {
inline constexpr std::string_view content_length = "Content-length";  // the seed's spelling
inline constexpr std::string_view more = "More";
inline constexpr std::string_view after = "After";
inline constexpr std::string_view udp_port = "Udp-port";
inline constexpr std::string_view offset = "Offset";
inline constexpr std::string_view size = "Size";
inline constexpr std::string_view sha256 = "Sha256";
}  // namespace header

// Sizes and offsets stay below 2^63 so that they fit a signed off_t.
inline constexpr auto max_size =
    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

}  // namespace improto::relay::detail

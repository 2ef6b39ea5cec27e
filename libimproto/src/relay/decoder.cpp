#include "improto/relay/decoder.hpp"

#include <array>
#include <cstdint>
#include <limits>

#include "../wire/scan.hpp"
#include "improto/wire/text.hpp"
#include "verbs.hpp"

namespace improto::relay {
namespace {

using namespace detail;

tl::unexpected<error> bad_line(std::string detail) {
  return tl::unexpected<error>(error(errc::malformed_start_line, std::move(detail)));
}
tl::unexpected<error> bad_arg(std::string detail) {
  return tl::unexpected<error>(error(errc::invalid_argument, std::move(detail)));
}

// The one word after the verb, nothing after it.
result<std::string_view> only_word(std::string_view verb_word, std::string_view rest,
                                   std::string_view what) {
  auto [word, extra] = wire::split_first(rest);
  if (word.empty()) {
    return bad_line(std::string(verb_word) + " needs " + std::string(what));
  }
  if (!extra.empty()) {
    return bad_line(std::string(verb_word) + " takes only " + std::string(what));
  }
  return word;
}

result<std::uint32_t> transfer_id(std::string_view verb_word, std::string_view rest) {
  auto word = only_word(verb_word, rest, "a transfer id");
  if (!word) return tl::unexpected<error>(word.error());
  auto id = wire::parse_decimal(*word, std::numeric_limits<std::uint32_t>::max());
  if (!id || *id == 0) {
    return bad_arg("transfer id '" + wire::escape(*word) + "' is not a number in 1..4294967295");
  }
  return static_cast<std::uint32_t>(*id);
}

result<void> presence_topic(std::string_view verb_word, std::string_view rest) {
  auto word = only_word(verb_word, rest, "a topic");
  if (!word) return tl::unexpected<error>(word.error());
  if (*word != presence_word) {
    return bad_arg("unknown topic '" + wire::escape(*word) + "' (only PRESENCE)");
  }
  return {};
}

result<relay::role> parse_role(std::string_view word) {
  if (word == to_send_word) return role::to_send;
  if (word == to_recv_word) return role::to_recv;
  return bad_arg("role '" + wire::escape(word) + "' is neither TOSEND nor TORECV");
}

std::string_view find_or_empty(const wire::frame_reader& r, std::string_view name) {
  auto v = r.find(name);
  return v ? *v : std::string_view();
}

result<std::uint64_t> number_header(const wire::frame_reader& r, std::string_view name,
                                    std::uint64_t min, std::uint64_t max) {
  auto v = r.find(name);
  if (!v) return bad_arg("header " + std::string(name) + " missing");
  auto n = wire::parse_decimal(*v, max);
  if (!n || *n < min) {
    return bad_arg("header " + std::string(name) + " '" + wire::escape(*v) +
                   "' is not a number in " + std::to_string(min) + ".." + std::to_string(max));
  }
  return *n;
}

result<std::string> sha256_header(const wire::frame_reader& r) {
  auto v = r.find(header::sha256);
  if (!v) return bad_arg("header Sha256 missing");
  bool hex = v->size() == 64;
  std::string out(*v);
  for (char& c : out) {
    c = wire::to_lower(c);
    if (!wire::is_digit(c) && (c < 'a' || c > 'f')) hex = false;
  }
  if (!hex) return bad_arg("Sha256 '" + wire::escape(*v) + "' is not 64 hex digits");
  return out;
}

result<bool> more_header(const wire::frame_reader& r) {
  auto v = r.find(header::more);
  if (!v || wire::iequals(*v, "no")) return false;
  if (wire::iequals(*v, "yes")) return true;
  return bad_arg("header More '" + wire::escape(*v) + "' is neither yes nor no");
}

// A list body: one entry per line, `\n` or `\r\n`, the last line end optional.
template <class Entry>
result<void> for_each_line(std::string_view body, Entry entry) {
  while (!body.empty()) {
    auto nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body.remove_prefix(nl == std::string_view::npos ? body.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    line = wire::trim(line);
    if (line.empty()) return bad_arg("empty line in a list body");
    if (wire::has_ctl(line)) return bad_arg("control character in a list body");
    if (auto r = entry(line); !r) return r;
  }
  return {};
}

result<void> parse_users(const wire::frame_reader& r, user_list& m) {
  auto more = more_header(r);
  if (!more) return tl::unexpected<error>(more.error());
  m.more = *more;
  return for_each_line(r.body(), [&](std::string_view line) -> result<void> {
    m.users.emplace_back(line);
    return {};
  });
}

result<void> parse_files(const wire::frame_reader& r, file_list& m) {
  auto more = more_header(r);
  if (!more) return tl::unexpected<error>(more.error());
  m.more = *more;
  return for_each_line(r.body(), [&](std::string_view line) -> result<void> {
    auto [size_word, name] = wire::split_first(line);
    auto size = wire::parse_decimal(size_word, max_size);
    if (!size) return bad_arg("file size '" + wire::escape(size_word) + "' is not a number");
    if (name.empty()) return bad_arg("file entry without a name");
    m.files.push_back({std::string(name), *size});
    return {};
  });
}

// Stores a parsed message where the decoder keeps it until it is delivered,
// so it is moved once more, not once per step.
template <class T>
result<void> put(message& out, T&& m) {
  out.emplace<std::decay_t<T>>(std::forward<T>(m));
  return {};
}

// The message a head stands for, without its body, into `out`. `rest` is
// the start line after the verb, leading blanks removed.
result<void> parse_head(verb v, std::string_view word, std::string_view rest,
                        const wire::frame_reader& r, message& out) {
  // Names are the rest of the line: a user name with a blank in it reaches
  // the server, which answers ERROR 100 rather than a grammar error.
  auto name = [rest] { return std::string(wire::trim(rest)); };
  switch (v) {
    case verb::register_:
    case verb::registered: {
      auto [role_word, user] = wire::split_first(rest);
      if (role_word.empty()) return bad_line(std::string(word) + " needs a role and a user name");
      auto role = parse_role(role_word);
      if (!role) return tl::unexpected<error>(role.error());
      std::string name_arg(wire::trim(user));
      if (v == verb::register_) return put(out, register_request{*role, std::move(name_arg)});
      return put(out, registered{*role, std::move(name_arg)});
    }
    case verb::send:
      if (auto* s = std::get_if<relay::send>(&out)) {
        // A recycled SEND: its strings keep their capacity.
        // clear() + append(): a plain copy, where assign() takes the
        // general aliasing-safe replace.
        s->to.clear();
        s->to.append(wire::trim(rest));
        s->body.clear();
        return {};
      }
      return put(out, relay::send{name(), {}});
    case verb::sent:
      return put(out, sent{name()});
    case verb::forward:
      return put(out, forward{name(), {}});
    case verb::received:
      return put(out, received{name()});
    case verb::joined:
      return put(out, joined{name()});
    case verb::left:
      return put(out, left{name()});
    case verb::error: {
      auto [code_word, text] = wire::split_first(rest);
      if (code_word.empty()) return bad_line("ERROR needs a code");
      if (code_word.size() != 3 || code_word[0] == '0' || !wire::parse_decimal(code_word)) {
        return bad_arg("error code '" + wire::escape(code_word) +
                       "' is not three digits 100..999");
      }
      return put(out, error_reply{static_cast<int>(*wire::parse_decimal(code_word)),
                                  std::string(wire::trim(text))});
    }
    case verb::list: {
      auto what = only_word(word, rest, "USERS or FILES");
      if (!what) return tl::unexpected<error>(what.error());
      std::string after(find_or_empty(r, header::after));
      if (*what == users_word) return put(out, list_users{std::move(after)});
      if (*what == files_word) return put(out, list_files{std::move(after)});
      return bad_arg("LIST of '" + wire::escape(*what) + "' (only USERS or FILES)");
    }
    case verb::users:
    case verb::files:
      if (!rest.empty()) return bad_line(std::string(word) + " takes no argument");
      // The entries come with the body.
      if (v == verb::users) return put(out, user_list{});
      return put(out, file_list{});
    case verb::subscribe:
    case verb::subscribed:
    case verb::unsubscribe:
    case verb::unsubscribed: {
      if (auto t = presence_topic(word, rest); !t) return tl::unexpected<error>(t.error());
      if (v == verb::subscribe) return put(out, subscribe{});
      if (v == verb::subscribed) return put(out, subscribed{});
      if (v == verb::unsubscribe) return put(out, unsubscribe{});
      return put(out, unsubscribed{});
    }
    case verb::download: {
      auto port = number_header(r, header::udp_port, 1, 65535);
      if (!port) return tl::unexpected<error>(port.error());
      std::uint64_t offset = 0;
      if (r.find(header::offset)) {
        auto o = number_header(r, header::offset, 0, max_size);
        if (!o) return tl::unexpected<error>(o.error());
        offset = *o;
      }
      return put(out, download{name(), static_cast<std::uint16_t>(*port), offset});
    }
    case verb::transfer: {
      auto id = transfer_id(word, rest);
      if (!id) return tl::unexpected<error>(id.error());
      auto size = number_header(r, header::size, 0, max_size);
      if (!size) return tl::unexpected<error>(size.error());
      auto offset = number_header(r, header::offset, 0, *size);
      if (!offset) return tl::unexpected<error>(offset.error());
      auto sha = sha256_header(r);
      if (!sha) return tl::unexpected<error>(sha.error());
      auto port = number_header(r, header::udp_port, 1, 65535);
      if (!port) return tl::unexpected<error>(port.error());
      return put(out, transfer{*id, *size, *offset, std::move(*sha),
                               static_cast<std::uint16_t>(*port)});
    }
    case verb::pause:
    case verb::resume:
    case verb::cancel:
    case verb::paused:
    case verb::resumed:
    case verb::cancelled: {
      auto id = transfer_id(word, rest);
      if (!id) return tl::unexpected<error>(id.error());
      switch (v) {
        case verb::pause: return put(out, pause{*id});
        case verb::resume: return put(out, resume{*id});
        case verb::cancel: return put(out, cancel{*id});
        case verb::paused: return put(out, paused{*id});
        case verb::resumed: return put(out, resumed{*id});
        default: return put(out, cancelled{*id});
      }
    }
    case verb::unknown:
      break;
  }
  return tl::unexpected<error>(error(errc::unknown_command, "unknown verb"));
}

}  // namespace

decoder::decoder(direction dir, wire::limits lim) : reader_(lim), dir_(dir) {}

wire::decode_result<message> decoder::fail_sticky(error e) {
  failure_.emplace(std::move(e));
  return tl::unexpected<error>(*failure_);
}

wire::decode_result<message> decoder::deliver() {
  reader_.reset();
  if (refused_) {
    error e = std::move(*refused_);
    refused_.reset();
    return tl::unexpected<error>(std::move(e));
  }
  return wire::decode_result<message>(tl::in_place, std::move(pending_));
}

wire::decode_result<message> decoder::next(std::string_view& in) {
  if (failure_) return tl::unexpected<error>(*failure_);
  while (true) {
    auto ev = reader_.next(in);
    if (!ev) return fail_sticky(ev.error());
    switch (*ev) {
      case wire::frame_reader::event::need_more:
        return std::nullopt;
      case wire::frame_reader::event::head: {
        auto r = on_head();
        if (!r || *r) return r;
        break;  // a body follows
      }
      case wire::frame_reader::event::body:
        return on_body();
    }
  }
}

wire::decode_result<message> decoder::finish() {
  if (failure_) return tl::unexpected<error>(*failure_);
  auto ev = reader_.finish();
  if (!ev) return fail_sticky(ev.error());
  // No relay body runs to the end of the stream, so a clean finish is a
  // message boundary.
  return std::nullopt;
}

namespace {

// The start line's first word and the rest without its leading blanks, as
// wire::split_first() splits them, inline: it runs once per message.
std::pair<std::string_view, std::string_view> split_verb(std::string_view line) noexcept {
  std::size_t i = 0;
  while (i < line.size() && !wire::is_blank(line[i])) ++i;
  std::size_t j = i;
  while (j < line.size() && wire::is_blank(line[j])) ++j;
  return {line.substr(0, i), line.substr(j)};
}

// wire::has_ctl(), a vector at a time.
bool has_ctl_fast(std::string_view s) noexcept {
  const char* p = s.data();
  const char* end = p + s.size();
  for (;;) {
    p = wire::detail::find_ctl(p, end);
    if (p == end) return false;
    if (*p != '\t') return true;
    ++p;
  }
}

}  // namespace

wire::decode_result<message> decoder::on_head() {
  std::string_view line = reader_.start_line();
  auto [word, rest] = split_verb(line);
  const verb_entry* entry = find_verb(word);

  if (reader_.content_length_bad()) return fail_sticky(reader_.content_length().error());
  bool declared = reader_.has_content_length();

  // Framing first: it is decided by the verb alone, before any argument is
  // judged, so a wrong message is still skipped whole.
  verb v = verb::unknown;
  refused_.reset();
  if (entry == nullptr) {
    refused_ = word.empty()
                   ? error(errc::malformed_start_line, "start line does not begin with a verb")
                   : error(errc::unknown_command, "unknown verb '" + wire::escape(word) + "'");
  } else if (dir_ == direction::to_server ? !entry->to_server : !entry->to_client) {
    refused_ = error(errc::unknown_command,
                     std::string(word) + (dir_ == direction::to_server
                                              ? " is sent by a server, not to it"
                                              : " is sent to a server, not by it"));
  } else if (dir_ == direction::to_client && entry->v == verb::send) {
    // The seed's table spells the delivery report SEND; with a body it is a
    // client's request instead.
    if (declared) {
      refused_ = error(errc::unknown_command,
                       "SEND with a Content-length is sent to a server, not by it");
    } else {
      v = verb::sent;
    }
  } else {
    v = entry->v;
  }

  bool needs_body = v == verb::send || v == verb::forward || v == verb::users || v == verb::files;
  if (needs_body && !declared) {
    return fail_sticky(error(errc::missing_content_length,
                             std::string(word) + " needs a Content-length header"));
  }

  if (!refused_) {
    if (has_ctl_fast(line)) {
      refused_ = error(errc::malformed_start_line, "control character in the start line");
    } else if (auto ok = parse_head(v, word, rest, reader_, pending_); !ok) {
      refused_ = std::move(ok).error();
    }
  }

  if (!declared) return deliver();

  if (auto e = reader_.expect_body(reader_.content_length_value()); !e) {
    return fail_sticky(e.error());
  }
  switch (v) {
    case verb::send: use_ = body_use::send; break;
    case verb::forward: use_ = body_use::forward; break;
    case verb::users: use_ = body_use::users; break;
    case verb::files: use_ = body_use::files; break;
    default: use_ = body_use::none; break;
  }
  return std::nullopt;
}

wire::decode_result<message> decoder::on_body() {
  if (!refused_) {
    result<void> ok;
    switch (use_) {
      case body_use::send:
        // Into the (possibly recycled) string: its capacity is reused.
        reader_.take_body_into(std::get<relay::send>(pending_).body);
        break;
      case body_use::forward:
        std::get<forward>(pending_).body = reader_.take_body();
        break;
      case body_use::users:
        ok = parse_users(reader_, std::get<user_list>(pending_));
        break;
      case body_use::files:
        ok = parse_files(reader_, std::get<file_list>(pending_));
        break;
      case body_use::none:
        if (!reader_.body().empty()) {
          ok = bad_arg(std::string(wire::split_first(reader_.start_line()).first) +
                       " carries no body");
        }
        break;
    }
    if (!ok) refused_ = std::move(ok).error();
  }
  return deliver();
}

}  // namespace improto::relay

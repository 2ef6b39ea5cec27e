#include "improto/relay/decoder.hpp"

#include <array>
#include <cstring>
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
      if (auto* f = std::get_if<forward>(&out)) {
        f->from.clear();
        f->from.append(wire::trim(rest));
        f->body.clear();
        return {};
      }
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

tl::unexpected<error> decoder::fail_sticky(error e) {
  failure_.emplace(std::move(e));
  return tl::unexpected<error>(*failure_);
}

result<bool> decoder::complete(bool after_body) {
  if (!refused_ && after_body && lend_body_ &&
      (use_ == body_use::send || use_ == body_use::forward)) {
    lent_ = true;
    return true;
  }
  reader_.reset();
  if (refused_) {
    error e = std::move(*refused_);
    refused_.reset();
    return tl::unexpected<error>(std::move(e));
  }
  return true;
}

result<bool> decoder::advance(std::string_view& in) {
  while (true) {
    auto ev = reader_.next(in);
    if (!ev) return fail_sticky(ev.error());
    switch (*ev) {
      case wire::frame_reader::event::need_more:
        return false;
      case wire::frame_reader::event::head: {
        auto done = on_head();
        if (!done) return done;
        if (*done) return complete(false);
        break;  // a body follows
      }
      case wire::frame_reader::event::body:
        on_body();
        return complete(true);
    }
  }
}

wire::decode_result<message> decoder::next(std::string_view& in) {
  if (failure_) return tl::unexpected<error>(*failure_);
  take_back();
  auto done = advance(in);
  if (!done) return tl::unexpected<error>(std::move(done).error());
  if (!*done) return std::nullopt;
  return wire::decode_result<message>(tl::in_place, std::move(pending_));
}

wire::decode_result<message_view> decoder::next_view(std::string_view& in) {
  using result_type = wire::decode_result<message_view>;
  if (failure_) return tl::unexpected<error>(*failure_);
  take_back();
  message_view v;
  if (reader_.idle() && whole_body_message(in, v)) return result_type(tl::in_place, v);
  lend_body_ = true;
  auto done = advance(in);
  lend_body_ = false;
  if (!done) return tl::unexpected<error>(std::move(done).error());
  if (!*done) return std::nullopt;
  // The body where the reader keeps it (lent_), else the message's own.
  if (auto* s = std::get_if<relay::send>(&pending_)) {
    v = {view_kind::send, s->to, lent_ ? reader_.body() : std::string_view(s->body), nullptr};
  } else if (auto* f = std::get_if<forward>(&pending_)) {
    v = {view_kind::forward, f->from, lent_ ? reader_.body() : std::string_view(f->body), nullptr};
  } else {
    v.other = &pending_;
  }
  return result_type(tl::in_place, v);
}

message message_view::to_message() const {
  switch (kind) {
    case view_kind::send: return relay::send{std::string(peer), std::string(body)};
    case view_kind::forward: return forward{std::string(peer), std::string(body)};
    case view_kind::other: break;
  }
  return *other;
}

wire::decode_result<message> decoder::finish() {
  if (failure_) return tl::unexpected<error>(*failure_);
  take_back();
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

// The end of the line starting at `p` when its first control character (a
// tab is a blank) is its `\n` or `\r\n`; `next` is then past it. nullptr
// when the line is not whole in [p, end) or holds a control character.
const char* clean_line_end(const char* p, const char* end, const char*& next) noexcept {
  for (;;) {
    p = wire::detail::find_ctl(p, end);
    if (p == end) return nullptr;
    if (*p != '\t') break;
    ++p;
  }
  if (*p == '\n') {
    next = p + 1;
    return p;
  }
  if (*p == '\r' && end - p >= 2 && p[1] == '\n') {
    next = p + 2;
    return p;
  }
  return nullptr;
}

// `Content-length` in any case: OR-ing 0x20 maps only the other case of a
// letter onto a lower-case letter, and '-' is compared as it is (0x0d would
// fold onto it).
bool is_content_length_name(const char* p) noexcept {
  constexpr char lower[] = "content-length";
  constexpr std::uint64_t fold = 0x2020202020202020ull;
  std::uint64_t a, b, la, lb;
  std::memcpy(&a, p, 8);
  std::memcpy(&b, p + 6, 8);
  std::memcpy(&la, lower, 8);
  std::memcpy(&lb, lower + 6, 8);
  return (a | fold) == la && (b | fold) == lb && p[7] == '-';
}

}  // namespace

bool decoder::whole_body_message(std::string_view& in, message_view& out) const noexcept {
  // The verbs of this direction's body traffic; any other goes the general way.
  const bool to_server = dir_ == direction::to_server;
  // "SEND" is one 4-byte compare, "FORWARD" two overlapping ones.
  const std::size_t n = to_server ? 4 : 7;
  if (in.size() <= n || !wire::is_blank(in[n])) return false;
  auto word4 = [](const char* at) {
    std::uint32_t w;
    std::memcpy(&w, at, 4);
    return w;
  };
  if (to_server ? word4(in.data()) != word4("SEND")
                : (word4(in.data()) != word4("FORW") || word4(in.data() + 3) != word4("WARD"))) {
    return false;
  }
  const wire::limits& lim = reader_.limits_in_use();
  const char* const begin = in.data();
  const char* const end = begin + in.size();

  // The start line, with no control character: it is accepted as it stands.
  const char* p = begin + n + 1;
  const char* header = nullptr;
  const char* line_end = clean_line_end(p, end, header);
  if (line_end == nullptr || static_cast<std::size_t>(line_end - begin) > lim.max_line) return false;
  while (p < line_end && wire::is_blank(*p)) ++p;
  const char* peer_end = line_end;
  while (peer_end > p && wire::is_blank(peer_end[-1])) --peer_end;

  // One header, Content-length: digits between optional blanks.
  constexpr std::size_t name_len = 14;
  if (lim.max_headers == 0 || static_cast<std::size_t>(end - header) < name_len + 1 ||
      !is_content_length_name(header) || header[name_len] != ':') {
    return false;
  }
  const char* v = header + name_len + 1;
  while (v < end && wire::is_blank(*v)) ++v;
  std::uint64_t length = 0;
  const char* digits = v;
  while (v < end && wire::is_digit(*v) && v - digits < 18) {
    length = length * 10 + static_cast<unsigned>(*v - '0');
    ++v;
  }
  if (v == digits) return false;
  while (v < end && wire::is_blank(*v)) ++v;
  const char* blank_line = nullptr;
  const char* value_end = clean_line_end(v, end, blank_line);
  if (value_end != v || static_cast<std::size_t>(value_end - header) > lim.max_line) return false;

  // The blank line, then the whole body.
  const char* body = nullptr;
  if (blank_line < end && *blank_line == '\n') {
    body = blank_line + 1;
  } else if (end - blank_line >= 2 && blank_line[0] == '\r' && blank_line[1] == '\n') {
    body = blank_line + 2;
  } else {
    return false;
  }
  if (length > lim.max_body || length > static_cast<std::uint64_t>(end - body)) return false;
  const auto body_len = static_cast<std::size_t>(length);
  out.kind = to_server ? view_kind::send : view_kind::forward;
  out.peer = std::string_view(p, static_cast<std::size_t>(peer_end - p));
  out.body = std::string_view(body, body_len);
  out.other = nullptr;
  in.remove_prefix(static_cast<std::size_t>(body - begin) + body_len);
  return true;
}

result<bool> decoder::on_head() {
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

  if (!declared) return true;

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
  return false;
}

void decoder::on_body() {
  if (!refused_) {
    result<void> ok;
    switch (use_) {
      case body_use::send:
        // Into the (possibly recycled) string: its capacity is reused.
        // next_view() views it in the reader instead.
        if (!lend_body_) reader_.take_body_into(std::get<relay::send>(pending_).body);
        break;
      case body_use::forward:
        if (!lend_body_) reader_.take_body_into(std::get<forward>(pending_).body);
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
}

}  // namespace improto::relay

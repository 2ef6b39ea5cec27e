#include "improto/wire/framing.hpp"

#include <cstring>

#include "improto/wire/text.hpp"
#include "scan.hpp"

// The head's fast path is one function at its one call site.
#if defined(__GNUC__)
#define IMPROTO_HOT_INLINE [[gnu::always_inline]] inline
#else
#define IMPROTO_HOT_INLINE inline
#endif

namespace improto::wire {
namespace {

std::string_view strip_cr(std::string_view line) noexcept {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

std::string too_long(std::size_t max) {
  return "line exceeds " + std::to_string(max) + " bytes";
}

}  // namespace

std::optional<std::uint64_t> parse_content_length(std::string_view value) noexcept {
  return parse_decimal(value, max_content_length);
}

// ---------------------------------------------------------------- line_reader

result<std::optional<std::string_view>> line_reader::next(std::string_view& in) {
  if (failed_) return fail(errc::line_too_long, too_long(max_line_));
  if (returned_partial_) {
    partial_.clear();
    returned_partial_ = false;
  }
  if (in.empty()) return std::optional<std::string_view>{};  // memchr takes no null pointer
  const void* nl = std::memchr(in.data(), '\n', in.size());
  if (nl == nullptr) {
    // +1 leaves room for the '\r' of a "\r\n" split across chunks.
    if (partial_.size() + in.size() > max_line_ + 1) {
      failed_ = true;
      return fail(errc::line_too_long, too_long(max_line_));
    }
    partial_.append(in);
    in.remove_prefix(in.size());
    return std::optional<std::string_view>{};
  }
  auto pos = static_cast<std::size_t>(static_cast<const char*>(nl) - in.data());
  std::string_view piece = in.substr(0, pos);
  in.remove_prefix(pos + 1);
  std::string_view line;
  if (partial_.empty()) {
    line = strip_cr(piece);
  } else {
    partial_.append(piece);
    line = strip_cr(partial_);
    returned_partial_ = true;
  }
  if (line.size() > max_line_) {
    failed_ = true;
    return fail(errc::line_too_long, too_long(max_line_));
  }
  return std::optional<std::string_view>{line};
}

result<std::optional<std::string_view>> line_reader::finish() {
  if (failed_) return fail(errc::line_too_long, too_long(max_line_));
  if (returned_partial_) {
    partial_.clear();
    returned_partial_ = false;
  }
  if (partial_.empty()) return std::optional<std::string_view>{};
  returned_partial_ = true;
  return std::optional<std::string_view>{strip_cr(partial_)};
}

void line_reader::reset() noexcept {
  partial_.clear();
  failed_ = false;
  returned_partial_ = false;
}

// --------------------------------------------------------------- frame_reader

namespace {

// Case-insensitive equality of a checked token with a lower-case literal of
// the same length. OR-ing 0x20 lower-cases letters and maps no other tchar
// onto a letter or '-', so one compare per 8 bytes is exact.
template <std::size_t N>
bool token_is(std::string_view name, const char (&lower)[N]) noexcept {
  static_assert(N - 1 >= 8);
  constexpr std::uint64_t fold = 0x2020202020202020ull;
  auto word = [](const char* p) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  };
  const char* p = name.data();
  for (std::size_t i = 0; i + 8 <= N - 1; i += 8) {
    if ((word(p + i) | fold) != word(lower + i)) return false;
  }
  // The last 8 bytes, overlapping what was compared.
  return (word(p + N - 9) | fold) == word(lower + N - 9);
}

// parse_content_length(), inline for what fits 18 digits (below 10^18,
// so below max_content_length without an overflow check).
std::optional<std::uint64_t> short_decimal(std::string_view s) noexcept {
  if (s.empty() || s.size() > 18) return parse_content_length(s);
  std::uint64_t n = 0;
  for (char c : s) {
    auto d = static_cast<unsigned>(static_cast<unsigned char>(c) - '0');
    if (d > 9) return std::nullopt;
    n = n * 10 + d;
  }
  return n;
}

}  // namespace

result<frame_reader::event> frame_reader::fail_with(errc code, std::string detail) {
  state_ = state::failed;
  error_.emplace(code, std::move(detail));
  return tl::unexpected<error>(*error_);
}

result<frame_reader::event> frame_reader::next(std::string_view& in) {
  switch (state_) {
    case state::failed:
      return tl::unexpected<error>(*error_);
    case state::head_done:
      // The caller did not say how long the body is: nothing to consume.
      return event::head;
    case state::body: {
      if (body_buf_.empty() && in.size() >= body_remaining_) {
        // The whole body is in this chunk: hand it out where it lies.
        body_ = in.substr(0, static_cast<std::size_t>(body_remaining_));
        in.remove_prefix(body_.size());
        body_remaining_ = 0;
        return event::body;
      }
      auto take = static_cast<std::size_t>(
          std::min<std::uint64_t>(body_remaining_, in.size()));
      if (body_buf_.empty()) body_buf_.reserve(static_cast<std::size_t>(body_remaining_));
      body_buf_.append(in.substr(0, take));
      in.remove_prefix(take);
      body_remaining_ -= take;
      if (body_remaining_ == 0) {
        body_ = body_buf_;
        return event::body;
      }
      materialize_head();
      return event::need_more;
    }
    case state::body_to_eof:
      if (body_buf_.size() + in.size() > limits_.max_body) {
        return fail_with(errc::body_too_large,
                         "body exceeds " + std::to_string(limits_.max_body) + " bytes");
      }
      body_buf_.append(in);
      in.remove_prefix(in.size());
      materialize_head();
      return event::need_more;
    case state::start:
      if (head_.empty()) {
        if (auto done = read_head_in_place(in)) return *done;
      }
      return read_head(in);
    case state::head:
      return read_head(in);
  }
  return event::need_more;
}

result<frame_reader::event> frame_reader::check_header(std::string_view line,
                                                     std::size_t headers_before) {
  if (headers_before >= limits_.max_headers) {
    return fail_with(errc::too_many_headers,
                     "more than " + std::to_string(limits_.max_headers) + " header lines");
  }
  if (is_blank(line.front())) {
    return fail_with(errc::malformed_header, "obsolete line folding is not accepted");
  }
  std::size_t colon = 0;
  while (colon < line.size() && is_tchar(line[colon])) ++colon;
  if (colon == 0 || colon == line.size() || line[colon] != ':') {
    auto at = line.find(':');
    if (colon > 0 && at != std::string_view::npos) {
      return fail_with(errc::malformed_header,
                       "bad character in header name '" + escape(line.substr(0, at)) + "'");
    }
    return fail_with(errc::malformed_header, "header line without a name and ':'");
  }
  for (char c : line.substr(colon + 1)) {
    if (is_ctl(c)) {
      return fail_with(errc::malformed_header, "control character in header '" +
                                                   std::string(line.substr(0, colon)) + "'");
    }
  }
  return event::need_more;
}

result<frame_reader::event> frame_reader::add_header(std::string_view line) {
  if (auto ok = check_header(line, headers_.size()); !ok) return ok;
  auto colon = line.find(':');
  std::string_view name = line.substr(0, colon);
  std::string_view value = trim(line.substr(colon + 1));
  headers_.push_back({name, value});
  note(name, value);
  return event::need_more;
}

void frame_reader::clear_headers() noexcept {
  headers_.clear();
  length_state_ = length_state::absent;
  content_length_ = 0;
  transfer_encoding_ = false;
  connection_close_ = false;
  connection_keep_alive_ = false;
}

void frame_reader::note_header(std::string_view name, std::string_view value) noexcept {
  // The length first: most names are none of these three.
  switch (name.size()) {
    case 14: {
      if (!token_is(name, "content-length")) return;
      if (length_state_ == length_state::bad || length_state_ == length_state::conflict) return;
      auto n = short_decimal(value);
      auto at = static_cast<std::uint32_t>(headers_.size() - 1);
      if (!n) {
        length_state_ = length_state::bad;
        length_error_at_ = at;
      } else if (length_state_ == length_state::ok && *n != content_length_) {
        length_state_ = length_state::conflict;
        length_error_at_ = at;
      } else {
        length_state_ = length_state::ok;
        content_length_ = *n;
      }
      return;
    }
    case 17:
      if (token_is(name, "transfer-encoding")) transfer_encoding_ = true;
      return;
    case 10:
      if (token_is(name, "connection")) note_connection(value);
      return;
    default:
      return;
  }
}

// Out of line: the Content-Length path of note_header() stays a leaf.
[[gnu::noinline]] void frame_reader::note_connection(std::string_view value) noexcept {
  std::string_view rest = value;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    std::string_view token = trim(rest.substr(0, comma));
    if (token.size() == 5 && iequals(token, "close")) connection_close_ = true;
    if (token.size() == 10 && iequals(token, "keep-alive")) connection_keep_alive_ = true;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
}

IMPROTO_HOT_INLINE frame_reader::fast frame_reader::read_head_fast(const char* begin, const char* end,
                                                const char*& skip_to, const char*& head_end) {
  const char* p = begin;
  // Blank lines before the start line.
  for (;;) {
    skip_to = p;
    if (p == end) return fast::more;
    if (*p == '\n') {
      ++p;
    } else if (*p == '\r' && end - p >= 2 && p[1] == '\n') {
      p += 2;
    } else {
      break;
    }
  }
  const void* found = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
  if (found == nullptr) return fast::more;
  const char* nl = static_cast<const char*>(found);
  start_line_ = strip_cr(std::string_view(p, static_cast<std::size_t>(nl - p)));
  if (start_line_.size() > limits_.max_line) return fast::slow;
  p = nl + 1;
  clear_headers();
  const std::size_t max_line = limits_.max_line;
  const std::size_t max_headers = limits_.max_headers;
  for (;;) {
    if (p == end) return fast::more;
    const char* line = p;
    if (*p == '\n') {
      head_end = p + 1;
      return fast::head;
    }
    if (*p == '\r') {
      if (end - p < 2) return fast::more;
      if (p[1] != '\n') return fast::slow;
      head_end = p + 2;
      return fast::head;
    }
    // The name: tchars up to ':'.
    p = detail::find_name_end(p, end);
    if (p == end) return fast::more;
    if (*p != ':' || p == line) return fast::slow;
    std::string_view name(line, static_cast<std::size_t>(p - line));
    ++p;
    while (p < end && is_blank(*p)) ++p;
    const char* value = p;
    // The value: up to the first control character; a tab is a blank.
    for (;;) {
      p = detail::find_ctl(p, end);
      if (p == end) return fast::more;
      if (*p != '\t') break;
      ++p;
    }
    const char* value_end = p;
    if (*p == '\r') {
      if (end - p < 2) return fast::more;
      if (p[1] != '\n') return fast::slow;
      p += 2;
    } else if (*p == '\n') {
      p += 1;
    } else {
      return fast::slow;
    }
    if (static_cast<std::size_t>(value_end - line) > max_line) return fast::slow;
    if (headers_.size() >= max_headers) return fast::slow;
    while (value_end > value && is_blank(value_end[-1])) --value_end;
    headers_.push_back({name, std::string_view(value, static_cast<std::size_t>(value_end - value))});
    note(name, headers_.back().value);
  }
}

IMPROTO_HOT_INLINE std::optional<result<frame_reader::event>> frame_reader::read_head_in_place(
    std::string_view& in) {
  const char* const begin = in.data();
  const char* const end = begin + in.size();
  const char* skip_to = begin;  // past leading blank lines
  const char* head_end = nullptr;
  switch (read_head_fast(begin, end, skip_to, head_end)) {
    case fast::head:
      in_place_ = std::string_view(skip_to, static_cast<std::size_t>(head_end - skip_to));
      in.remove_prefix(static_cast<std::size_t>(head_end - begin));
      state_ = state::head_done;
      return event::head;
    case fast::more:
      // Every complete line passed the checks: the copying path takes over
      // from the first non-blank line.
      clear_headers();
      in.remove_prefix(static_cast<std::size_t>(skip_to - begin));
      return std::nullopt;
    case fast::slow:
      break;
  }
  // Some line fails a check: line by line, for the check's own error.
  const char* line = begin;
  skip_to = begin;
  bool have_start = false;
  clear_headers();
  while (line < end) {
    const void* found = std::memchr(line, '\n', static_cast<std::size_t>(end - line));
    if (found == nullptr) break;
    const char* nl = static_cast<const char*>(found);
    std::string_view text = strip_cr(std::string_view(line, static_cast<std::size_t>(nl - line)));
    if (text.size() > limits_.max_line) {
      return fail_with(errc::line_too_long, too_long(limits_.max_line));
    }
    line = nl + 1;
    if (text.empty()) {
      if (!have_start) {
        skip_to = line;
        continue;
      }
      in_place_ = std::string_view(skip_to, static_cast<std::size_t>(line - skip_to));
      in.remove_prefix(static_cast<std::size_t>(line - begin));
      state_ = state::head_done;
      return event::head;
    }
    if (!have_start) {
      start_line_ = text;
      have_start = true;
      continue;
    }
    if (auto added = add_header(text); !added) return added;
  }
  clear_headers();
  in.remove_prefix(static_cast<std::size_t>(skip_to - begin));
  return std::nullopt;
}

void frame_reader::materialize_head() {
  if (in_place_.empty()) return;
  head_.assign(in_place_);
  const char* old = in_place_.data();
  auto rebase = [&](std::string_view v) {
    return std::string_view(head_.data() + (v.data() - old), v.size());
  };
  start_line_ = rebase(start_line_);
  for (auto& h : headers_) {
    h.name = rebase(h.name);
    h.value = rebase(h.value);
  }
  in_place_ = {};
}

result<frame_reader::event> frame_reader::read_head(std::string_view& in) {
  while (!in.empty()) {
    std::size_t line_begin = line_ends_.empty() ? 0 : line_ends_.back();
    std::size_t have = head_.size() - line_begin;  // bytes of the unfinished line
    const void* nl = std::memchr(in.data(), '\n', in.size());
    std::size_t piece_len = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - in.data())
                               : in.size();
    // max_line + 1 leaves room for the '\r' of "\r\n".
    if (have + piece_len > limits_.max_line + 1) {
      return fail_with(errc::line_too_long, too_long(limits_.max_line));
    }
    if (nl == nullptr) {
      head_.append(in);
      in.remove_prefix(in.size());
      state_ = state::head;
      return event::need_more;
    }
    head_.append(in.substr(0, piece_len + 1));
    in.remove_prefix(piece_len + 1);
    std::string_view line = strip_cr(
        std::string_view(head_).substr(line_begin, head_.size() - 1 - line_begin));
    if (line.size() > limits_.max_line) {
      return fail_with(errc::line_too_long, too_long(limits_.max_line));
    }
    if (line.empty()) {
      if (line_ends_.empty()) {
        // A blank line before the start line: skip it.
        head_.clear();
        state_ = state::start;
        continue;
      }
      line_ends_.push_back(static_cast<std::uint32_t>(head_.size()));
      return complete_head();
    }
    // Every line but the start line is a header, checked as soon as it is
    // complete, exactly as the in-place path does.
    if (!line_ends_.empty()) {
      if (auto ok = check_header(line, line_ends_.size() - 1); !ok) return ok;
    }
    line_ends_.push_back(static_cast<std::uint32_t>(head_.size()));
    state_ = state::head;
  }
  return event::need_more;
}

result<frame_reader::event> frame_reader::complete_head() {
  std::string_view all(head_);
  std::size_t begin = 0;
  clear_headers();
  // The last entry of line_ends_ is the blank line that ended the head.
  for (std::size_t i = 0; i + 1 < line_ends_.size(); ++i) {
    std::string_view line = strip_cr(all.substr(begin, line_ends_[i] - 1 - begin));
    begin = line_ends_[i];
    if (i == 0) {
      start_line_ = line;
      continue;
    }
    if (auto added = add_header(line); !added) return added;
  }
  state_ = state::head_done;
  return event::head;
}

result<frame_reader::event> frame_reader::finish() {
  switch (state_) {
    case state::failed:
      return tl::unexpected<error>(*error_);
    case state::start:
      return event::need_more;
    case state::body_to_eof:
      state_ = state::head_done;  // nothing more may be read into this body
      body_ = body_buf_;
      return event::body;
    case state::body:
      return fail_with(errc::truncated, std::to_string(body_remaining_) +
                                            " body bytes missing at end of stream");
    case state::head:
    case state::head_done:
      break;
  }
  return fail_with(errc::truncated, "end of stream inside a message head");
}

std::optional<std::string_view> frame_reader::find(std::string_view name) const noexcept {
  for (const auto& h : headers_) {
    if (h.name.size() == name.size() && iequals(h.name, name)) return h.value;
  }
  return std::nullopt;
}

result<std::optional<std::uint64_t>> frame_reader::content_length() const {
  switch (length_state_) {
    case length_state::absent:
      return std::optional<std::uint64_t>{};
    case length_state::ok:
      return std::optional<std::uint64_t>{content_length_};
    case length_state::bad:
      return fail(errc::bad_content_length, "Content-Length '" +
                                                escape(headers_[length_error_at_].value) +
                                                "' is not a decimal number");
    case length_state::conflict:
      break;
  }
  return fail(errc::bad_content_length, "conflicting Content-Length values");
}

result<void> frame_reader::expect_body(std::uint64_t length) {
  if (length > limits_.max_body) {
    state_ = state::failed;
    error_.emplace(errc::body_too_large, "body of " + std::to_string(length) +
                                             " bytes exceeds " +
                                             std::to_string(limits_.max_body));
    return tl::unexpected<error>(*error_);
  }
  body_buf_.clear();
  body_ = {};
  body_remaining_ = length;
  state_ = state::body;
  return {};
}

void frame_reader::expect_body_until_eof() noexcept {
  body_buf_.clear();
  body_ = {};
  body_remaining_ = 0;
  state_ = state::body_to_eof;
}

std::string frame_reader::take_body() {
  std::string out;
  if (!body_buf_.empty() && body_.data() == body_buf_.data()) {
    out = std::move(body_buf_);
    body_buf_ = std::string();
  } else {
    out.assign(body_);
  }
  body_ = {};
  return out;
}

void frame_reader::take_body_into(std::string& out) {
  out.clear();
  if (!body_buf_.empty() && body_.data() == body_buf_.data()) {
    std::swap(out, body_buf_);
    body_ = out;
  } else {
    out.append(body_);
  }
}

void frame_reader::reset() noexcept {
  if (state_ == state::failed) return;
  state_ = state::start;
  head_.clear();
  in_place_ = {};
  line_ends_.clear();
  clear_headers();
  start_line_ = {};
  body_ = {};
  body_buf_.clear();
  body_remaining_ = 0;
}

}  // namespace improto::wire

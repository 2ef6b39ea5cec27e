#include "improto/wire/framing.hpp"

#include <cstring>

#include "improto/wire/text.hpp"

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
      auto take = static_cast<std::size_t>(
          std::min<std::uint64_t>(body_remaining_, in.size()));
      body_.append(in.substr(0, take));
      in.remove_prefix(take);
      body_remaining_ -= take;
      if (body_remaining_ == 0) return event::body;
      materialize_head();
      return event::need_more;
    }
    case state::body_to_eof:
      if (body_.size() + in.size() > limits_.max_body) {
        return fail_with(errc::body_too_large,
                         "body exceeds " + std::to_string(limits_.max_body) + " bytes");
      }
      body_.append(in);
      in.remove_prefix(in.size());
      materialize_head();
      return event::need_more;
    case state::start:
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
  headers_.push_back({line.substr(0, colon), trim(line.substr(colon + 1))});
  return event::need_more;
}

std::optional<result<frame_reader::event>> frame_reader::read_head_in_place(std::string_view& in) {
  const char* const begin = in.data();
  const char* const end = begin + in.size();
  const char* line = begin;
  const char* skip_to = begin;  // past leading blank lines
  bool have_start = false;
  headers_.clear();
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
  // The head goes on past this chunk: the copying path takes over from the
  // first non-blank line.
  headers_.clear();
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
  if (state_ == state::start && head_.empty()) {
    if (auto done = read_head_in_place(in)) return *done;
  }
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
  headers_.clear();
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
    if (iequals(h.name, name)) return h.value;
  }
  return std::nullopt;
}

result<std::optional<std::uint64_t>> frame_reader::content_length() const {
  std::optional<std::uint64_t> found;
  for (const auto& h : headers_) {
    if (!is_content_length(h.name)) continue;
    auto value = parse_content_length(h.value);
    if (!value) {
      return fail(errc::bad_content_length, "Content-Length '" + escape(h.value) +
                                                "' is not a decimal number");
    }
    if (found && *found != *value) {
      return fail(errc::bad_content_length, "conflicting Content-Length values");
    }
    found = value;
  }
  return found;
}

result<void> frame_reader::expect_body(std::uint64_t length) {
  if (length > limits_.max_body) {
    state_ = state::failed;
    error_.emplace(errc::body_too_large, "body of " + std::to_string(length) +
                                             " bytes exceeds " +
                                             std::to_string(limits_.max_body));
    return tl::unexpected<error>(*error_);
  }
  body_.clear();
  body_.reserve(static_cast<std::size_t>(length));
  body_remaining_ = length;
  state_ = state::body;
  return {};
}

void frame_reader::expect_body_until_eof() noexcept {
  body_.clear();
  body_remaining_ = 0;
  state_ = state::body_to_eof;
}

std::string frame_reader::take_body() noexcept {
  std::string out = std::move(body_);
  body_ = std::string();
  return out;
}

void frame_reader::reset() noexcept {
  if (state_ == state::failed) return;
  state_ = state::start;
  head_.clear();
  in_place_ = {};
  line_ends_.clear();
  headers_.clear();
  start_line_ = {};
  body_.clear();
  body_remaining_ = 0;
}

}  // namespace improto::wire

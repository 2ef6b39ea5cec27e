#include "improto/transfer/engine.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "improto/transfer/codes.hpp"
#include "improto/transfer/decoder.hpp"
#include "ranges.hpp"

namespace improto::transfer {
namespace {

constexpr std::uint64_t packet_threshold = 3;  // RFC 9002 kPacketThreshold

std::optional<time_point> earliest(std::optional<time_point> a, std::optional<time_point> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

std::size_t write(const datagram& d, std::span<char> out) {
  // Our own datagrams are valid by construction; a failure here is a bug
  // the tests would show as a transfer that never ends.
  auto n = serialize(d, out);
  return n ? *n : 0;
}

}  // namespace

// ================================================================ sender

result<sender> sender::create(const sender_config& config, data_source& source) {
  if (config.id == 0) return improto::fail(errc::invalid_config, "transfer id 0");
  if (config.size > max_offset) return improto::fail(errc::invalid_config, "size past 2^63-1");
  if (config.offset > config.size) {
    return improto::fail(errc::invalid_config, "offset past the end of the file");
  }
  if (config.datagram_size <= data_header_size || config.datagram_size > max_datagram) {
    return improto::fail(errc::invalid_config, "datagram size outside 23..65507 bytes");
  }
  if (config.initial_window == 0) return improto::fail(errc::invalid_config, "initial window 0");
  return sender(config, source);
}

sender::sender(const sender_config& config, data_source& source)
    : config_(config),
      source_(&source),
      bound_(config.key != 0),
      cum_(config.offset),
      next_(config.offset),
      limit_(config.offset),
      rtt_(config.rtt),
      cc_(cubic_config{.mss = config.datagram_size - data_header_size,
                       .initial_window = config.initial_window}) {}

result<void> sender::set_datagram_size(std::size_t size) {
  if (size <= data_header_size || size > max_datagram) {
    return improto::fail(errc::invalid_config, "datagram size " + std::to_string(size) +
                                                   " outside 23..65507 bytes");
  }
  config_.datagram_size = size;
  cc_.set_mss(size - data_header_size);
  return {};
}

void sender::fail(error e, bool tell_peer) {
  if (state_ == state::failed || state_ == state::complete) return;
  abort_reason_ = to_wire(e.code());
  abort_pending_ = tell_peer && bound_;
  error_ = std::move(e);
  state_ = state::failed;
  rto_at_.reset();
  loss_at_.reset();
  pace_at_.reset();
  probe_at_.reset();
  probe_due_ = false;
}

void sender::pause() {
  if (state_ != state::running) return;
  state_ = state::paused;
  // No retransmission timer while nothing may be sent: resuming must not
  // find a backed-off RTO and a collapsed window.
  rto_at_.reset();
  pace_at_.reset();
  probe_at_.reset();
  probe_due_ = false;
}

void sender::resume(time_point now) {
  if (state_ != state::paused) return;
  state_ = state::running;
  if (live_ > 0) rto_at_ = now + rtt_.rto();
  probe_out_ = false;
  arm_probe(now);
  pace_time_.reset();
}

void sender::cancel() { fail(error(errc::cancelled, "cancelled"), true); }

void sender::on_datagram(std::string_view bytes, time_point now) {
  if (state_ == state::failed || state_ == state::complete) return;
  auto d = parse_datagram(bytes);
  if (!d) {
    ++stats_.dropped;
    return;
  }
  const header h = std::visit([](const auto& m) { return m.h; }, *d);
  bool from_receiver = std::holds_alternative<ack>(*d) || std::holds_alternative<abort>(*d);
  if (h.id != config_.id || !from_receiver || (bound_ && h.key != config_.key) ||
      (!bound_ && !std::holds_alternative<ack>(*d))) {
    ++stats_.dropped;
    return;
  }
  if (!bound_) {
    config_.key = h.key;  // the receiver's first ACK names the key
    bound_ = true;
  }
  ++stats_.datagrams_received;
  last_heard_ = now;
  if (const auto* a = std::get_if<ack>(&*d)) {
    on_ack(*a, now);
  } else {
    fail(from_wire(std::get<transfer::abort>(*d).reason), false);
  }
}

void sender::mark_acked(std::uint64_t begin, std::uint64_t end) {
  if (end <= cum_) return;
  detail::erase_range(resend_, begin, end);
  if (begin <= cum_) {
    cum_ = end;
    for (auto it = sacked_.begin(); it != sacked_.end() && it->first <= cum_;) {
      cum_ = std::max(cum_, it->second);
      it = sacked_.erase(it);
    }
  } else {
    detail::insert_range(sacked_, begin, end);
  }
}

bool sender::is_acked(std::uint64_t begin, std::uint64_t end) const {
  return end <= cum_ || detail::contains(sacked_, begin, end);
}

sender::segment* sender::find(std::uint64_t pn) {
  if (pn < flight_base_ || pn - flight_base_ >= flight_.size()) return nullptr;
  segment& s = flight_[static_cast<std::size_t>(pn - flight_base_)];
  return s.live ? &s : nullptr;
}

void sender::record(const segment& s) {
  // Every packet number gets its slot, so flight_ stays indexed by pn.
  flight_.push_back(s);
  ++live_;
}

void sender::forget(segment& s) {
  if (s.length > 0) {
    in_flight_ -= s.length;
    by_offset_.erase(s.offset);
  }
  s.live = false;
  --live_;
  while (!flight_.empty() && !flight_.front().live) {
    flight_.pop_front();
    ++flight_base_;
  }
}

void sender::clear_flight() {
  flight_.clear();
  flight_base_ = next_pn_;
  live_ = 0;
  by_offset_.clear();
  in_flight_ = 0;
}

void sender::on_ack(const ack& a, time_point now) {
  std::uint64_t top = a.sack.empty() ? a.cumulative : std::max(a.cumulative, a.sack.back().end);
  if (top > next_ || a.cumulative < config_.offset) {
    fail(error(errc::invalid_argument,
               "the receiver acknowledged bytes up to " + std::to_string(top) +
                   ", but only bytes " + std::to_string(config_.offset) + " to " +
                   std::to_string(next_) + " were sent"),
         true);
    return;
  }
  limit_ = std::max(limit_, a.cumulative + a.window);

  std::uint64_t flight_before = in_flight_;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;  // merged ranges now acked
  auto note = [&](std::uint64_t b, std::uint64_t e) {
    if (e <= b || is_acked(b, e)) return;
    mark_acked(b, e);
    ranges.emplace_back(b, e);
  };
  note(config_.offset, a.cumulative);
  for (const auto& r : a.sack) note(r.begin, r.end);

  std::uint64_t newly = 0;
  std::optional<segment> newest;
  for (auto [b, e] : ranges) {
    // Segments lie inside one acknowledged range or are not acknowledged;
    // a segment starting before b cannot lie inside [b, e) but may now lie
    // inside the merged range, so start from the predecessor.
    auto it = by_offset_.lower_bound(b);
    if (it != by_offset_.begin()) --it;
    while (it != by_offset_.end() && it->first < e) {
      segment* seg = find(it->second);
      ++it;
      if (seg == nullptr) continue;
      const segment s = *seg;
      if (!is_acked(s.offset, s.offset + s.length)) continue;
      newly += s.length;
      if (!newest || s.pn > newest->pn) newest = s;
      forget(*seg);
    }
  }

  if (a.fin && fin_sent_ && a.cumulative == config_.size) {
    state_ = state::complete;
    clear_flight();
    rto_at_.reset();
    loss_at_.reset();
    pace_at_.reset();
    probe_at_.reset();
    probe_due_ = false;
    return;
  }
  if (!newest) return;
  probe_out_ = false;  // the path delivers: probes are allowed again

  if (!largest_acked_pn_ || newest->pn > *largest_acked_pn_) {
    largest_acked_pn_ = newest->pn;
    if (!newest->retransmission) {  // Karn's algorithm
      duration sample = now - newest->sent;
      duration delay = std::chrono::microseconds(a.delay_us);
      if (rtt_.has_sample() && sample - delay >= rtt_.min_rtt()) sample -= delay;
      rtt_.on_sample(sample);
    }
  }
  bool app_limited = flight_before + 3 * (config_.datagram_size - data_header_size) <
                     cc_.window();
  cc_.on_ack(newly, newest->sent, now, rtt_.srtt(), app_limited);
  detect_losses(now);
  // RFC 6298 (5.2)/(5.3): restart the timer on new data acknowledged.
  if (live_ == 0) {
    rto_at_.reset();
  } else if (state_ == state::running) {
    rto_at_ = now + rtt_.rto();
  }
  arm_probe(now);
}

void sender::arm_probe(time_point now) {
  probe_at_.reset();
  if (!config_.tail_loss_probe || state_ != state::running || probe_out_ || live_ == 0 ||
      !rtt_.has_sample()) {
    return;
  }
  // RFC 8985 7.2: PTO = 2 SRTT, plus the receiver's delayed-ACK time (our
  // receivers ACK within 1 ms); never later than the RTO, which then acts.
  time_point at = now + 2 * rtt_.srtt() + std::chrono::milliseconds(1);
  if (rto_at_ && at >= *rto_at_) return;
  probe_at_ = at;
}

duration sender::loss_delay() const {
  duration base = rtt_.has_sample() ? std::max(rtt_.srtt(), rtt_.latest()) : rtt_.rto();
  return std::max(base * 9 / 8, duration(std::chrono::milliseconds(1)));
}

void sender::lose(const segment& s, time_point now) {
  ++stats_.losses;
  if (s.length == 0) {
    fin_sent_ = false;
  } else {
    queue_resend(s.offset, s.offset + s.length);
  }
  cc_.on_loss(s.sent, now);
}

void sender::queue_resend(std::uint64_t begin, std::uint64_t end) {
  begin = std::max(begin, cum_);
  if (end <= begin) return;
  detail::insert_range(resend_, begin, end);
  // Parts acknowledged through SACK need not go again.
  auto it = sacked_.upper_bound(begin);
  if (it != sacked_.begin()) --it;
  for (; it != sacked_.end() && it->first < end; ++it) {
    detail::erase_range(resend_, it->first, it->second);
  }
}

void sender::detect_losses(time_point now) {
  loss_at_.reset();
  if (!largest_acked_pn_) return;
  duration delay = loss_delay();
  for (std::uint64_t pn = flight_base_; pn < *largest_acked_pn_ && pn < next_pn_; ++pn) {
    segment* seg = find(pn);
    if (seg == nullptr) continue;
    const segment s = *seg;
    if (*largest_acked_pn_ - s.pn >= packet_threshold || s.sent + delay <= now) {
      forget(*seg);
      lose(s, now);
      continue;
    }
    // Later segments were sent later and are nearer the largest: none lost.
    loss_at_ = s.sent + delay;
    break;
  }
}

void sender::on_rto(time_point now) {
  ++stats_.timeouts;
  rtt_.on_timeout();
  cc_.on_timeout(now);
  for (const segment& s : flight_) {
    if (!s.live) continue;
    if (s.length == 0) {
      fin_sent_ = false;
      continue;
    }
    queue_resend(s.offset, s.offset + s.length);
  }
  stats_.losses += live_;
  clear_flight();
  rto_at_.reset();
  loss_at_.reset();
  pace_time_.reset();
  probe_at_.reset();
  probe_due_ = false;
  probe_out_ = false;
}

void sender::run_timers(time_point now) {
  time_point heard = last_heard_ ? *last_heard_ : *started_;
  if (now - heard >= config_.idle_timeout) {
    fail(error(errc::timeout, "nothing from the receiver for " +
                                  std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                     config_.idle_timeout)
                                                     .count()) +
                                  " s"),
         false);
    return;
  }
  if (loss_at_ && now >= *loss_at_) detect_losses(now);
  if (rto_at_ && now >= *rto_at_) on_rto(now);
  if (probe_at_ && now >= *probe_at_) {
    probe_at_.reset();
    if (live_ > 0 && !probe_out_) {
      probe_due_ = true;
      probe_out_ = true;
    }
  }
}

std::uint64_t sender::pacing_rate() const {
  if (!config_.pacing || !rtt_.has_sample()) return 0;
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(rtt_.srtt()).count();
  if (us <= 0) return 0;
  double gain = cc_.in_slow_start() ? 2.0 : 1.25;
  return static_cast<std::uint64_t>(gain * static_cast<double>(cc_.window()) * 1e6 /
                                    static_cast<double>(us));
}

bool sender::pace(time_point now, std::size_t bytes) {
  std::uint64_t rate = pacing_rate();
  if (rate == 0) return true;
  // Bursts of up to 16 datagrams (a GSO batch) or 1 ms worth of the rate.
  double burst = std::max(16.0 * static_cast<double>(config_.datagram_size),
                          static_cast<double>(rate) / 1000.0);
  if (!pace_time_) {
    pace_time_ = now;
    pace_credit_ = burst;
  }
  double elapsed = std::chrono::duration<double>(now - *pace_time_).count();
  pace_credit_ = std::min(burst, pace_credit_ + elapsed * static_cast<double>(rate));
  pace_time_ = now;
  auto need = static_cast<double>(bytes);
  if (pace_credit_ >= need) {
    pace_credit_ -= need;
    pace_at_.reset();
    return true;
  }
  auto wait = std::chrono::duration<double>((need - pace_credit_) / static_cast<double>(rate));
  pace_at_ = now + std::max(std::chrono::duration_cast<duration>(wait), duration(1));
  return false;
}

std::size_t sender::send_data(time_point now, std::span<char> out, std::uint64_t offset,
                              std::uint32_t length, bool retransmission) {
  auto read = source_->read(offset, out.subspan(data_header_size, length));
  if (!read) {
    fail(read.error(), true);
    return 0;
  }
  write_data_header(out.first<data_header_size>(), header{config_.id, config_.key}, offset);
  std::uint64_t pn = next_pn_++;
  record(segment{pn, offset, length, now, retransmission});
  by_offset_[offset] = pn;
  in_flight_ += length;
  ++stats_.datagrams_sent;
  stats_.bytes_sent += length;
  if (retransmission) stats_.bytes_retransmitted += length;
  if (!rto_at_) rto_at_ = now + rtt_.rto();  // (5.1)
  arm_probe(now);  // measured from the last transmission
  return data_header_size + length;
}

std::size_t sender::send_probe(time_point now, std::span<char> out) {
  probe_due_ = false;
  std::uint64_t mss = config_.datagram_size - data_header_size;
  // Lost ranges first, then new data (RFC 8985 7.3), both past the window
  // and the pacer: one datagram.
  if (!resend_.empty()) {
    auto [b, e] = *resend_.begin();
    auto len = static_cast<std::uint32_t>(std::min(e - b, mss));
    detail::erase_range(resend_, b, b + len);
    ++stats_.probes;
    return send_data(now, out, b, len, true);
  }
  std::uint64_t stop = std::min(config_.size, limit_);
  if (next_ < stop) {
    auto len = static_cast<std::uint32_t>(std::min(stop - next_, mss));
    std::size_t n = send_data(now, out, next_, len, false);
    if (n) {
      next_ += len;
      ++stats_.probes;
    }
    return n;
  }
  // Else the newest segment again: its record goes, the copy is the one in
  // flight (no RTT sample from it, Karn).
  for (auto it = flight_.rbegin(); it != flight_.rend(); ++it) {
    if (!it->live) continue;
    const segment s = *it;
    forget(*it);
    ++stats_.probes;
    if (s.length == 0) {
      fin_sent_ = false;  // the FIN goes again below
      return 0;
    }
    return send_data(now, out, s.offset, s.length, true);
  }
  return 0;
}

std::size_t sender::poll_transmit(time_point now, std::span<char> out) {
  if (out.size() < config_.datagram_size) return 0;
  if (!started_) started_ = now;
  if (state_ == state::running || state_ == state::paused) run_timers(now);
  if (abort_pending_) {
    abort_pending_ = false;
    ++stats_.datagrams_sent;
    return write(transfer::abort{{config_.id, config_.key}, abort_reason_}, out);
  }
  if (state_ != state::running || !bound_) return 0;

  if (probe_due_) {
    if (std::size_t n = send_probe(now, out)) return n;
  }
  std::uint64_t mss = config_.datagram_size - data_header_size;
  std::uint64_t cwnd = cc_.window();
  auto fits = [&](std::uint64_t len) { return in_flight_ == 0 || in_flight_ + len <= cwnd; };

  if (!resend_.empty()) {
    auto [b, e] = *resend_.begin();
    auto len = static_cast<std::uint32_t>(std::min(e - b, mss));
    if (!fits(len) || !pace(now, data_header_size + len)) return 0;
    detail::erase_range(resend_, b, b + len);
    return send_data(now, out, b, len, true);
  }
  std::uint64_t stop = std::min(config_.size, limit_);
  // Silly-window avoidance: with data in flight (so ACKs will widen the
  // window), no runt datagram just because the receiver's window ends
  // mid-datagram; with 64 KiB datagrams every window update would send one.
  if (next_ < stop && stop < config_.size && stop - next_ < mss && in_flight_ > 0) return 0;
  if (next_ < stop) {
    auto len = static_cast<std::uint32_t>(std::min(stop - next_, mss));
    if (!fits(len) || !pace(now, data_header_size + len)) return 0;
    std::uint64_t offset = next_;
    std::size_t n = send_data(now, out, offset, len, false);
    if (n) next_ += len;
    return n;
  }
  if (cum_ == config_.size && next_ == config_.size && !fin_sent_) {
    char last = 0;
    if (config_.size > 0) {
      auto read = source_->read(config_.size - 1, std::span<char>(&last, 1));
      if (!read) {
        fail(read.error(), true);
        return 0;
      }
    }
    std::uint64_t pn = next_pn_++;
    record(segment{pn, config_.size, 0, now, true});
    fin_sent_ = true;
    if (!rto_at_) rto_at_ = now + rtt_.rto();
    arm_probe(now);
    ++stats_.datagrams_sent;
    return write(fin{{config_.id, config_.key}, config_.size, static_cast<std::uint8_t>(last)},
                 out);
  }
  return 0;
}

std::optional<time_point> sender::next_deadline() const {
  if (abort_pending_ || !started_) return time_point::min();
  if (state_ != state::running && state_ != state::paused) return std::nullopt;
  time_point heard = last_heard_ ? *last_heard_ : *started_;
  std::optional<time_point> t = heard + config_.idle_timeout;
  if (state_ == state::paused) return t;
  if (probe_due_) return time_point::min();
  return earliest(earliest(t, earliest(rto_at_, probe_at_)), earliest(loss_at_, pace_at_));
}

// ============================================================== receiver

result<receiver> receiver::create(const receiver_config& config) {
  if (config.id == 0) return improto::fail(errc::invalid_config, "transfer id 0");
  if (config.key == 0) return improto::fail(errc::invalid_config, "key 0");
  if (config.size > max_offset) return improto::fail(errc::invalid_config, "size past 2^63-1");
  if (config.offset > config.size) {
    return improto::fail(errc::invalid_config, "offset past the end of the file");
  }
  if (config.window == 0 || config.window > (std::size_t{1} << 31)) {
    return improto::fail(errc::invalid_config, "window outside 1 byte .. 2 GiB");
  }
  if (config.max_sack_ranges > max_sack_ranges) {
    return improto::fail(errc::invalid_config, "more than 255 SACK ranges");
  }
  if (config.max_ack_size < ack_fixed_size + sack_range_size ||
      config.max_ack_size > max_datagram) {
    return improto::fail(errc::invalid_config, "ACK size outside 40..65507 bytes");
  }
  if (config.ack_every == 0) return improto::fail(errc::invalid_config, "ack_every 0");
  return receiver(config);
}

receiver::receiver(const receiver_config& config)
    : config_(config), ring_(config.window), consumed_(config.offset), cum_(config.offset) {}

void receiver::fail(error e, bool tell_peer) {
  if (state_ == state::failed) return;
  abort_reason_ = to_wire(e.code());
  abort_pending_ = tell_peer;
  error_ = std::move(e);
  state_ = state::failed;
}

void receiver::pause() {
  if (state_ != state::running) return;
  state_ = state::paused;
  paused_ = true;
}

void receiver::resume(time_point now) {
  if (state_ != state::paused) return;
  state_ = state::running;
  paused_ = false;
  last_heard_ = now;  // the sender was told to be silent
  ack_now_ = true;
}

void receiver::cancel() {
  if (state_ == state::complete) return;
  fail(error(errc::cancelled, "cancelled"), true);
}

void receiver::abort(error e) { fail(std::move(e), true); }

std::uint64_t receiver::buffered() const noexcept { return (cum_ - consumed_) + ooo_bytes_; }

std::span<const char> receiver::readable() const noexcept {
  if (consumed_ == cum_) return {};
  std::size_t start = static_cast<std::size_t>(consumed_ % config_.window);
  std::size_t n = static_cast<std::size_t>(
      std::min<std::uint64_t>(cum_ - consumed_, config_.window - start));
  return {ring_.data() + start, n};
}

void receiver::consume(std::size_t n) {
  n = static_cast<std::size_t>(std::min<std::uint64_t>(n, cum_ - consumed_));
  consumed_ += n;
  // Tell the sender once a quarter of the window has opened, not for every
  // byte (the silly window syndrome).
  if (limit() >= advertised_limit_ + std::max<std::uint64_t>(config_.window / 4, 1)) {
    window_update_ = true;
  }
}

std::uint8_t receiver::byte_at(std::uint64_t offset) const noexcept {
  return static_cast<std::uint8_t>(ring_[static_cast<std::size_t>(offset % config_.window)]);
}

void receiver::store(std::uint64_t offset, std::string_view bytes) {
  std::size_t start = static_cast<std::size_t>(offset % config_.window);
  std::size_t first = std::min(bytes.size(), config_.window - start);
  std::memcpy(ring_.data() + start, bytes.data(), first);
  if (first < bytes.size()) std::memcpy(ring_.data(), bytes.data() + first, bytes.size() - first);
}

void receiver::on_datagram(std::string_view bytes, time_point now) {
  if (state_ == state::failed) return;
  auto d = parse_datagram(bytes);
  if (!d) {
    ++stats_.dropped;
    return;
  }
  const header h = std::visit([](const auto& m) { return m.h; }, *d);
  if (h.id != config_.id || h.key != config_.key || std::holds_alternative<ack>(*d)) {
    ++stats_.dropped;
    return;
  }
  ++stats_.datagrams_received;
  last_heard_ = now;
  if (const auto* m = std::get_if<data>(&*d)) {
    on_data(*m, now);
  } else if (const auto* f = std::get_if<fin>(&*d)) {
    on_fin(*f, now);
  } else if (state_ != state::complete) {
    fail(from_wire(std::get<transfer::abort>(*d).reason), false);
  }
}

void receiver::on_data(const data& d, time_point now) {
  std::uint64_t end = d.offset + d.payload.size();
  if (end > config_.size) {
    fail(error(errc::invalid_argument, "data up to offset " + std::to_string(end) +
                                           " past the end of the " +
                                           std::to_string(config_.size) + "-byte file"),
         true);
    return;
  }
  if (state_ == state::complete || end <= cum_) {
    stats_.duplicates += d.payload.size();
    ack_now_ = true;  // our ACK may have been lost
    return;
  }
  if (end > limit()) {  // the sender ignored our window
    ++stats_.dropped;
    return;
  }
  std::uint64_t begin = std::max(d.offset, cum_);
  store(begin, d.payload.substr(static_cast<std::size_t>(begin - d.offset)));
  if (begin == cum_) {
    bool filled_gap = !ooo_.empty();
    cum_ = end;
    for (auto it = ooo_.begin(); it != ooo_.end() && it->first <= cum_;) {
      std::uint64_t over = std::min(it->second, cum_) - it->first;  // already counted
      stats_.duplicates += over;
      ooo_bytes_ -= it->second - it->first;
      cum_ = std::max(cum_, it->second);
      it = ooo_.erase(it);
    }
    if (filled_gap || !ooo_.empty()) {
      ack_now_ = true;  // RFC 5681: ACK at once when a hole fills
    } else if (++unacked_ >= config_.ack_every) {
      ack_now_ = true;
    } else if (!ack_at_) {
      ack_at_ = now + config_.ack_delay;
      ack_held_since_ = now;
    }
  } else {
    std::uint64_t added = detail::insert_range(ooo_, begin, end);
    stats_.duplicates += (end - begin) - added;
    ooo_bytes_ += added;
    auto it = ooo_.upper_bound(begin);
    latest_begin_ = std::prev(it)->first;
    ack_now_ = true;
  }
}

void receiver::on_fin(const fin& f, time_point /*now*/) {
  if (f.end != config_.size) {
    fail(error(errc::invalid_argument, "the sender ends the file at " + std::to_string(f.end) +
                                           ", the transfer announced " +
                                           std::to_string(config_.size) + " bytes"),
         true);
    return;
  }
  ack_now_ = true;
  if (state_ == state::complete || cum_ < config_.size) return;
  if (config_.size > config_.offset && byte_at(config_.size - 1) != f.last_byte) {
    fail(error(errc::hash_mismatch, "the last byte is " + std::to_string(byte_at(config_.size - 1)) +
                                        ", the sender says " + std::to_string(f.last_byte)),
         true);
    return;
  }
  last_byte_ = f.last_byte;
  fin_ = true;
  paused_ = false;
  state_ = state::complete;
}

std::size_t receiver::poll_transmit(time_point now, std::span<char> out) {
  if (out.size() < std::min(config_.max_ack_size, ack_fixed_size + sack_range_size)) return 0;
  if (!started_) {
    started_ = now;
    ack_now_ = true;  // the opening ACK
  }
  if (state_ == state::running) {
    time_point heard = last_heard_ ? *last_heard_ : *started_;
    if (now - heard >= config_.idle_timeout) {
      fail(error(errc::timeout, "nothing from the sender for " +
                                    std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                       config_.idle_timeout)
                                                       .count()) +
                                    " s"),
           false);
    }
  }
  if (abort_pending_) {
    abort_pending_ = false;
    ++stats_.datagrams_sent;
    return write(transfer::abort{{config_.id, config_.key}, abort_reason_}, out);
  }
  if (state_ == state::failed) return 0;
  bool due = ack_now_ || window_update_ || (ack_at_ && now >= *ack_at_) ||
             (state_ != state::complete && last_sent_ && now - *last_sent_ >= config_.keepalive);
  if (!due) return 0;

  ack a{{config_.id, config_.key}, cum_, static_cast<std::uint32_t>(limit() - cum_), 0, fin_, {}};
  if (ack_held_since_) {
    a.delay_us = static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(now - *ack_held_since_).count());
  }
  std::size_t room = std::min(out.size(), config_.max_ack_size);
  std::size_t cap = std::min(config_.max_sack_ranges, (room - ack_fixed_size) / sack_range_size);
  if (cap > 0 && !ooo_.empty()) {
    // The range of the newest datagram (what the sender learns most from),
    // then the lowest ones (the holes to fill first), in order.
    auto latest = ooo_.find(latest_begin_);
    for (auto it = ooo_.begin(); it != ooo_.end() && a.sack.size() + 1 < cap; ++it) {
      if (it != latest) a.sack.push_back({it->first, it->second});
    }
    if (latest != ooo_.end()) {
      a.sack.push_back({latest->first, latest->second});
    } else if (a.sack.size() < cap && a.sack.size() < ooo_.size()) {
      auto it = std::next(ooo_.begin(), static_cast<std::ptrdiff_t>(a.sack.size()));
      a.sack.push_back({it->first, it->second});
    }
    std::sort(a.sack.begin(), a.sack.end(),
              [](const byte_range& x, const byte_range& y) { return x.begin < y.begin; });
    // Ranges too far above cumulative for 32 bits cannot go (windows are
    // at most 2 GiB, so this never drops one).
    std::erase_if(a.sack, [&](const byte_range& r) {
      return r.begin - cum_ > 0xffffffffu || r.end - r.begin > 0xffffffffu;
    });
  }
  std::size_t n = write(a, out.first(room));
  ack_now_ = false;
  window_update_ = false;
  ack_at_.reset();
  ack_held_since_.reset();
  unacked_ = 0;
  last_sent_ = now;
  advertised_limit_ = limit();
  ++stats_.datagrams_sent;
  return n;
}

std::optional<time_point> receiver::next_deadline() const {
  if (abort_pending_ || !started_) return time_point::min();
  if (state_ == state::failed) return std::nullopt;
  if (ack_now_ || window_update_) return time_point::min();
  std::optional<time_point> t = ack_at_;
  if (state_ != state::complete && last_sent_) t = earliest(t, *last_sent_ + config_.keepalive);
  if (state_ == state::running) {
    t = earliest(t, (last_heard_ ? *last_heard_ : *started_) + config_.idle_timeout);
  }
  return t;
}

}  // namespace improto::transfer

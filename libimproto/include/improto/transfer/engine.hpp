#pragma once

// The download engine of protocol 4's UDP part: a sender (the server's side)
// and a receiver (the client's), sans-I/O.
//
// Design note
// * No sockets, no clock, no threads. A transport owns the socket and the
//   timer and drives an endpoint with three calls, QUIC-style:
//     on_datagram(bytes, now)      for every datagram from the peer's address;
//     poll_transmit(now, buffer)   until it returns 0, sending each datagram;
//     next_deadline()              when to call poll_transmit again at the
//                                  latest (timers and pacing), if no datagram
//                                  comes first.
//   Tests drive both endpoints over a simulated link and clock. A transport
//   loop, for either side:
//     for (;;) {
//       while (auto n = ep.poll_transmit(clock::now(), buf)) send(buf, n);
//       (receiver: write ep.readable() to disk, then ep.consume(n))
//       wait for a datagram or ep.next_deadline(), whichever comes first;
//       on a datagram: ep.on_datagram(bytes, clock::now());
//     }
//   Datagrams of one batch are the same size (datagram_size) but the last,
//   which suits sendmmsg and UDP GSO.
// * The sender never buffers file data: it asks its data_source for the
//   bytes of a datagram when it builds one (a pread into the send buffer, a
//   retransmission reads them again). It keeps one small record per datagram
//   in flight.
// * The receiver holds at most `window` bytes: everything received and not
//   yet consumed by the application, in order or not, lives in one ring of
//   that size, allocated once. It advertises how far the sender may go
//   (consumed + window), so a slow disk or a paused reader stops the sender
//   instead of growing memory.
// * Reliability: SACK ranges in every ACK; loss found by the packet (3) and
//   time (9/8 RTT) thresholds of RFC 9002/RACK, or by the RFC 6298
//   retransmission timer (Karn's algorithm: no RTT sample from a
//   retransmitted datagram; exponential backoff). A tail loss probe (RFC
//   8985 TLP) comes first: 2 SRTT (+1 ms, the receiver's ACK delay) after
//   the last transmission with nothing heard, one datagram goes beyond the
//   window (new data, else the newest segment again) to draw an ACK. A lost
//   last ACK, or the lost tail of a window, then costs a few RTTs instead of
//   a 200 ms timeout and a collapsed window. Congestion: CUBIC (RFC
//   9438), paced at 2x (slow start) or 1.25x the window per smoothed RTT.
// * Integrity is end to end: the receiver delivers bytes in order, so the
//   file layer (file.hpp) hashes them as it writes them; the engine checks
//   the FIN's last byte against the byte it received.
// * Every datagram carries the transfer id and the receiver's random key; a
//   datagram with the wrong id or key, or that does not parse, is dropped
//   and counted, never an error: a stranger cannot end a transfer.
//   Authenticated nonsense (an ACK of bytes never sent, DATA past the end)
//   ends the transfer with invalid_argument and an ABORT to the peer.
// * Both endpoints are single-threaded objects; calls must not overlap.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "improto/error.hpp"
#include "improto/transfer/congestion.hpp"
#include "improto/transfer/messages.hpp"

namespace improto::transfer {

// Where a sender's bytes come from. read() fills all of `out` with the
// file's bytes at `offset` (a short file is an io_error).
class data_source {
 public:
  virtual ~data_source() = default;
  virtual result<void> read(std::uint64_t offset, std::span<char> out) = 0;
};

// Bytes already in memory (tests, generated content): the caller keeps them
// alive and unchanged while the source is read.
class memory_source final : public data_source {
 public:
  explicit memory_source(std::span<const char> bytes) noexcept : bytes_(bytes) {}
  result<void> read(std::uint64_t offset, std::span<char> out) override {
    if (offset > bytes_.size() || out.size() > bytes_.size() - offset) {
      return fail(errc::io_error, "read past the end of the source's bytes");
    }
    std::memcpy(out.data(), bytes_.data() + offset, out.size());
    return {};
  }

 private:
  std::span<const char> bytes_;
};

enum class state {
  running,
  paused,
  complete,  // sender: the receiver acknowledged every byte and the FIN;
             // receiver: every byte and the FIN arrived (maybe not all consumed)
  failed,    // error() says why
};

// Counters for logs and tests.
struct stats {
  std::uint64_t datagrams_sent = 0;
  std::uint64_t datagrams_received = 0;
  std::uint64_t bytes_sent = 0;            // payload bytes, retransmissions included
  std::uint64_t bytes_retransmitted = 0;
  std::uint64_t dropped = 0;               // unparsable, wrong id or key, wrong direction
  std::uint64_t duplicates = 0;            // payload bytes received twice (receiver)
  std::uint64_t timeouts = 0;              // retransmission timer expiries (sender)
  std::uint64_t probes = 0;                // tail loss probes sent (sender)
  std::uint64_t losses = 0;                // datagrams declared lost (sender)
};

struct sender_config {
  std::uint32_t id = 0;         // the TRANSFER's id, non-zero
  std::uint64_t key = 0;        // 0: learn it from the receiver's first ACK
  std::uint64_t size = 0;       // the file's size
  std::uint64_t offset = 0;     // first byte to send (the TRANSFER's Offset)
  // DATA datagrams, up to max_datagram. A transport that knows the path MTU
  // may lower it (set_datagram_size()).
  std::size_t datagram_size = default_datagram;
  rtt_config rtt{};
  std::uint64_t initial_window = 10;  // segments
  bool pacing = true;
  bool tail_loss_probe = true;  // RFC 8985 TLP (off only to measure what it brings)
  duration idle_timeout = std::chrono::seconds(30);  // nothing heard: timeout
};

class sender {
 public:
  // invalid_config for an id of 0, offset > size, size past max_offset, or a
  // datagram_size outside data_header_size + 1 .. max_datagram.
  static result<sender> create(const sender_config& config, data_source& source);

  // Any bytes: a datagram of this transfer updates the state, anything else
  // is counted in stats().dropped.
  void on_datagram(std::string_view bytes, time_point now);
  // Writes the next datagram into `out` (at least datagram_size bytes, else
  // nothing is written) and returns its size, or 0 when nothing is to be
  // sent now. Runs expired timers first.
  std::size_t poll_transmit(time_point now, std::span<char> out);
  // The earliest time poll_transmit() has something to do: time_point::min()
  // for at once; nullopt when only a datagram can change anything (or the
  // transfer is over).
  std::optional<time_point> next_deadline() const;

  // The path's MTU changed, or the transport learnt it: DATA datagrams from
  // now on are at most `size` bytes (retransmissions too: lost bytes go
  // again in pieces of the new size). The congestion window keeps its
  // segments. invalid_config outside data_header_size + 1 .. max_datagram.
  result<void> set_datagram_size(std::size_t size);
  std::size_t datagram_size() const noexcept { return config_.datagram_size; }

  // PAUSE/RESUME/CANCEL from the TCP side. cancel() sends one ABORT.
  void pause();
  void resume(time_point now);
  void cancel();

  transfer::state state() const noexcept { return state_; }
  const std::optional<error>& failure() const noexcept { return error_; }
  const transfer::stats& stats() const noexcept { return stats_; }
  // Every byte before it was acknowledged.
  std::uint64_t acknowledged() const noexcept { return cum_; }
  std::uint64_t bytes_in_flight() const noexcept { return in_flight_; }
  std::uint64_t congestion_window() const noexcept { return cc_.window(); }
  const rtt_estimator& rtt() const noexcept { return rtt_; }
  std::size_t records() const noexcept { return live_; }

 private:
  struct segment {
    std::uint64_t pn;        // send order
    std::uint64_t offset;
    std::uint32_t length;    // 0: the FIN
    time_point sent;
    bool retransmission;     // Karn: no RTT sample
    bool live = true;        // false: acknowledged or lost, only a hole in flight_
  };

  sender(const sender_config& config, data_source& source);
  void fail(error e, bool tell_peer);
  void on_ack(const ack& a, time_point now);
  void mark_acked(std::uint64_t begin, std::uint64_t end);
  bool is_acked(std::uint64_t begin, std::uint64_t end) const;
  void detect_losses(time_point now);
  void lose(const segment& s, time_point now);
  void queue_resend(std::uint64_t begin, std::uint64_t end);
  segment* find(std::uint64_t pn);
  void forget(segment& s);
  void record(const segment& s);
  void clear_flight();
  std::size_t send_data(time_point now, std::span<char> out, std::uint64_t offset,
                        std::uint32_t length, bool retransmission);
  void on_rto(time_point now);
  void arm_probe(time_point now);
  std::size_t send_probe(time_point now, std::span<char> out);
  void run_timers(time_point now);
  duration loss_delay() const;
  std::uint64_t pacing_rate() const;  // bytes per second; 0 = unpaced
  bool pace(time_point now, std::size_t bytes);

  sender_config config_;
  data_source* source_;
  transfer::state state_ = state::running;
  std::optional<error> error_;
  bool abort_pending_ = false;
  abort_reason abort_reason_ = abort_reason::cancelled;
  transfer::stats stats_;

  bool bound_ = false;              // key known
  std::uint64_t cum_;               // acknowledged below this
  std::map<std::uint64_t, std::uint64_t> sacked_;  // begin -> end, above cum_
  std::map<std::uint64_t, std::uint64_t> resend_;  // lost, to send again
  std::uint64_t next_ = 0;          // first byte never sent
  std::uint64_t limit_ = 0;         // flow control: the receiver accepts below this
  // Datagrams in flight by packet number: flight_[pn - flight_base_]. Packet
  // numbers are consecutive, so a ring instead of a tree: no node to
  // allocate and free per datagram. Acknowledged or lost ones become holes
  // until the oldest goes; live_ counts the others.
  std::deque<segment> flight_;
  std::uint64_t flight_base_ = 0;  // pn of flight_.front()
  std::size_t live_ = 0;
  std::map<std::uint64_t, std::uint64_t> by_offset_;  // offset -> pn (DATA only)
  std::uint64_t in_flight_ = 0;
  std::uint64_t next_pn_ = 0;
  std::optional<std::uint64_t> largest_acked_pn_;
  bool fin_sent_ = false;           // a FIN is in flight

  rtt_estimator rtt_;
  cubic cc_;
  std::optional<time_point> rto_at_;
  std::optional<time_point> loss_at_;
  std::optional<time_point> probe_at_;  // RFC 8985 PTO
  bool probe_due_ = false;              // the next datagram is the probe
  bool probe_out_ = false;              // one probe until an ACK acknowledges new data
  std::optional<time_point> last_heard_;
  std::optional<time_point> started_;
  double pace_credit_ = 0;          // bytes
  std::optional<time_point> pace_time_;
  std::optional<time_point> pace_at_;  // blocked by pacing until then
};

struct receiver_config {
  std::uint32_t id = 0;      // the TRANSFER's id, non-zero
  std::uint64_t key = 0;     // random, non-zero: the caller draws it
  std::uint64_t size = 0;    // the TRANSFER's Size
  std::uint64_t offset = 0;  // the TRANSFER's Offset: bytes before it are on disk
  std::size_t window = 4u << 20;    // bytes held at most
  std::size_t max_sack_ranges = 32;
  std::size_t max_ack_size = default_datagram;
  std::uint32_t ack_every = 2;      // datagrams in order before an ACK
  duration ack_delay = std::chrono::milliseconds(1);
  duration keepalive = std::chrono::milliseconds(250);  // ACK again when silent
  duration idle_timeout = std::chrono::seconds(30);
};

class receiver {
 public:
  // invalid_config for id or key 0, offset > size, size past max_offset, a
  // window outside 1 .. 2^31 bytes, max_sack_ranges over 255 or an
  // max_ack_size too small for one range.
  static result<receiver> create(const receiver_config& config);

  void on_datagram(std::string_view bytes, time_point now);
  // ACKs (and one ABORT after cancel() or abort()); the first ACK opens the
  // transfer: it tells the sender the key. `out` needs max_ack_size bytes.
  // Once complete, the receiver still answers every FIN: keep feeding it
  // datagrams for a few seconds so a lost last ACK is repeated.
  std::size_t poll_transmit(time_point now, std::span<char> out);
  // As sender::next_deadline().
  std::optional<time_point> next_deadline() const;

  // The next bytes in order, not yet consumed (one piece of the ring; call
  // again after consume() for the rest). The view is valid until the next
  // non-const call.
  std::span<const char> readable() const noexcept;
  // The file offset of readable().front().
  std::uint64_t read_offset() const noexcept { return consumed_; }
  // The application has stored the first n readable bytes: frees them and
  // opens the window.
  void consume(std::size_t n);

  void pause();
  void resume(time_point now);
  void cancel();
  // The application failed (e.g. could not write): fails with `e` and sends
  // an ABORT with its reason.
  void abort(error e);

  transfer::state state() const noexcept { return state_; }
  const std::optional<error>& failure() const noexcept { return error_; }
  const transfer::stats& stats() const noexcept { return stats_; }
  // complete and every byte consumed.
  bool finished() const noexcept { return state_ == state::complete && consumed_ == config_.size; }
  // Bytes held: in order but not consumed, plus out of order. <= window.
  std::uint64_t buffered() const noexcept;
  std::uint64_t received() const noexcept { return cum_; }
  std::uint64_t last_offset() const noexcept { return config_.size - 1; }  // when size > 0
  std::uint8_t last_byte() const noexcept { return last_byte_; }

 private:
  explicit receiver(const receiver_config& config);
  void fail(error e, bool tell_peer);
  void on_data(const data& d, time_point now);
  void on_fin(const fin& f, time_point now);
  std::uint64_t limit() const noexcept { return consumed_ + config_.window; }
  void store(std::uint64_t offset, std::string_view bytes);
  std::uint8_t byte_at(std::uint64_t offset) const noexcept;

  receiver_config config_;
  transfer::state state_ = state::running;
  bool paused_ = false;
  std::optional<error> error_;
  bool abort_pending_ = false;
  abort_reason abort_reason_ = abort_reason::cancelled;
  transfer::stats stats_;

  std::vector<char> ring_;
  std::uint64_t consumed_;
  std::uint64_t cum_;
  std::map<std::uint64_t, std::uint64_t> ooo_;  // begin -> end, above cum_
  std::uint64_t ooo_bytes_ = 0;
  std::uint64_t latest_begin_ = 0;  // the range of the newest datagram goes first
  bool fin_ = false;
  std::uint8_t last_byte_ = 0;

  bool ack_now_ = false;
  std::uint32_t unacked_ = 0;
  std::optional<time_point> ack_at_;
  std::optional<time_point> ack_held_since_;
  std::optional<time_point> last_sent_;
  std::optional<time_point> last_heard_;
  std::optional<time_point> started_;
  std::uint64_t advertised_limit_ = 0;
  bool window_update_ = false;
};

}  // namespace improto::transfer

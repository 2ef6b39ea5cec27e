#pragma once

// The transfer engine's two published algorithms, kept apart so that each is
// unit-tested against its RFC's numbers:
//  * rtt_estimator: the retransmission timeout of RFC 6298 (SRTT, RTTVAR,
//    RTO = SRTT + max(G, 4 RTTVAR), exponential backoff on expiry). Karn's
//    algorithm is the caller's part: it samples only segments sent once.
//  * cubic: the congestion controller of RFC 9438 (slow start, the cubic
//    window, the Reno-friendly region, fast convergence, one reduction per
//    round trip, the timeout rule of its section 4.8).
// Time is passed in; nothing here reads a clock.

#include <chrono>
#include <cstdint>
#include <optional>

namespace improto::transfer {

using clock = std::chrono::steady_clock;
using time_point = clock::time_point;
using duration = clock::duration;

struct rtt_config {
  duration initial_rto = std::chrono::seconds(1);  // RFC 6298 (2.1)
  // RFC 6298 (2.4) says 1 s; like Linux we default to 200 ms, which a
  // download on a LAN or loopback needs. Tests set 1 s to check the RFC.
  duration min_rto = std::chrono::milliseconds(200);
  duration max_rto = std::chrono::seconds(60);  // (2.5)
  duration granularity = std::chrono::milliseconds(1);  // G
};

class rtt_estimator {
 public:
  explicit rtt_estimator(rtt_config config = {}) : config_(config) {}

  // A measurement R (2.2 the first, 2.3 later ones); clears the backoff.
  void on_sample(duration r) noexcept;
  // The retransmission timer expired (5.5): RTO doubles, up to max_rto.
  void on_timeout() noexcept;

  // The current RTO, backoff included.
  duration rto() const noexcept;
  bool has_sample() const noexcept { return samples_ > 0; }
  duration srtt() const noexcept { return srtt_; }
  duration rttvar() const noexcept { return rttvar_; }
  duration latest() const noexcept { return latest_; }
  duration min_rtt() const noexcept { return min_; }
  unsigned backoff() const noexcept { return backoff_; }

 private:
  rtt_config config_;
  duration srtt_{};
  duration rttvar_{};
  duration latest_{};
  duration min_{};
  std::uint64_t samples_ = 0;
  unsigned backoff_ = 0;
};

struct cubic_config {
  std::uint64_t mss = 1210;             // payload bytes of a full datagram
  std::uint64_t initial_window = 10;    // segments (RFC 6928)
  std::uint64_t max_window = 1u << 16;  // segments; caps growth while not lossy
  double c = 0.4;                       // RFC 9438 C
  double beta = 0.7;                    // RFC 9438 beta_cubic
  bool fast_convergence = true;
};

class cubic {
 public:
  explicit cubic(cubic_config config = {});

  // Bytes the sender may have in flight.
  std::uint64_t window() const noexcept;
  std::uint64_t ssthresh() const noexcept;
  bool in_slow_start() const noexcept { return cwnd_ < ssthresh_; }

  // `acked` bytes newly acknowledged by an ACK at `now`; `sent` is when the
  // newest of them was sent (ends a recovery period when it is after its
  // start); `srtt` the smoothed RTT. `app_limited`: the sender had less than
  // a window in flight, so the window is not grown (RFC 9438 4.2 note).
  void on_ack(std::uint64_t acked, time_point sent, time_point now, duration srtt,
              bool app_limited) noexcept;
  // A segment sent at `sent` was found lost at `now`. Reacts once per round
  // trip: a loss of a segment sent before the current reduction is ignored.
  // Returns whether it reduced the window.
  bool on_loss(time_point sent, time_point now) noexcept;
  // The retransmission timer expired (RFC 9438 4.8).
  void on_timeout(time_point now) noexcept;
  // The datagrams' payload size changed (the path MTU): the window keeps
  // its segments, as Linux TCP's does, so its bytes follow the new size.
  void set_mss(std::uint64_t mss) noexcept { config_.mss = mss; }
  std::uint64_t mss() const noexcept { return config_.mss; }

  // For tests and logs, in segments and seconds (RFC 9438's units).
  double cwnd_segments() const noexcept { return cwnd_; }
  double w_max() const noexcept { return w_max_; }
  double w_est() const noexcept { return w_est_; }
  double k() const noexcept { return k_; }
  // W_cubic(t) = C (t - K)^3 + W_max of the current epoch.
  double w_cubic(double t) const noexcept;
  bool in_recovery() const noexcept { return recovering_; }

 private:
  void start_epoch(time_point now) noexcept;
  void reduce(time_point now) noexcept;

  cubic_config config_;
  double cwnd_;
  double ssthresh_;
  double w_max_ = 0;
  double cwnd_prior_ = 0;
  double w_est_ = 0;
  double k_ = 0;
  std::optional<time_point> epoch_;      // start of the congestion-avoidance stage
  std::optional<time_point> reduction_;  // when the window was last reduced
  bool recovering_ = false;              // until a segment sent after it is acked
  bool after_timeout_ = false;
};

}  // namespace improto::transfer

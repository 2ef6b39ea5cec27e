#include "improto/transfer/congestion.hpp"

#include <algorithm>
#include <cmath>

namespace improto::transfer {

// ------------------------------------------------------------ RFC 6298

void rtt_estimator::on_sample(duration r) noexcept {
  if (r < duration::zero()) r = duration::zero();
  latest_ = r;
  if (samples_ == 0) {
    srtt_ = r;          // (2.2)
    rttvar_ = r / 2;
    min_ = r;
  } else {
    duration diff = srtt_ > r ? srtt_ - r : r - srtt_;
    rttvar_ = (rttvar_ * 3 + diff) / 4;  // (2.3), beta = 1/4 first
    srtt_ = (srtt_ * 7 + r) / 8;         // alpha = 1/8
    min_ = std::min(min_, r);
  }
  ++samples_;
  backoff_ = 0;
}

void rtt_estimator::on_timeout() noexcept {
  // Stop doubling once at the ceiling; the shift stays small.
  if (rto() < config_.max_rto) ++backoff_;
}

duration rtt_estimator::rto() const noexcept {
  duration base = samples_ == 0 ? config_.initial_rto
                                : srtt_ + std::max(config_.granularity, rttvar_ * 4);
  base = std::clamp(base, config_.min_rto, config_.max_rto);
  for (unsigned i = 0; i < backoff_ && base < config_.max_rto; ++i) base *= 2;
  return std::min(base, config_.max_rto);
}

// ------------------------------------------------------------ RFC 9438

namespace {
double seconds(duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

cubic::cubic(cubic_config config)
    : config_(config),
      cwnd_(static_cast<double>(config.initial_window)),
      ssthresh_(static_cast<double>(config.max_window)) {}

std::uint64_t cubic::window() const noexcept {
  return static_cast<std::uint64_t>(cwnd_ * static_cast<double>(config_.mss));
}

std::uint64_t cubic::ssthresh() const noexcept {
  return static_cast<std::uint64_t>(ssthresh_ * static_cast<double>(config_.mss));
}

double cubic::w_cubic(double t) const noexcept {
  double d = t - k_;
  return config_.c * d * d * d + w_max_;
}

void cubic::start_epoch(time_point now) noexcept {
  epoch_ = now;
  if (after_timeout_ || w_max_ <= cwnd_) {
    // Section 4.8 after a timeout, and a window already past W_max: the
    // curve starts here, in its convex part.
    k_ = 0;
    w_max_ = cwnd_;
  } else {
    k_ = std::cbrt((w_max_ - cwnd_) / config_.c);  // (2), cwnd_epoch = cwnd
  }
  w_est_ = cwnd_;
  after_timeout_ = false;
}

void cubic::on_ack(std::uint64_t acked, time_point sent, time_point now, duration srtt,
                   bool app_limited) noexcept {
  if (recovering_ && reduction_ && sent > *reduction_) recovering_ = false;
  if (recovering_ || app_limited || acked == 0) return;
  double segs = static_cast<double>(acked) / static_cast<double>(config_.mss);
  double cap = static_cast<double>(config_.max_window);
  if (cwnd_ < ssthresh_) {
    if (cwnd_ + segs <= ssthresh_) {
      cwnd_ = std::min(cwnd_ + segs, cap);
      return;
    }
    segs -= ssthresh_ - cwnd_;
    cwnd_ = ssthresh_;
  }
  if (!epoch_) start_epoch(now);
  double t = seconds(now - *epoch_);
  // Reno-friendly estimate (4.3); alpha becomes 1 once W_est has caught up
  // with the window before the last reduction.
  double alpha = w_est_ >= cwnd_prior_ ? 1.0 : 3 * (1 - config_.beta) / (1 + config_.beta);
  w_est_ += alpha * segs / cwnd_;
  if (w_cubic(t) < w_est_) {
    cwnd_ = std::max(cwnd_, w_est_);  // Reno-friendly region
  } else {
    double target = std::clamp(w_cubic(t + seconds(srtt)), cwnd_, 1.5 * cwnd_);  // (4.4)
    cwnd_ += (target - cwnd_) / cwnd_ * segs;
  }
  cwnd_ = std::min(cwnd_, cap);
}

void cubic::reduce(time_point now) noexcept {
  cwnd_prior_ = cwnd_;
  // Fast convergence (4.7): a flow whose W_max shrinks releases bandwidth.
  if (config_.fast_convergence && cwnd_ < w_max_) {
    w_max_ = cwnd_ * (1 + config_.beta) / 2;
  } else {
    w_max_ = cwnd_;
  }
  ssthresh_ = std::max(cwnd_ * config_.beta, 2.0);  // (4.6)
  epoch_.reset();
  reduction_ = now;
}

bool cubic::on_loss(time_point sent, time_point now) noexcept {
  if (reduction_ && sent <= *reduction_) return false;  // once per round trip
  reduce(now);
  cwnd_ = ssthresh_;
  recovering_ = true;
  return true;
}

void cubic::on_timeout(time_point now) noexcept {
  // A second timeout in a row keeps the ssthresh of the first (RFC 5681 (4)).
  if (!(after_timeout_ && cwnd_ <= 1.0)) reduce(now);
  reduction_ = now;
  cwnd_ = 1;
  recovering_ = false;
  after_timeout_ = true;
}

}  // namespace improto::transfer

// RFC 6298 and RFC 9438 numbers, checked on the two algorithms alone.

#include <doctest/doctest.h>

#include <cmath>

#include "improto/transfer/congestion.hpp"

namespace tr = improto::transfer;
using namespace std::chrono_literals;

TEST_CASE("RFC 6298: first sample, later samples, minimum, backoff") {
  tr::rtt_estimator rtt({.initial_rto = 1s, .min_rto = 1s, .max_rto = 60s, .granularity = 1ms});
  CHECK(rtt.rto() == 1s);  // (2.1) before any measurement
  rtt.on_timeout();
  CHECK(rtt.rto() == 2s);  // (5.5) backed off before a sample too

  rtt.on_sample(400ms);  // (2.2): SRTT = R, RTTVAR = R/2, RTO = R + 4 R/2 = 1.2 s
  CHECK(rtt.srtt() == 400ms);
  CHECK(rtt.rttvar() == 200ms);
  CHECK(rtt.rto() == 1200ms);

  rtt.on_sample(800ms);  // (2.3): RTTVAR = 3/4 200 + 1/4 |400-800| = 250; SRTT = 7/8 400 + 1/8 800 = 450
  CHECK(rtt.rttvar() == 250ms);
  CHECK(rtt.srtt() == 450ms);
  CHECK(rtt.rto() == 1450ms);

  for (int i = 0; i < 200; ++i) rtt.on_sample(10ms);
  CHECK(rtt.rto() == 1s);  // (2.4) rounded up to the 1 s minimum

  rtt.on_timeout();  // (5.5) doubling, up to the 60 s maximum (2.5)
  CHECK(rtt.rto() == 2s);
  rtt.on_timeout();
  CHECK(rtt.rto() == 4s);
  for (int i = 0; i < 10; ++i) rtt.on_timeout();
  CHECK(rtt.rto() == 60s);
  rtt.on_sample(10ms);  // a new sample (never from a retransmission: Karn) ends the backoff
  CHECK(rtt.rto() == 1s);
  CHECK(rtt.backoff() == 0);
}

TEST_CASE("RFC 6298: G bounds the variance term") {
  tr::rtt_estimator rtt({.min_rto = 0ms, .granularity = 5ms});
  for (int i = 0; i < 100; ++i) rtt.on_sample(2ms);
  CHECK(rtt.rttvar() < 1ms);
  CHECK(rtt.rto() == 7ms);  // SRTT + max(G, 4 RTTVAR)
}

namespace {

constexpr std::uint64_t mss = 1000;
tr::time_point at(double s) {
  return tr::time_point{} + std::chrono::duration_cast<tr::duration>(std::chrono::duration<double>(s));
}

// Grows the window to `segments` in slow start.
tr::cubic grown(double segments) {
  tr::cubic cc({.mss = mss, .initial_window = 10});
  double now = 1;
  while (cc.cwnd_segments() < segments) {
    cc.on_ack(mss, at(now), at(now), 100ms, false);
  }
  return cc;
}

}  // namespace

TEST_CASE("RFC 9438: slow start, then the reduction by beta = 0.7 and K") {
  tr::cubic cc({.mss = mss, .initial_window = 10});
  CHECK(cc.window() == 10 * mss);
  CHECK(cc.in_slow_start());
  cc.on_ack(5 * mss, at(1), at(1), 100ms, false);
  CHECK(cc.cwnd_segments() == doctest::Approx(15));

  auto c = grown(100);
  REQUIRE(c.cwnd_segments() == doctest::Approx(100));
  CHECK(c.on_loss(at(9), at(10)));
  CHECK(c.cwnd_segments() == doctest::Approx(70));  // (4.6) cwnd * beta
  CHECK(c.ssthresh() == 70 * mss);
  CHECK(c.w_max() == doctest::Approx(100));
  // Once per round trip: losses of segments sent before the reduction do not count.
  CHECK_FALSE(c.on_loss(at(9.5), at(10.01)));
  CHECK(c.cwnd_segments() == doctest::Approx(70));
  // The recovery ends with the ACK of a segment sent after the reduction;
  // the congestion-avoidance epoch starts there: K = cbrt((100 - 70) / 0.4).
  c.on_ack(mss, at(10.2), at(10.3), 100ms, false);
  CHECK(c.k() == doctest::Approx(std::cbrt(30.0 / 0.4)));
  CHECK(c.w_cubic(0) == doctest::Approx(70));
  CHECK(c.w_cubic(c.k()) == doctest::Approx(100));
  CHECK(c.w_cubic(c.k() + 1) == doctest::Approx(100.4));
  CHECK(c.w_cubic(c.k() + 2) == doctest::Approx(103.2));
}

TEST_CASE("RFC 9438: the window follows W_cubic(t) on a long-RTT path") {
  // At a 500 ms RTT the cubic curve grows faster than Reno would.
  auto c = grown(100);
  c.on_loss(at(9), at(10));
  double t0 = 10.5;
  c.on_ack(mss, at(10.4), at(t0), 500ms, false);  // starts the epoch at t0
  // A window's worth of ACKs spread over each RTT for 8 s.
  double now = t0;
  while (now < t0 + 8) {
    auto n = static_cast<int>(c.cwnd_segments());
    for (int i = 0; i < n; ++i) {
      now += 0.5 / n;
      c.on_ack(mss, at(now - 0.5), at(now), 500ms, false);
    }
  }
  double t = now - t0;
  // Aiming at W_cubic(t + RTT) one RTT ahead, cwnd is W_cubic(t) within a
  // few segments, and above Reno's estimate.
  CHECK(c.cwnd_segments() == doctest::Approx(c.w_cubic(t)).epsilon(0.03));
  CHECK(c.cwnd_segments() > c.w_est());
  CHECK(c.cwnd_segments() > 100);  // past W_max: the convex region
}

TEST_CASE("RFC 9438: the Reno-friendly region on a short-RTT path") {
  auto c = grown(100);
  c.on_loss(at(9), at(10));
  double now = 10.001;
  c.on_ack(mss, at(10.0005), at(now), 1ms, false);
  double start = c.w_est();
  // 20 round trips of 1 ms: W_cubic barely moves (t = 20 ms), W_est grows by
  // alpha = 3 (1 - 0.7) / (1 + 0.7) segments per round trip.
  for (int rt = 0; rt < 20; ++rt) {
    auto n = static_cast<int>(c.cwnd_segments());
    for (int i = 0; i < n; ++i) {
      now += 0.001 / n;
      c.on_ack(mss, at(now - 0.001), at(now), 1ms, false);
    }
  }
  double alpha = 3 * (1 - 0.7) / (1 + 0.7);
  CHECK(c.w_est() - start == doctest::Approx(20 * alpha).epsilon(0.1));
  CHECK(c.cwnd_segments() == doctest::Approx(c.w_est()));
  CHECK(c.w_cubic(now - 10.001) < c.w_est());
}

TEST_CASE("RFC 9438: fast convergence lowers W_max on a second loss below it") {
  auto c = grown(100);
  c.on_loss(at(9), at(10));   // W_max = 100, cwnd = 70
  c.on_ack(mss, at(10.1), at(10.2), 100ms, false);
  CHECK(c.on_loss(at(10.3), at(10.4)));  // cwnd ~70 < W_max
  double before = 70.0 + 0;  // the window at the loss was about 70
  CHECK(c.w_max() == doctest::Approx(c.cwnd_segments() / 0.7 * (1 + 0.7) / 2).epsilon(0.01));
  CHECK(c.w_max() < before);
}

TEST_CASE("RFC 9438 4.8: a timeout drops to one segment, then K = 0 at the epoch") {
  auto c = grown(100);
  c.on_timeout(at(10));
  CHECK(c.cwnd_segments() == doctest::Approx(1));
  CHECK(c.ssthresh() == 70 * mss);
  double now = 10;
  while (c.in_slow_start()) {
    now += 0.01;
    c.on_ack(mss, at(now), at(now), 100ms, false);
  }
  now += 0.01;
  c.on_ack(mss, at(now), at(now), 100ms, false);
  CHECK(c.k() == 0);
  CHECK(c.w_max() == doctest::Approx(70).epsilon(0.02));
}

TEST_CASE("RFC 9438: no growth while application-limited") {
  tr::cubic cc({.mss = mss, .initial_window = 10});
  cc.on_ack(5 * mss, at(1), at(1), 100ms, true);
  CHECK(cc.cwnd_segments() == doctest::Approx(10));
}

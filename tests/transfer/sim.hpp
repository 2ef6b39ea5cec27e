#pragma once

// A deterministic simulated link and clock for the transfer engine: a seeded
// PRNG decides loss (random and in bursts), duplication, delay, jitter and
// reordering; a bottleneck of fixed rate with a drop-tail queue stands for
// the path. Both endpoints run until they finish or fail.

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <queue>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "improto/transfer/engine.hpp"
#include "improto/transfer/file.hpp"

namespace sim {

namespace tr = improto::transfer;
using namespace std::chrono_literals;

struct link_config {
  double loss = 0;             // random loss, each datagram
  double burst_start = 0;      // chance a burst of losses starts
  int burst_length = 0;        // datagrams lost in a row in a burst
  double duplicate = 0;
  double corrupt = 0;          // chance one bit of the datagram flips
  // Everything sent in [blackout_from, blackout_to) of simulated time is lost.
  tr::time_point blackout_from{};
  tr::time_point blackout_to{};
  double reorder = 0;          // chance a datagram is held back by reorder_delay
  tr::duration reorder_delay = 3ms;
  tr::duration delay = 1ms;    // one way
  tr::duration jitter = 0ms;   // uniform extra delay 0..jitter
  double rate = 12.5e6;        // bytes per second at the bottleneck (100 Mbit/s)
  std::size_t queue = 128 * 1024;  // bottleneck queue, bytes
  // From mtu_from on, datagrams over `mtu` bytes never leave (the kernel's
  // EMSGSIZE under IP_PMTUDISC_DO when the route's MTU drops); 0: no limit.
  std::size_t mtu = 0;
  tr::time_point mtu_from{};
};

using memory_source = tr::memory_source;

inline std::string random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// One direction of the path.
class pipe {
 public:
  pipe(link_config c, std::uint64_t seed) : c_(c), rng_(seed) {}

  void send(std::string bytes, tr::time_point now) {
    if (c_.mtu > 0 && now >= c_.mtu_from) {
      if (bytes.size() > c_.mtu) {
        ++too_large;
        return;
      }
      largest_after_mtu = std::max(largest_after_mtu, bytes.size());
    }
    if (now >= c_.blackout_from && now < c_.blackout_to) return;
    if (burst_left_ > 0) {
      --burst_left_;
      return;
    }
    if (c_.burst_start > 0 && chance(c_.burst_start)) {
      burst_left_ = c_.burst_length - 1;
      return;
    }
    if (c_.loss > 0 && chance(c_.loss)) return;
    if (c_.corrupt > 0 && chance(c_.corrupt) && !bytes.empty()) {
      auto at = std::uniform_int_distribution<std::size_t>(0, bytes.size() * 8 - 1)(rng_);
      bytes[at / 8] = static_cast<char>(bytes[at / 8] ^ (1 << (at % 8)));
      ++corrupted;
    }
    int copies = (c_.duplicate > 0 && chance(c_.duplicate)) ? 2 : 1;
    for (int i = 0; i < copies; ++i) enqueue(bytes, now);
  }

  std::optional<tr::time_point> next() const {
    if (q_.empty()) return std::nullopt;
    return q_.top().at;
  }

  // Datagrams due at `now`, in arrival order.
  std::vector<std::string> take(tr::time_point now) {
    std::vector<std::string> out;
    while (!q_.empty() && q_.top().at <= now) {
      out.push_back(q_.top().bytes);
      q_.pop();
    }
    return out;
  }

  std::uint64_t dropped_at_queue = 0;
  std::uint64_t corrupted = 0;
  std::uint64_t too_large = 0;          // refused: over the MTU
  std::size_t largest_after_mtu = 0;    // the largest datagram sent since mtu_from

 private:
  struct item {
    tr::time_point at;
    std::uint64_t seq;
    std::string bytes;
    bool operator>(const item& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  void enqueue(const std::string& bytes, tr::time_point now) {
    // The bottleneck serializes datagrams one after another.
    tr::time_point start = std::max(now, busy_until_);
    auto backlog = std::chrono::duration<double>(start - now).count() * c_.rate;
    if (backlog + static_cast<double>(bytes.size()) > static_cast<double>(c_.queue)) {
      ++dropped_at_queue;
      return;
    }
    auto tx = std::chrono::duration_cast<tr::duration>(
        std::chrono::duration<double>(static_cast<double>(bytes.size()) / c_.rate));
    busy_until_ = start + tx;
    tr::time_point at = busy_until_ + c_.delay;
    if (c_.jitter > 0ms) {
      at += tr::duration(std::uniform_int_distribution<tr::duration::rep>(0, c_.jitter.count())(rng_));
    }
    if (c_.reorder > 0 && chance(c_.reorder)) at += c_.reorder_delay;
    q_.push({at, seq_++, bytes});
  }

  link_config c_;
  std::mt19937_64 rng_;
  int burst_left_ = 0;
  tr::time_point busy_until_{};
  std::uint64_t seq_ = 0;
  std::priority_queue<item, std::vector<item>, std::greater<>> q_;
};

struct run_result {
  std::string received;          // bytes the application consumed
  tr::time_point end{};
  tr::duration elapsed{};
  std::uint64_t max_buffered = 0;   // receiver
  std::uint64_t max_in_flight = 0;  // sender
  std::uint64_t queue_drops = 0;    // datagrams the bottleneck queues dropped
  std::uint64_t corrupted = 0;      // datagrams with a flipped bit
  std::uint64_t too_large = 0;      // sender's datagrams refused over the MTU
  std::size_t largest_after_mtu = 0;  // sender's largest datagram since mtu_from
  bool sender_complete = false;
  bool receiver_complete = false;
  std::optional<improto::error> sender_error;
  std::optional<improto::error> receiver_error;
};

// Hooks a test can use to act at a point of the run; `now` is simulated.
struct hooks {
  // Called every step; may pause, cancel, inject datagrams (via inject).
  std::function<void(tr::time_point now, tr::sender&, tr::receiver&)> step;
  // How many readable bytes the application takes now (default: all).
  std::function<std::size_t(tr::time_point now, std::size_t readable)> reader;
  // Extra datagrams to the receiver / sender, as if from the network.
  std::vector<std::pair<tr::time_point, std::string>> to_receiver;
  std::vector<std::pair<tr::time_point, std::string>> to_sender;
  bool trust_acks = true;  // false when the link corrupts datagrams
  // The forward path refused a datagram as too large (as EMSGSIZE tells the
  // transport): e.g. shrink the sender's datagrams.
  std::function<void(tr::time_point now, tr::sender&)> too_large;
};

class simulation {
 public:
  simulation(link_config forward, link_config back, std::uint64_t seed)
      : down_(forward, seed), up_(back, seed * 7919 + 1) {}

  // Runs until both ends are complete or one fails, or `limit` of simulated
  // time passes. The receiver's window and memory are checked every step.
  run_result run(tr::sender& s, tr::receiver& r, std::size_t window, hooks h = {},
                 tr::duration limit = 600s) {
    run_result out;
    tr::time_point t0{};
    tr::time_point now = t0 + 1s;
    std::vector<char> buf(tr::max_datagram);
    std::size_t to_r = 0;
    std::size_t to_s = 0;
    std::uint64_t steps = 0;
    while (now - t0 < limit && ++steps < 50'000'000) {
      if (h.step) h.step(now, s, r);
      std::uint64_t refused = down_.too_large;
      for (std::size_t n; (n = s.poll_transmit(now, buf)) > 0;) down_.send(std::string(buf.data(), n), now);
      if (down_.too_large > refused && h.too_large) h.too_large(now, s);
      for (std::size_t n; (n = r.poll_transmit(now, buf)) > 0;) up_.send(std::string(buf.data(), n), now);
      // The application drains in-order bytes.
      for (auto span = r.readable(); !span.empty(); span = r.readable()) {
        std::size_t take = h.reader ? h.reader(now, span.size()) : span.size();
        if (take == 0) break;
        out.received.append(span.data(), take);
        r.consume(take);
      }
      out.max_buffered = std::max(out.max_buffered, r.buffered());
      out.max_in_flight = std::max(out.max_in_flight, s.bytes_in_flight());
      REQUIRE(r.buffered() <= window);
      // The sender keeps no data, only records of what is in flight; a
      // corrupted ACK (a flipped window bit) may let it overshoot, which
      // only costs the receiver's dropping the excess.
      if (h.trust_acks) REQUIRE(s.bytes_in_flight() <= window);
      bool s_done = s.state() == tr::state::complete || s.state() == tr::state::failed;
      bool r_done = r.finished() || r.state() == tr::state::failed;
      if (s_done && r_done && !s.next_deadline() && !down_.next() && !up_.next()) break;
      if ((s.state() == tr::state::failed || r.state() == tr::state::failed) && !down_.next() &&
          !up_.next() && !pending(s.next_deadline()) && !pending(r.next_deadline())) {
        break;
      }
      // Advance to the next event.
      std::optional<tr::time_point> next = down_.next();
      auto pick = [&](std::optional<tr::time_point> t) {
        if (t && (!next || *t < *next)) next = t;
      };
      pick(up_.next());
      pick(s.next_deadline());
      pick(r.next_deadline());
      if (to_r < h.to_receiver.size()) pick(h.to_receiver[to_r].first);
      if (to_s < h.to_sender.size()) pick(h.to_sender[to_s].first);
      if (h.reader && !r.readable().empty()) pick(now + 1ms);
      if (h.step) pick(now + 10ms);
      if (!next) break;
      now = std::max(now, *next);
      for (auto& d : down_.take(now)) r.on_datagram(d, now);
      for (auto& d : up_.take(now)) s.on_datagram(d, now);
      for (; to_r < h.to_receiver.size() && h.to_receiver[to_r].first <= now; ++to_r) {
        r.on_datagram(h.to_receiver[to_r].second, now);
      }
      for (; to_s < h.to_sender.size() && h.to_sender[to_s].first <= now; ++to_s) {
        s.on_datagram(h.to_sender[to_s].second, now);
      }
    }
    out.end = now;
    out.queue_drops = down_.dropped_at_queue + up_.dropped_at_queue;
    out.corrupted = down_.corrupted + up_.corrupted;
    out.too_large = down_.too_large;
    out.largest_after_mtu = down_.largest_after_mtu;
    out.elapsed = now - (t0 + 1s);
    out.sender_complete = s.state() == tr::state::complete;
    out.receiver_complete = r.finished();
    out.sender_error = s.failure();
    out.receiver_error = r.failure();
    return out;
  }

  pipe& down() { return down_; }
  pipe& up() { return up_; }

 private:
  static bool pending(std::optional<tr::time_point> t) { return t && *t == tr::time_point::min(); }
  pipe down_;
  pipe up_;
};

inline std::string hex_sha256(std::string_view bytes) {
  tr::sha256 h;
  h.update(std::span<const char>(bytes.data(), bytes.size()));
  return tr::to_hex(h.finish());
}

}  // namespace sim

#pragma once

// A fixed-rate schedule for the open-loop load generators: request k of a
// run (k = 0, 1, ...) is due at start + k / rate, whatever happened to the
// ones before it, so a slow answer never lowers the offered rate (no
// coordinated omission). bench/http/httprate.cpp, bench/udp/udp_load.cpp.

#include <chrono>
#include <cmath>

namespace bench {

class schedule {
 public:
  using clock = std::chrono::steady_clock;

  schedule(double rate, clock::time_point start) : rate_(rate), start_(start) {}

  clock::time_point start() const { return start_; }

  // When request k is due.
  clock::time_point due(long long k) const {
    return start_ + std::chrono::duration_cast<clock::duration>(
                        std::chrono::duration<double>(static_cast<double>(k) / rate_));
  }

  // How many requests are due by `now`: those with due(k) <= now.
  long long due_by(clock::time_point now) const {
    double elapsed = std::chrono::duration<double>(now - start_).count();
    return elapsed < 0 ? 0 : static_cast<long long>(std::floor(elapsed * rate_)) + 1;
  }

 private:
  double rate_;
  clock::time_point start_;
};

}  // namespace bench

#pragma once

// The buddy server's status seam. A buddy_server keeps SET statuses in its
// own memory; given a buddy_status_store, it also publishes each SET there
// and applies every node's SETs from it, so that N servers behind one
// address answer GET alike. cluster::open_buddy_status (a JetStream KV
// bucket whose TTL is the status TTL, improto/cluster/buddy_status.hpp)
// implements it. Calls and callbacks happen on the io_context's thread.

#include <chrono>
#include <cstdint>
#include <string>

namespace improto::server {

// One SET, as every node must see it: `at` (wall clock, shared by nodes)
// is when it was made; it reads ONLINE until at + the status TTL.
struct buddy_status_update {
  std::string user;
  bool online = false;
  std::string ip;
  std::uint16_t port = 0;
  std::chrono::system_clock::time_point at;

  // `at` for a SET made now, in the milliseconds it travels in between
  // nodes: a finer local stamp would make another node's SET a moment later
  // in the same millisecond look older, and it would be ignored.
  static std::chrono::system_clock::time_point stamp_now() {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now());
  }
};

class buddy_status_sink {
 public:
  virtual ~buddy_status_sink() = default;
  virtual void apply(const buddy_status_update& update) = 0;
};

class buddy_status_store {
 public:
  virtual ~buddy_status_store() = default;
  // Every SET already stored and then every new one (this node's included)
  // goes to `sink`, until stop().
  virtual void start(buddy_status_sink& sink) = 0;
  virtual void stop() = 0;
  // Stores a SET (soft state: a failure is logged, the next SET refreshes).
  virtual void put(const buddy_status_update& update) = 0;
};

}  // namespace improto::server

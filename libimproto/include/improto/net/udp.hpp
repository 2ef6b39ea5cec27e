#pragma once

// UDP transport for request/reply datagram protocols. Datagrams are read and
// answered in batches (recvmmsg/sendmmsg), so a busy server pays one system
// call per batch, not per datagram. Replies are best effort, as UDP is: when
// the socket buffer is full they are dropped.

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/socket.h>

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include "improto/net/common.hpp"
#include "improto/net/udp_limiter.hpp"

namespace improto::net {

struct datagram_limits {
  std::size_t max_datagram = 65'507;  // largest UDP payload over IPv4
  // Datagrams per recvmmsg/sendmmsg. The receive slots are max_datagram
  // bytes each, but only the pages datagrams are written to are ever touched.
  std::size_t batch = 64;
  // Datagrams accepted per second from one source address (0: unlimited),
  // with this burst. Bounds what a spoofed source can make us reflect.
  double rate_per_source = 0;
  double burst = 0;
  // Source addresses the rate limit tracks at once (source_rate_limiter).
  std::size_t tracked_sources = 8192;
};

// Replies queued while a batch is handled; sent together after it.
class udp_replies {
 public:
  void send(std::string_view payload, const asio::ip::udp::endpoint& to);
  // Starts a reply to `to` whose payload is what the caller appends to the
  // returned buffer before the next send() or begin() (formatted in place:
  // no copy). Appending is all the caller may do with it.
  std::string& begin(const asio::ip::udp::endpoint& to);
  std::size_t size() const noexcept { return count_; }

 private:
  friend class udp_socket;
  struct reply {
    std::size_t offset;  // in bytes_; it ends where the next one starts
    asio::ip::udp::endpoint to;
  };
  // All capacity is kept across batches: a steady server allocates nothing.
  std::string bytes_;  // the payloads back to back
  std::vector<reply> replies_;
  std::vector<iovec> vectors_;
  std::vector<mmsghdr> headers_;
  std::size_t count_ = 0;
};

class udp_socket {
 public:
  using handler = std::function<void(std::string_view payload,
                                     const asio::ip::udp::endpoint& from, udp_replies& replies)>;

  static result<udp_socket> bind(asio::io_context& io, std::string_view host, std::uint16_t port,
                                 datagram_limits limits = {});

  asio::ip::udp::endpoint local_endpoint() const;
  // Calls `on_datagram` for every datagram until close(). Oversized
  // (truncated) datagrams and those over the per-source rate are dropped and
  // counted.
  asio::awaitable<void> serve(handler on_datagram);
  // Sends one datagram now (non-blocking); fails on a full socket buffer.
  result<void> send_to(std::string_view payload, const asio::ip::udp::endpoint& to);
  void close();

  // When the batch being handled was read: handlers take the time from here
  // instead of reading the clock once per datagram.
  clock::time_point batch_time() const noexcept { return batch_time_; }

  std::uint64_t dropped_oversized() const noexcept { return dropped_oversized_; }
  std::uint64_t dropped_rate() const noexcept { return dropped_rate_; }

 private:
  udp_socket(asio::ip::udp::socket socket, datagram_limits limits);
  void flush(udp_replies& replies);

  asio::ip::udp::socket socket_;
  datagram_limits limits_;
  source_rate_limiter limiter_;
  clock::time_point batch_time_{};
  std::uint64_t dropped_oversized_ = 0;
  std::uint64_t dropped_rate_ = 0;
};

}  // namespace improto::net

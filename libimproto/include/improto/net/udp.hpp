#pragma once

// UDP transport for request/reply datagram protocols. Datagrams are read and
// answered in batches (recvmmsg/sendmmsg), so a busy server pays one system
// call per batch, not per datagram. Replies are best effort, as UDP is: when
// the socket buffer is full they are dropped.

#include <cstddef>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include "improto/net/common.hpp"
#include "improto/net/udp_limiter.hpp"

namespace improto::net {

namespace detail {
struct udp_receive_slots;  // udp.cpp
}

struct datagram_limits {
  std::size_t max_datagram = 65'507;  // largest UDP payload over IPv4
  // Datagrams per recvmmsg/sendmmsg. Receive slots are packed together:
  // whole when max_datagram is under 2 KiB (the cheapest receive), else a
  // 2 KiB head plus room for the rest of a max_datagram one, of which only
  // the pages long datagrams reach are ever touched.
  std::size_t batch = 64;
  // Datagrams accepted per second from one source address (0: unlimited),
  // with this burst. Bounds what a spoofed source can make us reflect.
  double rate_per_source = 0;
  double burst = 0;
  // Source addresses the rate limit tracks at once (source_rate_limiter).
  std::size_t tracked_sources = 8192;
};

// A datagram's source address as the kernel reported it: its sockaddr bytes,
// valid while the batch is handled. Replies are addressed with it as it is;
// an asio endpoint is made only when asked for. The bytes always have room
// for a sockaddr_in6 (the library makes these from its receive slots and
// from endpoints only), so they can be copied and compared as fixed-size
// words.
class udp_address {
 public:
  // Refers to `e`'s bytes: `e` must outlive the address.
  udp_address(const asio::ip::udp::endpoint& e) noexcept  // NOLINT: implicit on purpose
      : data_(e.data()), size_(static_cast<socklen_t>(e.size())) {}

  const sockaddr* data() const noexcept { return data_; }
  socklen_t size() const noexcept { return size_; }
  // The family is in the first bytes of every sockaddr.
  bool is_v4() const noexcept { return data_->sa_family == AF_INET; }
  asio::ip::udp::endpoint endpoint() const;

  static constexpr std::size_t capacity = sizeof(sockaddr_in6);

 private:
  friend class udp_socket;
  friend struct detail::udp_receive_slots;
  udp_address(const sockaddr* data, socklen_t size) noexcept : data_(data), size_(size) {}
  const sockaddr* data_;
  socklen_t size_;
};

// One datagram of a received batch: views valid while the batch is handled.
struct udp_datagram {
  std::string_view payload;
  udp_address from;
};

// Replies queued while a batch is handled; sent together after it.
class udp_replies {
 public:
  void send(std::string_view payload, udp_address to);
  // Starts a reply to `to` whose payload is what the caller appends to the
  // returned buffer before the next send() or begin() (formatted in place:
  // no copy). Appending is all the caller may do with it.
  // Inline: a GET reply is begun per datagram.
  std::string& begin(udp_address to) {
    auto& r = replies_.emplace_back();
    r.offset = bytes_.size();
    r.to_size = to.size();
    // Whole: a fixed-size copy is a few moves, a sized one a call.
    std::memcpy(&r.to, to.data(), sizeof r.to);
    return bytes_;
  }
  std::size_t size() const noexcept { return replies_.size(); }

 private:
  friend class udp_socket;
  struct reply {
    std::size_t offset;  // in bytes_; it ends where the next one starts
    socklen_t to_size;
    sockaddr_in6 to;  // the address bytes, copied whole whatever their size
  };
  // All capacity is kept across batches: a steady server allocates nothing.
  std::string bytes_;  // the payloads back to back
  std::vector<reply> replies_;  // cleared after each batch, its capacity kept
  std::vector<iovec> vectors_;
  std::vector<mmsghdr> headers_;
};

class udp_socket {
 public:
  // Called once per received batch with its datagrams (those dropped as
  // oversized or over the rate are not in it), in the order they came.
  using batch_handler =
      std::function<void(std::span<const udp_datagram> batch, udp_replies& replies)>;
  // Called once per datagram, with its source as an endpoint: for servers
  // whose datagrams are few, or who keep the endpoint anyway.
  using handler = std::function<void(std::string_view payload,
                                     const asio::ip::udp::endpoint& from, udp_replies& replies)>;

  static result<udp_socket> bind(asio::io_context& io, std::string_view host, std::uint16_t port,
                                 datagram_limits limits = {});

  asio::ip::udp::endpoint local_endpoint() const;
  // Calls `on_batch` for every batch of datagrams until close(); replies
  // queued during a call go out together after it. Oversized datagrams
  // (over datagram_limits::max_datagram) and those over the per-source rate
  // are dropped and counted, never handed out.
  asio::awaitable<void> serve_batches(batch_handler on_batch);
  // serve_batches() calling `on_datagram` for each datagram of a batch.
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
  // The datagrams worth handing out of the `count` just received, into the
  // slots' list; returns how many.
  std::size_t collect(detail::udp_receive_slots& slots, std::size_t count) noexcept;
  void flush(udp_replies& replies);

  asio::ip::udp::socket socket_;
  datagram_limits limits_;
  source_rate_limiter limiter_;
  clock::time_point batch_time_{};
  std::uint64_t dropped_oversized_ = 0;
  std::uint64_t dropped_rate_ = 0;
};

}  // namespace improto::net

#pragma once

// The Asio transport of protocol 4's UDP part: one connected UDP socket per
// transfer endpoint driving a sans-I/O transfer::sender or transfer::receiver
// (improto/transfer/engine.hpp).
//
// * The socket is connect()ed to the peer, so the kernel drops datagrams
//   from any other address or port (the "who may speak" rule of
//   docs/protocols.md).
// * Datagrams leave in batches: every datagram the engine has ready (up to
//   `batch`) goes out in one sendmmsg; runs of equal-sized datagrams travel
//   as one UDP GSO (UDP_SEGMENT) super-datagram where the kernel supports
//   it, else one message each. Incoming datagrams are read with recvmmsg.
// * Path MTU: the sender's datagrams fill the route's MTU (64 KiB on
//   loopback, 1,472 bytes on a 1,500-byte Ethernet path): per byte, fewer
//   datagrams, ACKs, wake-ups and syscalls.
// * One timer, set to the engine's next_deadline() (timers and pacing).
// * The receiver hands bytes to a sink in order (the part file's pwrite) and
//   may be rate limited: it then consumes no faster than the limit, so flow
//   control slows the sender down (a bandwidth cap, like curl's
//   --limit-rate).
// * Everything runs on the io_context's thread; the calls below must be
//   made there too.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include <asio/any_io_executor.hpp>
#include <asio/ip/udp.hpp>

#include "improto/error.hpp"
#include "improto/transfer/engine.hpp"

namespace improto::net {

struct transfer_link_options {
  std::size_t batch = 64;       // datagrams per sendmmsg / recvmmsg
  bool gso = true;              // use UDP_SEGMENT when the kernel has it
  double rate_limit = 0;        // receiver: bytes per second consumed, 0 = unlimited
  // Receiver: after the last byte, keep answering FINs this long (a lost
  // final ACK costs the sender one more FIN).
  std::chrono::milliseconds linger = std::chrono::seconds(3);
  int socket_buffer = 4 << 20;  // SO_SNDBUF / SO_RCVBUF asked for
  // Sender: DATA datagrams as large as the path MTU allows (IP_MTU /
  // IPV6_MTU of the connected socket, never fragmented: IP_PMTUDISC_DO), up
  // to the engine's datagram_size; a route whose MTU drops (EMSGSIZE)
  // shrinks them. Off: datagram_size as configured, fragmented if need be.
  bool path_mtu = true;
};

class transfer_link : public std::enable_shared_from_this<transfer_link> {
 public:
  // Called when the transfer is over: success, or the engine's error
  // (cancelled, timeout, io_error, invalid_argument).
  using done_handler = std::function<void(result<void>)>;
  // Receiver: stores the next bytes in order (all of them, or an error).
  using sink = std::function<result<void>(std::span<const char>)>;

  // A UDP socket bound to `local` port 0 (the address of the TCP
  // connection, so the peer reaches it the same way).
  static result<std::shared_ptr<transfer_link>> open(const asio::any_io_executor& ex,
                                                     const asio::ip::address& local,
                                                     transfer_link_options options = {});
  ~transfer_link();

  std::uint16_t local_port() const;

  // Connects to `peer` and starts sending from `source` (kept alive by the
  // link). invalid_config when the engine's config is bad.
  result<void> start_sender(const asio::ip::udp::endpoint& peer,
                            const transfer::sender_config& config,
                            std::unique_ptr<transfer::data_source> source, done_handler done);
  // Connects to `peer` and starts receiving into `out`. `on_progress` runs
  // when bytes were stored (at most once per loop turn).
  result<void> start_receiver(const asio::ip::udp::endpoint& peer,
                              const transfer::receiver_config& config, sink out,
                              std::function<void()> on_progress, done_handler done);

  // A paused receiver also stops handing bytes to its sink.
  void pause();
  void resume();
  void cancel();
  // Stops at once without telling the peer (shutdown).
  void close();

  // Null before start_*.
  const transfer::sender* sender() const noexcept;
  const transfer::receiver* receiver() const noexcept;
  bool running() const noexcept;
  bool gso_in_use() const noexcept;

  struct impl;
  explicit transfer_link(std::unique_ptr<impl> state);

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace improto::net

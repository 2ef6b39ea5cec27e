#include "improto/net/transfer.hpp"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include "improto/net/common.hpp"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

namespace improto::net {
namespace {

using tclock = transfer::clock;
using tpoint = transfer::time_point;

// Largest UDP payload of one GSO super-datagram (the IPv4 UDP length limit).
constexpr std::size_t gso_bytes = 65'507;
constexpr std::size_t gso_segments = 64;  // the kernel's UDP_MAX_SEGMENTS
constexpr std::size_t ack_slot = 2048;    // the sender reads ACKs only
// A GRO-coalesced read is up to 64 KiB; +1 shows truncation.
constexpr std::size_t data_slot = 65'536 + 1;
constexpr std::size_t gro_control = CMSG_SPACE(sizeof(int));
// Bytes of one outgoing batch at most: 64 datagrams of 1.4 KiB, or 16 of
// 64 KiB (a few MiB per transfer would add up on a busy server).
constexpr std::size_t batch_bytes = 1u << 20;

// The largest UDP payload the connected socket's route carries unfragmented,
// or 0 when the kernel does not say.
std::size_t path_payload(int fd, bool v6) {
  int mtu = 0;
  socklen_t len = sizeof mtu;
  int rc = v6 ? ::getsockopt(fd, IPPROTO_IPV6, IPV6_MTU, &mtu, &len)
              : ::getsockopt(fd, IPPROTO_IP, IP_MTU, &mtu, &len);
  const int headers = v6 ? 40 + 8 : 20 + 8;
  if (rc != 0 || mtu <= headers) return 0;
  return static_cast<std::size_t>(mtu - headers);
}

}  // namespace

struct transfer_link::impl {
  impl(const asio::any_io_executor& io, asio::ip::udp::socket s, transfer_link_options o)
      : socket(std::move(s)), timer(io), options(o) {
    if (options.batch == 0) options.batch = 1;
  }

  asio::ip::udp::socket socket;
  asio::steady_timer timer;
  transfer_link_options options;
  bool gso = false;
  bool gro = false;  // receiver: the kernel hands us coalesced datagrams
  std::size_t datagram_cap = 0;  // sender: the engine's configured size

  std::unique_ptr<transfer::data_source> source;
  std::optional<transfer::sender> snd;
  std::optional<transfer::receiver> rcv;
  sink out;
  std::function<void()> on_progress;
  done_handler done;
  bool started = false;
  bool paused = false;     // receiver: hold bytes back (the window stops the sender)
  bool stopped = false;    // close(): the loop ends without a word
  bool reported = false;   // done() ran
  bool read_armed = false, write_armed = false;
  bool readable = false, writable_wanted = false;

  // Outgoing datagrams packed back to back, and their sizes; `sent` of
  // them already left (a full socket buffer keeps the rest for later).
  std::vector<char> out_buf;
  std::vector<std::size_t> out_sizes;
  std::size_t out_used = 0, out_sent = 0, out_sent_bytes = 0;
  std::vector<mmsghdr> tx_headers;
  std::vector<iovec> tx_vectors;
  std::vector<std::size_t> tx_counts;
  std::vector<char> tx_control;

  std::unique_ptr<char[]> in_buf;
  std::size_t in_slot = 0;

  // Rate limit (receiver).
  double tokens = 0;
  std::optional<tpoint> tokens_at;
  std::optional<tpoint> linger_until;

  transfer::state engine_state() const {
    return snd ? snd->state() : rcv->state();
  }

  void finish(result<void> r) {
    if (reported) return;
    reported = true;
    if (done) {
      auto d = std::move(done);
      d(std::move(r));
    }
  }

  // ----------------------------------------------------------------- sending

  std::size_t poll(tpoint now, std::span<char> buf) {
    return snd ? snd->poll_transmit(now, buf) : rcv->poll_transmit(now, buf);
  }

  // Collects what the engine has to send now; true when the batch filled
  // up (the engine may have more: its next_deadline() does not say so).
  bool collect(tpoint now) {
    if (out_sent < out_sizes.size()) return false;  // the previous batch first
    out_sizes.clear();
    out_used = out_sent = out_sent_bytes = 0;
    const std::size_t need = snd ? snd->datagram_size() : std::size_t{2048};
    const std::size_t count = std::clamp<std::size_t>(batch_bytes / need, 1, options.batch);
    if (out_buf.size() < count * need) out_buf.resize(count * need);
    while (out_sizes.size() < count) {
      if (out_buf.size() - out_used < need) break;
      std::size_t n = poll(now, std::span<char>(out_buf.data() + out_used, out_buf.size() - out_used));
      if (n == 0) break;
      out_sizes.push_back(n);
      out_used += n;
    }
    return out_sizes.size() == count;
  }

  // Sends the collected datagrams; false when the socket buffer is full.
  bool flush() {
    while (out_sent < out_sizes.size()) {
      // Messages: runs of equal sizes (the last of a run may be shorter)
      // become one GSO message each.
      // Scratch kept across calls (no allocation per batch once grown).
      auto& headers = tx_headers;
      auto& vectors = tx_vectors;
      auto& counts = tx_counts;
      auto& control = tx_control;
      headers.clear();
      vectors.clear();
      counts.clear();
      constexpr std::size_t cmsg_space = CMSG_SPACE(sizeof(std::uint16_t));
      std::size_t i = out_sent, offset = out_sent_bytes;
      std::size_t messages = 0;
      headers.reserve(out_sizes.size() - out_sent);
      vectors.reserve(out_sizes.size() - out_sent);
      if (control.size() < (out_sizes.size() - out_sent) * cmsg_space) {
        control.resize((out_sizes.size() - out_sent) * cmsg_space);
      }
      std::fill(control.begin(), control.end(), char{0});
      while (i < out_sizes.size() && messages < 1024) {
        std::size_t seg = out_sizes[i], count = 1, bytes = seg;
        if (gso) {
          while (i + count < out_sizes.size() && count < gso_segments &&
                 out_sizes[i + count] <= seg && bytes + out_sizes[i + count] <= gso_bytes) {
            bytes += out_sizes[i + count];
            ++count;
            if (out_sizes[i + count - 1] < seg) break;  // a shorter one ends the run
          }
        }
        vectors.push_back({out_buf.data() + offset, bytes});
        counts.push_back(count);
        mmsghdr h{};
        h.msg_hdr.msg_iov = &vectors.back();
        h.msg_hdr.msg_iovlen = 1;
        if (count > 1) {
          char* c = control.data() + messages * cmsg_space;
          h.msg_hdr.msg_control = c;
          h.msg_hdr.msg_controllen = cmsg_space;
          cmsghdr* cm = CMSG_FIRSTHDR(&h.msg_hdr);
          cm->cmsg_level = SOL_UDP;
          cm->cmsg_type = UDP_SEGMENT;
          cm->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
          auto s16 = static_cast<std::uint16_t>(seg);
          std::memcpy(CMSG_DATA(cm), &s16, sizeof s16);
        }
        headers.push_back(h);
        ++messages;
        offset += bytes;
        i += count;
      }
      // vectors never reallocated (reserved), so the iov pointers hold.
      int n = ::sendmmsg(socket.native_handle(), headers.data(), static_cast<unsigned>(messages),
                         MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return false;
        if (errno == EMSGSIZE && snd) {
          // The route's MTU dropped: smaller datagrams from now on. The
          // ones built for the old size count as lost; the engine sends
          // their bytes again in pieces of the new size.
          shrink();
          out_sent = out_sizes.size();
          return true;
        }
        if (gso && (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOPROTOOPT)) {
          gso = false;  // no GSO on this path (e.g. no checksum offload): one message each
          continue;
        }
        // ECONNREFUSED and the like: the peer is gone; the engine's timers
        // decide what that means, so these datagrams count as lost.
        out_sent = out_sizes.size();
        return true;
      }
      for (int k = 0; k < n; ++k) {
        out_sent += counts[static_cast<std::size_t>(k)];
        out_sent_bytes += vectors[static_cast<std::size_t>(k)].iov_len;
      }
    }
    return true;
  }

  // Sender: sizes DATA to the path MTU; false when that changes nothing.
  bool shrink() {
    if (!snd || !options.path_mtu) return false;
    std::error_code ec;
    auto local = socket.local_endpoint(ec);
    if (ec) return false;
    std::size_t fit = path_payload(socket.native_handle(), local.address().is_v6());
    if (fit == 0) return false;
    std::size_t size = std::min(datagram_cap, fit);
    if (size == snd->datagram_size() || size <= transfer::data_header_size) return false;
    return snd->set_datagram_size(size).has_value();
  }

  // --------------------------------------------------------------- receiving

  void receive(tpoint now) {
    const std::size_t batch = std::min<std::size_t>(options.batch, 32);
    if (!in_buf) {
      in_slot = snd ? ack_slot : data_slot;
      in_buf = std::make_unique_for_overwrite<char[]>(batch * in_slot);
    }
    std::vector<iovec> vectors(batch);
    std::vector<mmsghdr> headers(batch);
    std::vector<char> control(gro ? batch * gro_control : 0);
    for (int round = 0; round < 8; ++round) {
      for (std::size_t i = 0; i < batch; ++i) {
        vectors[i] = {in_buf.get() + i * in_slot, in_slot};
        std::memset(&headers[i], 0, sizeof(mmsghdr));
        headers[i].msg_hdr.msg_iov = &vectors[i];
        headers[i].msg_hdr.msg_iovlen = 1;
        if (gro) {
          headers[i].msg_hdr.msg_control = control.data() + i * gro_control;
          headers[i].msg_hdr.msg_controllen = gro_control;
        }
      }
      int n = ::recvmmsg(socket.native_handle(), headers.data(), static_cast<unsigned>(batch),
                         MSG_DONTWAIT, nullptr);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == ECONNREFUSED) continue;  // an ICMP error queued; read on
        if (n < 0 && errno == EMSGSIZE) {  // ICMP "fragmentation needed": a smaller MTU
          shrink();
          continue;
        }
        return;
      }
      for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
        auto& h = headers[i];
        if ((h.msg_hdr.msg_flags & MSG_TRUNC) != 0 || h.msg_len >= in_slot) continue;
        std::string_view bytes(in_buf.get() + i * in_slot, h.msg_len);
        if (snd) {
          snd->on_datagram(bytes, now);
          continue;
        }
        // GRO: equal-sized datagrams back to back (the last may be shorter).
        std::size_t segment = bytes.size();
        if (gro) {
          for (cmsghdr* cm = CMSG_FIRSTHDR(&h.msg_hdr); cm; cm = CMSG_NXTHDR(&h.msg_hdr, cm)) {
            if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
              int seg = 0;
              std::memcpy(&seg, CMSG_DATA(cm), sizeof seg);
              if (seg > 0) segment = static_cast<std::size_t>(seg);
            }
          }
        }
        while (!bytes.empty()) {
          auto piece = bytes.substr(0, segment);
          rcv->on_datagram(piece, now);
          bytes.remove_prefix(piece.size());
        }
      }
      if (static_cast<std::size_t>(n) < batch) return;
    }
  }

  // Receiver: hands in-order bytes to the sink, within the rate limit.
  // Returns when the limit next lets more through, if it stopped us.
  std::optional<tpoint> drain(tpoint now) {
    bool progressed = false;
    std::optional<tpoint> wait;
    while (rcv->state() != transfer::state::failed) {
      auto bytes = rcv->readable();
      if (bytes.empty()) break;
      std::size_t n = bytes.size();
      if (options.rate_limit > 0) {
        const double burst = std::max(options.rate_limit / 20, 65536.0);
        if (tokens_at) {
          std::chrono::duration<double> dt = now - *tokens_at;
          tokens = std::min(burst, tokens + dt.count() * options.rate_limit);
        } else {
          tokens = burst;
        }
        tokens_at = now;
        if (tokens < 1) {
          auto secs = std::chrono::duration<double>((1 - tokens) / options.rate_limit + 0.005);
          wait = now + std::chrono::duration_cast<transfer::duration>(secs);
          break;
        }
        n = std::min(n, static_cast<std::size_t>(tokens));
        tokens -= static_cast<double>(n);
      }
      if (auto ok = out(bytes.subspan(0, n)); !ok) {
        rcv->abort(ok.error());
        break;
      }
      rcv->consume(n);
      progressed = true;
    }
    if (progressed && on_progress) on_progress();
    return wait;
  }

  // -------------------------------------------------------------------- loop

  void arm_read(const std::shared_ptr<transfer_link>& self) {
    if (read_armed) return;
    read_armed = true;
    socket.async_wait(asio::socket_base::wait_read, [this, self](std::error_code ec) {
      read_armed = false;
      if (ec) return;
      readable = true;
      timer.cancel();
    });
  }

  void arm_write(const std::shared_ptr<transfer_link>& self) {
    if (write_armed) return;
    write_armed = true;
    socket.async_wait(asio::socket_base::wait_write, [this, self](std::error_code ec) {
      write_armed = false;
      if (ec) return;
      timer.cancel();
    });
  }

  void wake() { timer.cancel(); }

  asio::awaitable<void> run(std::shared_ptr<transfer_link> self) {
    while (!stopped) {
      auto now = tclock::now();
      if (readable) {
        readable = false;
        receive(now);
      }
      std::optional<tpoint> rate_wait;
      if (rcv && !paused) rate_wait = drain(now);
      bool full = collect(now);
      bool all_out = flush();
      // Collect more while the engine has more ready now (a full batch, or
      // a deadline due) and the buffer took the last batch; a few rounds,
      // then let other transfers run. Without the full-batch rule a sender
      // with an open window sent one batch per ACK: 64 datagrams of 1.4 KiB
      // per wake-up on a 1,500-byte path.
      for (int round = 0; all_out && round < 4; ++round) {
        auto d = snd ? snd->next_deadline() : rcv->next_deadline();
        if (!full && (!d || *d > now)) break;
        full = collect(now);
        if (out_sizes.empty()) break;
        all_out = flush();
      }

      auto st = engine_state();
      if (st == transfer::state::failed) {
        flush();  // the ABORT, if any
        auto e = snd ? snd->failure() : rcv->failure();
        finish(tl::unexpected(e ? *e : error(errc::io_error, "transfer failed")));
        break;
      }
      if (snd && st == transfer::state::complete) {
        finish({});
        break;
      }
      if (rcv && rcv->finished()) {
        if (!reported) {
          finish({});
          linger_until = now + options.linger;
        }
        if (now >= *linger_until) break;
      }

      std::optional<tpoint> wake_at = snd ? snd->next_deadline() : rcv->next_deadline();
      if (rate_wait && (!wake_at || *rate_wait < *wake_at)) wake_at = rate_wait;
      if (linger_until && (!wake_at || *linger_until < *wake_at)) wake_at = linger_until;
      arm_read(self);
      if (!all_out) arm_write(self);
      if (all_out && full) {
        timer.expires_at(now);  // more to send: come back after other work
      } else if (!wake_at && all_out && !readable) {
        timer.expires_at(tpoint::max());
      } else if (!all_out) {
        // Waiting for buffer space; the write wait wakes us.
        timer.expires_at(wake_at ? std::max(*wake_at, now) : tpoint::max());
      } else {
        timer.expires_at(wake_at ? std::max(*wake_at, now) : now);
      }
      if (readable) continue;
      // Due now or later: either way through the event loop, so other
      // transfers and the TCP side run between turns.
      co_await timer.async_wait(use_nothrow);
    }
    std::error_code ec;
    socket.close(ec);
    timer.cancel();
    if (!reported && stopped) finish(fail(errc::cancelled, "transfer stopped"));
    // The owner's callbacks may hold the owner's state: let it go.
    out = nullptr;
    on_progress = nullptr;
    done = nullptr;
  }
};

transfer_link::transfer_link(std::unique_ptr<impl> state) : impl_(std::move(state)) {}
transfer_link::~transfer_link() = default;

result<std::shared_ptr<transfer_link>> transfer_link::open(const asio::any_io_executor& io,
                                                           const asio::ip::address& local,
                                                           transfer_link_options options) {
  asio::ip::udp::socket socket(io);
  std::error_code ec;
  asio::ip::udp::endpoint endpoint(local, 0);
  std::string where = "UDP " + to_string(endpoint);
  if (socket.open(endpoint.protocol(), ec); ec) return tl::unexpected(from_system(ec, where));
  socket.set_option(asio::socket_base::send_buffer_size(options.socket_buffer), ec);
  socket.set_option(asio::socket_base::receive_buffer_size(options.socket_buffer), ec);
  if (socket.bind(endpoint, ec); ec) return tl::unexpected(from_system(ec, "cannot bind " + where));
  socket.non_blocking(true, ec);
  auto state = std::make_unique<impl>(io, std::move(socket), options);
  if (options.gso) {
    // Probe: a kernel without UDP GSO refuses the option.
    int zero = 0;
    state->gso = ::setsockopt(state->socket.native_handle(), SOL_UDP, UDP_SEGMENT, &zero,
                              sizeof zero) == 0;
  }
  return std::make_shared<transfer_link>(std::move(state));
}

std::uint16_t transfer_link::local_port() const {
  std::error_code ec;
  return impl_->socket.local_endpoint(ec).port();
}

result<void> transfer_link::start_sender(const asio::ip::udp::endpoint& peer,
                                         const transfer::sender_config& config,
                                         std::unique_ptr<transfer::data_source> source,
                                         done_handler done) {
  if (impl_->started) return fail(errc::invalid_argument, "transfer link already started");
  impl_->source = std::move(source);
  auto s = transfer::sender::create(config, *impl_->source);
  if (!s) return tl::unexpected(s.error());
  impl_->snd.emplace(std::move(*s));
  impl_->datagram_cap = config.datagram_size;
  std::error_code ec;
  if (impl_->socket.connect(peer, ec); ec) {
    return tl::unexpected(from_system(ec, "cannot connect UDP to " + to_string(peer)));
  }
  if (impl_->options.path_mtu) {
    // Never fragment: a datagram too large for the route fails with
    // EMSGSIZE, and shrink() sizes the next ones to the route's MTU.
    int fd = impl_->socket.native_handle();
    int v = IP_PMTUDISC_DO;
    if (peer.address().is_v6()) {
      v = IPV6_PMTUDISC_DO;
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v, sizeof v);
    } else {
      ::setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof v);
    }
    impl_->shrink();
  }
  impl_->done = std::move(done);
  impl_->started = true;
  auto self = shared_from_this();
  asio::co_spawn(impl_->socket.get_executor(), impl_->run(self), asio::detached);
  return {};
}

result<void> transfer_link::start_receiver(const asio::ip::udp::endpoint& peer,
                                           const transfer::receiver_config& config, sink out,
                                           std::function<void()> on_progress, done_handler done) {
  if (impl_->started) return fail(errc::invalid_argument, "transfer link already started");
  auto r = transfer::receiver::create(config);
  if (!r) return tl::unexpected(r.error());
  impl_->rcv.emplace(std::move(*r));
  if (impl_->options.gso) {
    // Coalesced reads pair with the sender's GSO; a kernel without it says no.
    int one = 1;
    impl_->gro = ::setsockopt(impl_->socket.native_handle(), SOL_UDP, UDP_GRO, &one,
                              sizeof one) == 0;
  }
  std::error_code ec;
  if (impl_->socket.connect(peer, ec); ec) {
    return tl::unexpected(from_system(ec, "cannot connect UDP to " + to_string(peer)));
  }
  impl_->out = std::move(out);
  impl_->on_progress = std::move(on_progress);
  impl_->done = std::move(done);
  impl_->started = true;
  auto self = shared_from_this();
  asio::co_spawn(impl_->socket.get_executor(), impl_->run(self), asio::detached);
  return {};
}

void transfer_link::pause() {
  impl_->paused = true;
  if (impl_->snd) impl_->snd->pause();
  if (impl_->rcv) impl_->rcv->pause();
  impl_->wake();
}

void transfer_link::resume() {
  impl_->paused = false;
  auto now = tclock::now();
  if (impl_->snd) impl_->snd->resume(now);
  if (impl_->rcv) impl_->rcv->resume(now);
  impl_->wake();
}

void transfer_link::cancel() {
  if (impl_->snd) impl_->snd->cancel();
  if (impl_->rcv) impl_->rcv->cancel();
  impl_->wake();
}

void transfer_link::close() {
  impl_->stopped = true;
  impl_->wake();
  if (!impl_->started) {
    std::error_code ec;
    impl_->socket.close(ec);
  }
}

const transfer::sender* transfer_link::sender() const noexcept {
  return impl_->snd ? &*impl_->snd : nullptr;
}
const transfer::receiver* transfer_link::receiver() const noexcept {
  return impl_->rcv ? &*impl_->rcv : nullptr;
}
bool transfer_link::running() const noexcept { return impl_->started && !impl_->reported; }
bool transfer_link::gso_in_use() const noexcept { return impl_->gso; }

}  // namespace improto::net

#include "improto/net/udp.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <memory>

#include <asio/post.hpp>

#include "reactor_wait.hpp"

namespace improto::net {

namespace {
// The part of each receive slot that is packed with the others: protocol 2's
// requests and most datagrams fit.
constexpr std::size_t head_bytes = 2048;
}  // namespace

asio::ip::udp::endpoint udp_address::endpoint() const {
  asio::ip::udp::endpoint e;
  std::memcpy(e.data(), data_, std::min<std::size_t>(size_, e.capacity()));
  e.resize(std::min<std::size_t>(size_, e.capacity()));
  return e;
}

void udp_replies::send(std::string_view payload, udp_address to) {
  begin(to).append(payload);
}

udp_socket::udp_socket(asio::ip::udp::socket socket, datagram_limits limits)
    : socket_(std::move(socket)),
      limits_(limits),
      limiter_(limits.rate_per_source, limits.burst, limits.tracked_sources) {
  if (limits_.batch == 0) limits_.batch = 1;
}

result<udp_socket> udp_socket::bind(asio::io_context& io, std::string_view host,
                                    std::uint16_t port, datagram_limits limits) {
  asio::ip::udp::socket socket(io);
  if (auto bound = open_and_bind(socket, host, port, "UDP"); !bound) {
    return tl::unexpected(bound.error());
  }
  std::error_code ec;
  socket.non_blocking(true, ec);
  return udp_socket(std::move(socket), limits);
}

asio::ip::udp::endpoint udp_socket::local_endpoint() const {
  std::error_code ec;
  return socket_.local_endpoint(ec);
}

void udp_socket::flush(udp_replies& replies) {
  const std::size_t count = replies.replies_.size();
  if (replies.headers_.size() < count) {
    replies.headers_.resize(count);
    replies.vectors_.resize(count);
    // The fields that are the same for every batch, set when they move.
    for (std::size_t i = 0; i < count; ++i) {
      auto& h = replies.headers_[i].msg_hdr;
      h = {};
      h.msg_iov = &replies.vectors_[i];
      h.msg_iovlen = 1;
    }
  }
  const char* const bytes = replies.bytes_.data();
  for (std::size_t i = 0; i < count; ++i) {
    auto& r = replies.replies_[i];
    // Pointers into bytes_ are taken now that it no longer grows.
    std::size_t end = i + 1 < count ? replies.replies_[i + 1].offset : replies.bytes_.size();
    replies.vectors_[i] = {const_cast<char*>(bytes) + r.offset, end - r.offset};
    auto& h = replies.headers_[i].msg_hdr;
    h.msg_name = &r.to;
    h.msg_namelen = r.to_size;
  }
  std::size_t sent = 0;
  while (sent < count) {
    int n = ::sendmmsg(socket_.native_handle(), replies.headers_.data() + sent,
                       static_cast<unsigned>(count - sent), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // buffer full or peer unreachable: UDP replies are best effort
    }
    sent += static_cast<std::size_t>(n);
  }
  replies.replies_.clear();
  replies.bytes_.clear();
}

asio::awaitable<void> udp_socket::serve(handler on_datagram) {
  // Named, not a temporary: see net/common.hpp on g++ 12.
  batch_handler each = [&on_datagram](std::span<const udp_datagram> batch, udp_replies& replies) {
    for (const auto& d : batch) on_datagram(d.payload, d.from.endpoint(), replies);
  };
  co_await serve_batches(std::move(each));
}

// The receive side of serve_batches(). Slots of a whole 64 KiB each would
// put every datagram at the same offset in its own page: 64 datagrams of a
// batch in one L1/L2 cache set and 64 pages (TLB entries) per batch. So the
// slots are dense: when the limit fits the head size (imbuddyd's 1 KiB), a
// slot is one buffer of max_datagram + 1 bytes, the extra byte making an
// oversized datagram detectable. Above it, a slot is a head in the dense
// array plus a tail for the rest of a large datagram, a second iovec, which
// the kernel pays for on every datagram (~8 ns of a small one's ~600 at
// saturation: the iovec array is copied in and walked). A tail sits `head`
// bytes into a region of a whole slot, where a large datagram's head is
// copied to make it contiguous; these regions are not zeroed: the kernel
// backs only the pages large datagrams reach.
struct detail::udp_receive_slots {
  explicit udp_receive_slots(const datagram_limits& limits)
      : batch(limits.batch),
        slot(limits.max_datagram + 1),
        split(slot > head_bytes),
        head(split ? head_bytes : slot),
        // Whole slots a whole number of cache lines apart.
        stride(split ? head_bytes : (slot + 63) / 64 * 64),
        // The size over which collect() looks closer: oversized, or (split)
        // a datagram to make contiguous.
        longer_than(std::min(head, limits.max_datagram)),
        heads(std::make_unique_for_overwrite<char[]>(batch * stride)),
        wholes(split ? std::make_unique_for_overwrite<char[]>(batch * slot) : nullptr),
        sources(batch),
        vectors((split ? 2 : 1) * batch),
        headers(batch),
        received(batch, udp_datagram{{}, udp_address(nullptr, 0)}) {
    const std::size_t per_slot = split ? 2 : 1;
    for (std::size_t i = 0; i < batch; ++i) {
      iovec* v = &vectors[per_slot * i];
      v[0] = {heads.get() + i * stride, head};
      if (split) v[1] = {wholes.get() + i * slot + head, slot - head};
      headers[i].msg_hdr = {};
      headers[i].msg_hdr.msg_name = &sources[i];
      // recvmmsg writes msg_len, msg_flags and msg_namelen; only the last
      // is read, and is reset after each batch for the headers it used.
      headers[i].msg_hdr.msg_namelen = name_capacity;
      headers[i].msg_hdr.msg_iov = v;
      headers[i].msg_hdr.msg_iovlen = per_slot;
    }
  }

  static constexpr auto name_capacity = static_cast<socklen_t>(udp_address::capacity);
  const std::size_t batch, slot;
  const bool split;
  const std::size_t head, stride, longer_than;
  const std::unique_ptr<char[]> heads, wholes;
  std::vector<sockaddr_in6> sources;
  std::vector<iovec> vectors;
  std::vector<mmsghdr> headers;
  std::vector<udp_datagram> received;  // what collect() hands out
};

// Not part of the coroutine: its locals stay in registers, where in the
// coroutine's frame each store into `received` would reload them. The rate
// limit, when set, is a second pass over what the first kept, so that the
// common walk has no call in it (registers saved around a call cost about
// as much as the walk itself).
std::size_t udp_socket::collect(detail::udp_receive_slots& slots, std::size_t count) noexcept {
  const std::size_t stride = slots.stride, slot = slots.slot, max = limits_.max_datagram;
  const std::size_t longer_than = slots.longer_than;
  const char* const heads = slots.heads.get();
  const sockaddr_in6* const sources = slots.sources.data();
  mmsghdr* const headers = slots.headers.data();
  udp_datagram* const out = slots.received.data();
  std::size_t kept = 0;
  for (std::size_t i = 0; i < count; ++i) {
    auto& h = headers[i].msg_hdr;
    const socklen_t name_size = h.msg_namelen;
    h.msg_namelen = detail::udp_receive_slots::name_capacity;
    const std::size_t size = headers[i].msg_len;
    const char* data = heads + i * stride;
    if (size > longer_than) [[unlikely]] {
      // A truncated datagram filled its slot, one byte over the limit.
      if (size > max) {
        ++dropped_oversized_;
        continue;
      }
      // Only split slots get here: the head is full and the tail holds the rest.
      char* whole = slots.wholes.get() + i * slot;
      std::memcpy(whole, data, slots.head);
      data = whole;
    }
    out[kept++] = {std::string_view(data, size),
                   udp_address(reinterpret_cast<const sockaddr*>(sources + i), name_size)};
  }
  if (!limiter_.enabled()) return kept;
  std::size_t admitted = 0;
  for (std::size_t i = 0; i < kept; ++i) {
    if (limiter_.admit(out[i].from.data(), out[i].from.size(), batch_time_)) {
      out[admitted++] = out[i];
    } else {
      ++dropped_rate_;
    }
  }
  return admitted;
}

asio::awaitable<void> udp_socket::serve_batches(batch_handler on_batch) {
  detail::udp_receive_slots slots(limits_);
  udp_replies replies;
  const std::size_t batch = slots.batch;
  mmsghdr* const headers = slots.headers.data();
  const int fd = socket_.native_handle();
  const auto executor = socket_.get_executor();

  // Readiness without re-arming (reactor_wait.hpp): Asio 1.22's async_wait
  // costs an epoll_ctl (EPOLL_CTL_MOD) per wait. Reporting "drained" tells
  // the reactor to queue the next wait without trying, unless a readiness
  // edge came in between; the batch is read here, after the wake-up's hop
  // through the scheduler, by when more datagrams have come in.
  auto readiness = [](std::error_code&) { return detail::perform_status::drained; };

  // The loop waits only once a batch found the socket empty (recvmmsg
  // returned fewer than `batch`). While full batches keep coming it yields
  // to the thread's other work every few batches with a post, which costs no
  // system call, and reads on.
  bool empty = true;
  while (socket_.is_open()) {
    if (empty) {
      auto [ec] = co_await detail::async_perform_read(socket_, readiness, use_nothrow);
      if (ec) break;
    } else {
      co_await asio::post(executor, asio::use_awaitable);
    }
    empty = false;
    for (int round = 0; round < 4 && socket_.is_open(); ++round) {
      int n = ::recvmmsg(fd, headers, static_cast<unsigned>(batch), MSG_DONTWAIT, nullptr);
      // EAGAIN, or an error the next readiness may clear: wait either way.
      if (n <= 0) {
        empty = true;
        break;
      }
      // One clock read per batch: neither the rate limit nor the handlers
      // need finer time.
      batch_time_ = clock::now();
      if (const std::size_t kept = collect(slots, static_cast<std::size_t>(n)); kept > 0) {
        on_batch(std::span<const udp_datagram>(slots.received.data(), kept), replies);
      }
      if (replies.size() > 0) flush(replies);
      if (static_cast<std::size_t>(n) < batch) {
        empty = true;
        break;
      }
    }
  }
}

result<void> udp_socket::send_to(std::string_view payload, const asio::ip::udp::endpoint& to) {
  std::error_code ec;
  socket_.send_to(asio::buffer(payload.data(), payload.size()), to, 0, ec);
  if (ec) return tl::unexpected(from_system(ec, "send to " + net::to_string(to)));
  return {};
}

void udp_socket::close() {
  std::error_code ec;
  socket_.close(ec);
}

}  // namespace improto::net

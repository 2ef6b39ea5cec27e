#include "improto/net/udp.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace improto::net {

void udp_replies::send(std::string_view payload, const asio::ip::udp::endpoint& to) {
  if (count_ == replies_.size()) replies_.emplace_back();
  auto& r = replies_[count_++];
  r.payload.assign(payload);
  r.to = to;
}

udp_socket::udp_socket(asio::ip::udp::socket socket, datagram_limits limits)
    : socket_(std::move(socket)), limits_(limits) {
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

bool udp_socket::admit(const asio::ip::udp::endpoint& from) {
  if (limits_.rate_per_source <= 0) return true;
  auto now = clock::now();
  // Bounded table: a flood of distinct sources resets it rather than grow it.
  if (buckets_.size() > 65'536) buckets_.clear();
  auto key = from.address().to_string();
  auto [it, fresh] = buckets_.try_emplace(key, bucket{limits_.burst, now});
  auto& b = it->second;
  if (!fresh) {
    std::chrono::duration<double> elapsed = now - b.last;
    b.tokens = std::min(limits_.burst, b.tokens + elapsed.count() * limits_.rate_per_source);
    b.last = now;
  }
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

void udp_socket::flush(udp_replies& replies) {
  std::size_t sent = 0;
  std::vector<mmsghdr> headers(replies.count_);
  std::vector<iovec> vectors(replies.count_);
  for (std::size_t i = 0; i < replies.count_; ++i) {
    auto& r = replies.replies_[i];
    vectors[i] = {r.payload.data(), r.payload.size()};
    std::memset(&headers[i], 0, sizeof(mmsghdr));
    headers[i].msg_hdr.msg_name = r.to.data();
    headers[i].msg_hdr.msg_namelen = static_cast<socklen_t>(r.to.size());
    headers[i].msg_hdr.msg_iov = &vectors[i];
    headers[i].msg_hdr.msg_iovlen = 1;
  }
  while (sent < replies.count_) {
    int n = ::sendmmsg(socket_.native_handle(), headers.data() + sent,
                       static_cast<unsigned>(replies.count_ - sent), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // buffer full or peer unreachable: UDP replies are best effort
    }
    sent += static_cast<std::size_t>(n);
  }
  replies.count_ = 0;
}

asio::awaitable<void> udp_socket::serve(handler on_datagram) {
  const std::size_t batch = limits_.batch;
  // One byte more than the limit so that an oversized datagram is detectable.
  const std::size_t slot = limits_.max_datagram + 1;
  std::vector<char> storage(batch * slot);
  std::vector<asio::ip::udp::endpoint> sources(batch);
  std::vector<iovec> vectors(batch);
  std::vector<mmsghdr> headers(batch);
  udp_replies replies;

  while (socket_.is_open()) {
    auto [ec] = co_await socket_.async_wait(asio::socket_base::wait_read, use_nothrow);
    if (ec) break;
    // A few batches per wake-up, then yield to other work on this thread.
    for (int round = 0; round < 4 && socket_.is_open(); ++round) {
      for (std::size_t i = 0; i < batch; ++i) {
        vectors[i] = {storage.data() + i * slot, slot};
        std::memset(&headers[i], 0, sizeof(mmsghdr));
        headers[i].msg_hdr.msg_name = sources[i].data();
        headers[i].msg_hdr.msg_namelen = static_cast<socklen_t>(sources[i].capacity());
        headers[i].msg_hdr.msg_iov = &vectors[i];
        headers[i].msg_hdr.msg_iovlen = 1;
      }
      int n = ::recvmmsg(socket_.native_handle(), headers.data(), static_cast<unsigned>(batch),
                         MSG_DONTWAIT, nullptr);
      if (n <= 0) break;
      for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
        auto& h = headers[i];
        sources[i].resize(h.msg_hdr.msg_namelen);
        if ((h.msg_hdr.msg_flags & MSG_TRUNC) != 0 || h.msg_len > limits_.max_datagram) {
          ++dropped_oversized_;
          continue;
        }
        if (!admit(sources[i])) {
          ++dropped_rate_;
          continue;
        }
        on_datagram(std::string_view(storage.data() + i * slot, h.msg_len), sources[i], replies);
      }
      if (replies.size() > 0) flush(replies);
      if (static_cast<std::size_t>(n) < batch) break;
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

// udp_echo - the floor of the udp suite: the least a UDP request/reply server
// can do per datagram on this kernel.
//
//   udp_echo [--host 127.0.0.1] [--port 0] [--reply-size N] [--batch 64] [--work N]
//
// One thread, one socket (default buffer sizes, as imbuddyd's): a blocking
// recvmmsg of up to --batch datagrams, then one sendmmsg of the replies.
// Datagrams starting with "SET " get no reply (protocol 2's SET has none);
// every other one is answered with --reply-size bytes (0: the datagram
// itself), so that the replies are as long as imbuddyd's GET replies. No
// parsing, no state, no rate limit. Prints `listening on HOST:PORT` on stderr
// first, like our servers; SIGTERM/SIGINT end it.
//
// --work N: a calibration, not a floor. Each datagram first runs N rounds of
// dummy arithmetic (8 instructions a round with g++ -O2, adds, xors and
// shifts over three chains, so that it runs at several instructions per
// cycle as ordinary code does, not at a multiply's latency): what 8 N more
// user-space instructions per datagram cost at saturation on this machine,
// measured beside imbuddyd (bench/udp/ab.sh AB_ECHO_WORK).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cli.hpp"

namespace {

volatile std::sig_atomic_t g_stop = 0;

// Kept opaque to the optimiser: the rounds can be neither folded nor dropped.
[[gnu::noinline]] std::uint64_t dummy_work(std::uint64_t x, unsigned rounds) {
  std::uint64_t a = x, b = x ^ 0x9e3779b97f4a7c15ull, c = x + 1;
  for (unsigned i = 0; i < rounds; ++i) {
    a += b;
    b ^= c;
    c += a >> 3;
    asm volatile("" : "+r"(a), "+r"(b), "+r"(c));
  }
  return a ^ b ^ c;
}

using bench::die;

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  std::size_t reply_size = 0;
  unsigned batch = 64;
  unsigned work = 0;
  bench::program = "udp_echo";
  for (bench::args a(argc, argv); a.next();) {
    if (a.is("--host")) host = a.value();
    else if (a.is("--port")) port = static_cast<int>(a.integer());
    else if (a.is("--reply-size")) reply_size = std::strtoull(a.value().c_str(), nullptr, 10);
    else if (a.is("--batch")) batch = static_cast<unsigned>(a.integer());
    else if (a.is("--work")) work = static_cast<unsigned>(a.integer());
    else a.unknown();
  }
  if (batch == 0 || batch > 1024 || reply_size > 65507) die("bad --batch or --reply-size");

  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop = 1; };
  sigaction(SIGTERM, &sa, nullptr);  // no SA_RESTART: recvmmsg returns EINTR
  sigaction(SIGINT, &sa, nullptr);

  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) die(std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) die("bad host " + host);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die(std::strerror(errno));
  // A signal that lands between the loop's check and the blocking recvmmsg
  // would leave it blocked (seen under valgrind, where that window is wide):
  // the receive times out now and then so that g_stop is seen.
  timeval tick{0, 200'000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::fprintf(stderr, "listening on %s:%d\n", host.c_str(), ntohs(addr.sin_port));
  std::fflush(stderr);

  constexpr std::size_t buf_size = 2048;
  std::vector<char> bufs(batch * buf_size);
  std::vector<sockaddr_in> from(batch);
  std::vector<iovec> iov(batch), out_iov(batch);
  std::vector<mmsghdr> in(batch), out(batch);
  std::string canned(reply_size, 'x');
  for (unsigned i = 0; i < batch; ++i) {
    iov[i] = {bufs.data() + i * buf_size, buf_size};
    in[i].msg_hdr.msg_iov = &iov[i];
    in[i].msg_hdr.msg_iovlen = 1;
    in[i].msg_hdr.msg_name = &from[i];
  }
  unsigned long long received = 0, replied = 0;
  std::uint64_t sink = 0;
  while (!g_stop) {
    for (unsigned i = 0; i < batch; ++i) in[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
    int n = recvmmsg(fd, in.data(), batch, MSG_WAITFORONE, nullptr);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      die(std::string("recvmmsg: ") + std::strerror(errno));
    }
    received += static_cast<unsigned>(n);
    unsigned k = 0;
    for (int i = 0; i < n; ++i) {
      auto& h = in[static_cast<unsigned>(i)];
      const char* data = static_cast<const char*>(h.msg_hdr.msg_iov->iov_base);
      if (work) sink += dummy_work(static_cast<unsigned char>(data[0]) + sink, work);
      if (h.msg_len >= 4 && std::memcmp(data, "SET ", 4) == 0) continue;
      out_iov[k] = reply_size ? iovec{canned.data(), canned.size()}
                              : iovec{const_cast<char*>(data), h.msg_len};
      out[k].msg_hdr = {};
      out[k].msg_hdr.msg_name = h.msg_hdr.msg_name;
      out[k].msg_hdr.msg_namelen = h.msg_hdr.msg_namelen;
      out[k].msg_hdr.msg_iov = &out_iov[k];
      out[k].msg_hdr.msg_iovlen = 1;
      ++k;
    }
    unsigned sent = 0;
    while (sent < k) {
      int m = sendmmsg(fd, out.data() + sent, k - sent, MSG_DONTWAIT);
      if (m < 0) break;  // full buffer: replies are best effort, as ours are
      sent += static_cast<unsigned>(m);
    }
    replied += sent;
  }
  asm volatile("" : : "r"(sink));  // the work's result is used
  std::fprintf(stderr, "udp_echo: %llu datagrams received, %llu replies sent\n", received, replied);
  close(fd);
  return 0;
}

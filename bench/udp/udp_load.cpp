// udp_load - the load generator of the udp suite (protocol 2's SET and GET).
//
//   udp_load --port P [--host 127.0.0.1] --mode get|set [--users 100]
//            [--rate R]            datagrams/s; 0 (default): saturate
//            [--duration 3] [--warmup 0.3]
//            [--sockets 4] [--window 48] [--batch 32] [--gso 1]
//            [--pid PID]...        server processes whose CPU to measure
//
// Several connected sockets; requests go out in batches of --batch, each
// batch one send() with UDP_SEGMENT (GSO: the kernel cuts it into datagrams,
// so the generator pays the stack's per-packet route and header work once per
// batch) or, with --gso 0, one sendmmsg(). Replies are read with recvmmsg.
// Every request of a run has the same length (names are u000..u999), as GSO
// needs.
//
//   GET, rate 0: closed loop, at most --window requests in flight per socket
//     (the server's socket buffer never overflows); a socket that hears
//     nothing for 100 ms counts its requests in flight as lost.
//   SET, rate 0: SETs have no reply: sent as fast as the generator can, and
//     what the server processed is what reached its socket and was not
//     dropped (the socket's drop counter in /proc/net/udp).
//   rate R: open loop, R datagrams/s in 1 ms steps.
//
// Counts are taken over --duration after --warmup. One JSON line on stdout:
//   {"mode","rate_target","duration_s","sent","replies","lost","server_drops",
//    "processed","rate","gen_busy","server_busy","cpu_s","cpu_us_per_request"}
// processed = sent - server_drops (the requests the server handled);
// rate = processed per second (for GET at saturation: replies per second);
// gen_busy / server_busy = share of one core used by this program / by the
// --pid processes (user+system time, bench/lib/proc_cpu.hpp);
// cpu_us_per_request = server CPU / processed.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "pacing.hpp"
#include "proc_cpu.hpp"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace {

using clock_type = std::chrono::steady_clock;

using bench::die;


// The drop counter of the UDP socket bound to `port` (IPv4), from /proc/net/udp.
unsigned long long socket_drops(int port) {
  std::ifstream f("/proc/net/udp");
  std::string line;
  char want[8];
  std::snprintf(want, sizeof want, ":%04X", port);
  std::getline(f, line);  // header
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string sl, local;
    in >> sl >> local;
    if (local.size() < 5 || local.compare(local.size() - 5, 5, want) != 0) continue;
    std::string field, last;
    while (in >> field) last = field;
    return std::strtoull(last.c_str(), nullptr, 10);
  }
  return 0;
}

struct sock {
  int fd = -1;
  long long in_flight = 0;
  clock_type::time_point last_heard;
  std::string batch;  // --batch requests back to back
  std::vector<iovec> iov;
  std::vector<mmsghdr> msgs;
};

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1", mode = "get";
  int port = 0, users = 100, nsockets = 4;
  long long window = 48;
  int batch = 32;
  bool gso = true;
  double rate = 0, duration = 3, warmup = 0.3;
  std::vector<int> pids;
  bench::program = "udp_load";
  for (bench::args a(argc, argv); a.next();) {
    if (a.is("--host")) host = a.value();
    else if (a.is("--port")) port = static_cast<int>(a.integer());
    else if (a.is("--mode")) mode = a.value();
    else if (a.is("--users")) users = static_cast<int>(a.integer());
    else if (a.is("--rate")) rate = a.number();
    else if (a.is("--duration")) duration = a.number();
    else if (a.is("--warmup")) warmup = a.number();
    else if (a.is("--sockets")) nsockets = static_cast<int>(a.integer());
    else if (a.is("--window")) window = a.integer();
    else if (a.is("--batch")) batch = static_cast<int>(a.integer());
    else if (a.is("--gso")) gso = a.value() != "0";
    else if (a.is("--pid")) pids.push_back(static_cast<int>(a.integer()));
    else a.unknown();
  }
  if (port <= 0 || (mode != "get" && mode != "set") || users < 1 || users > 1000 ||
      nsockets < 1 || batch < 1 || batch > 64 || window < batch || duration <= 0) {
    die("bad arguments");
  }
  const bool is_get = mode == "get";

  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &to.sin_addr) != 1) die("bad host " + host);

  int ep = epoll_create1(0);
  std::vector<sock> socks(static_cast<std::size_t>(nsockets));
  std::size_t req_len = 0;
  int next_user = 0;
  for (std::size_t s = 0; s < socks.size(); ++s) {
    auto& k = socks[s];
    k.fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (k.fd < 0 || connect(k.fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
      die(std::string("socket: ") + std::strerror(errno));
    }
    for (int b = 0; b < batch; ++b) {
      char req[64];
      int u = next_user++ % users;
      int n = is_get ? std::snprintf(req, sizeof req, "GET u%03d", u)
                     : std::snprintf(req, sizeof req, "SET u%03d 100 %05d", u, 40000 + u);
      req_len = static_cast<std::size_t>(n);
      k.batch.append(req, req_len);
    }
    k.iov.resize(static_cast<std::size_t>(batch));
    k.msgs.resize(static_cast<std::size_t>(batch));
    for (int b = 0; b < batch; ++b) {
      k.iov[static_cast<std::size_t>(b)] = {k.batch.data() + static_cast<std::size_t>(b) * req_len, req_len};
      k.msgs[static_cast<std::size_t>(b)].msg_hdr = {};
      k.msgs[static_cast<std::size_t>(b)].msg_hdr.msg_iov = &k.iov[static_cast<std::size_t>(b)];
      k.msgs[static_cast<std::size_t>(b)].msg_hdr.msg_iovlen = 1;
    }
    if (gso) {
      int seg = static_cast<int>(req_len);
      if (setsockopt(k.fd, SOL_UDP, UDP_SEGMENT, &seg, sizeof seg) != 0) {
        std::fprintf(stderr, "udp_load: no UDP_SEGMENT (%s); using sendmmsg\n", std::strerror(errno));
        gso = false;
      }
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<std::uint32_t>(s);
    epoll_ctl(ep, EPOLL_CTL_ADD, k.fd, &ev);
  }

  long long sent = 0, replies = 0, lost = 0;
  // Sends `count` (<= batch) requests on one socket; returns how many left.
  auto send_some = [&](sock& k, int count) -> int {
    if (gso) {
      ssize_t n = ::send(k.fd, k.batch.data(), static_cast<std::size_t>(count) * req_len, 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == ENOBUFS || errno == ECONNREFUSED) return 0;
        die(std::string("send: ") + std::strerror(errno));
      }
      return count;
    }
    int n = sendmmsg(k.fd, k.msgs.data(), static_cast<unsigned>(count), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == ENOBUFS || errno == ECONNREFUSED) return 0;
      die(std::string("sendmmsg: ") + std::strerror(errno));
    }
    return n;
  };

  constexpr unsigned rbatch = 64;
  std::vector<char> rbuf(rbatch * 2048);
  std::vector<iovec> riov(rbatch);
  std::vector<mmsghdr> rmsgs(rbatch);
  for (unsigned i = 0; i < rbatch; ++i) {
    riov[i] = {rbuf.data() + i * 2048, 2048};
    rmsgs[i].msg_hdr = {};
    rmsgs[i].msg_hdr.msg_iov = &riov[i];
    rmsgs[i].msg_hdr.msg_iovlen = 1;
  }
  auto drain = [&](sock& k, clock_type::time_point now) {
    for (;;) {
      int n = recvmmsg(k.fd, rmsgs.data(), rbatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) break;
      replies += n;
      k.in_flight = std::max<long long>(0, k.in_flight - n);
      k.last_heard = now;
      if (n < static_cast<int>(rbatch)) break;
    }
  };

  std::vector<epoll_event> events(socks.size());
  const auto start = clock_type::now();
  const bench::schedule plan(rate > 0 ? rate : 1, start);
  const auto measure_from = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(warmup));
  const auto measure_to = measure_from + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(duration));
  bool measuring = false;
  long long sent0 = 0, replies0 = 0, lost0 = 0;
  double cpu0 = 0;
  unsigned long long drops0 = 0;
  double self0 = 0;
  clock_type::time_point t0;
  for (auto& k : socks) k.last_heard = start;
  std::size_t rr = 0;        // round-robin socket for rate mode
  long long due_sent = 0;    // rate mode: requests sent since start

  for (;;) {
    auto now = clock_type::now();
    if (!measuring && now >= measure_from) {
      measuring = true;
      t0 = now;
      sent0 = sent;
      replies0 = replies;
      lost0 = lost;
      drops0 = socket_drops(port);
      cpu0 = pids.empty() ? 0 : bench::cpu_seconds(pids);
      self0 = bench::self_cpu_seconds();
    }
    if (now >= measure_to) break;

    if (rate > 0) {
      long long target = plan.due_by(now);
      while (due_sent < target) {
        int count = static_cast<int>(std::min<long long>(batch, target - due_sent));
        auto& k = socks[rr++ % socks.size()];
        int n = send_some(k, count);
        sent += n;
        due_sent += count;  // what the kernel refused is not retried: the schedule holds
        k.in_flight += is_get ? n : 0;
      }
    } else if (is_get) {
      for (auto& k : socks) {
        while (k.in_flight + batch <= window) {
          int n = send_some(k, batch);
          if (n == 0) break;
          if (k.in_flight == 0) k.last_heard = now;
          sent += n;
          k.in_flight += n;
        }
        if (k.in_flight > 0 && now - k.last_heard > std::chrono::milliseconds(100)) {
          lost += k.in_flight;
          k.in_flight = 0;
        }
      }
    } else {
      for (auto& k : socks) sent += send_some(k, batch);
    }

    if (is_get) {
      int timeout = rate > 0 ? 1 : 1;
      int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), timeout);
      auto at = clock_type::now();
      for (int e = 0; e < n; ++e) drain(socks[events[static_cast<std::size_t>(e)].data.u32], at);
    } else if (rate > 0) {
      // Nothing to read for SETs: sleep to the next 1 ms step.
      usleep(1000);
    }
  }
  auto t1 = clock_type::now();
  double cpu1 = pids.empty() ? 0 : bench::cpu_seconds(pids);
  unsigned long long drops1 = socket_drops(port);
  double self1 = bench::self_cpu_seconds();
  long long sent_w = sent - sent0, replies_w = replies - replies0, lost_w = lost - lost0;

  double secs = std::chrono::duration<double>(t1 - t0).count();
  long long drops_w = static_cast<long long>(drops1 - drops0);
  long long processed = sent_w - drops_w;
  double cpu_s = cpu1 - cpu0;
  double rate_out = (is_get && rate == 0 ? static_cast<double>(replies_w) : static_cast<double>(processed)) / secs;
  std::printf(
      "{\"mode\":\"%s\",\"rate_target\":%.0f,\"duration_s\":%.3f,\"sent\":%lld,\"replies\":%lld,"
      "\"lost\":%lld,\"server_drops\":%lld,\"processed\":%lld,\"rate\":%.1f,\"gen_busy\":%.3f,"
      "\"server_busy\":%.3f,\"cpu_s\":%.3f,\"cpu_us_per_request\":%.4f,\"gso\":%s}\n",
      mode.c_str(), rate, secs, sent_w, replies_w, lost_w, drops_w, processed, rate_out,
      (self1 - self0) / secs, pids.empty() ? 0.0 : cpu_s / secs, cpu_s,
      processed > 0 ? cpu_s * 1e6 / static_cast<double>(processed) : 0.0, gso ? "true" : "false");
  for (auto& k : socks) close(k.fd);
  return 0;
}

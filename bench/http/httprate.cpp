// httprate - a fixed-rate HTTP load generator for the registry's POSTs.
//
//   httprate --port P [--host 127.0.0.1] [--rate 2000] [--duration 5]
//            [--connections 20] [--prefix bench] [--pid PID]... [--resp]
//
// Keep-alive connections each alternate `POST /userlist.txt` with the body
// `REGISTER <prefix><i>@127.0.0.1:<port>` and `LOGOUT` of the same entry, in
// the seed client's exact request bytes. Requests follow a fixed schedule,
// request k of the run due at k/rate seconds, spread round-robin over the
// connections; a connection still waiting for its previous answer sends as
// soon as it arrives (counted in "late"), so the rate holds as long as the
// latency stays under connections/rate. At the end every entry still
// registered is logged out, so the server's list is as it was.
//
// --resp: the same changes for a Redis server, over RESP on the same
// schedule: `SADD users <entry>` for a REGISTER and `SREM users <entry>` for
// a LOGOUT. The answer `:1` (one member added or removed) counts as a 200,
// anything else as a non-200 (an error reply `-...` also as an error).
//
// With --pid (repeatable), the CPU time of those processes (user+system, all
// threads: bench/lib/proc_cpu.hpp) is read when the schedule starts and when the
// last answer of it arrived; the result line then carries cpu_s and
// cpu_us_per_request. One JSON line on stdout:
//   {"rate_target","duration_s","sent","completed","non_200","late","errors",
//    "rate","p50_us","p99_us","cpu_s","cpu_us_per_request"}

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "cli.hpp"
#include "pacing.hpp"
#include "proc_cpu.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using bench::die;

struct conn {
  int fd = -1;
  int index = 0;
  bool waiting = false;        // a request is out, its answer not complete
  bool registered = false;     // the entry is registered now (last 200 was a REGISTER)
  bool next_is_register = true;
  bool late = false;           // its next request fell due while waiting
  clock_type::time_point sent_at;
  std::string in;
  std::string out;             // bytes not written yet
};

std::string request(std::string_view verb, const std::string& entry) {
  std::string body = std::string(verb) + " " + entry;
  return "POST /userlist.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/*\r\n"
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// The RESP command for one change: an array of bulk strings.
std::string resp_request(std::string_view verb, const std::string& entry) {
  std::string out = "*3\r\n$4\r\n";
  out += verb == "REGISTER" ? "SADD" : "SREM";
  out += "\r\n$5\r\nusers\r\n$" + std::to_string(entry.size()) + "\r\n" + entry + "\r\n";
  return out;
}

// One complete RESP reply at the front of `in` (SADD/SREM answer an integer,
// or an error): its length in bytes, 0 when not complete; status 200 for
// `:1`, 500 for an error reply, 409 for any other integer.
std::size_t parse_resp(const std::string& in, int& status) {
  auto end = in.find("\r\n");
  if (end == std::string::npos) return 0;
  if (in[0] == ':') {
    status = in.compare(0, end, ":1") == 0 ? 200 : 409;
  } else if (in[0] == '-') {
    status = 500;
  } else {
    die("unexpected RESP reply: " + in.substr(0, 40));
  }
  return end + 2;
}

// One complete response at the front of `in`: its status, and its length in
// bytes; 0 when not complete yet.
std::size_t parse_response(const std::string& in, int& status) {
  auto end = in.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  if (in.size() < 12 || in.compare(0, 5, "HTTP/") != 0) die("bad response: " + in.substr(0, 40));
  status = std::atoi(in.c_str() + 9);
  std::size_t length = 0;
  std::size_t pos = in.find("\r\n");
  while (pos < end) {
    std::size_t next = in.find("\r\n", pos + 2);
    std::string_view line(in.data() + pos + 2, next - pos - 2);
    if (line.size() > 15 && strncasecmp(line.data(), "content-length:", 15) == 0) {
      length = std::strtoull(std::string(line.substr(15)).c_str(), nullptr, 10);
    }
    pos = next;
  }
  std::size_t total = end + 4 + length;
  return in.size() >= total ? total : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  double rate = 2000, duration = 5;
  int connections = 20;
  std::string prefix = "bench";
  std::vector<int> pids;
  bool resp = false;
  bench::program = "httprate";
  for (bench::args a(argc, argv); a.next();) {
    if (a.is("--host")) host = a.value();
    else if (a.is("--port")) port = static_cast<int>(a.integer());
    else if (a.is("--rate")) rate = a.number();
    else if (a.is("--duration")) duration = a.number();
    else if (a.is("--connections")) connections = static_cast<int>(a.integer());
    else if (a.is("--prefix")) prefix = a.value();
    else if (a.is("--pid")) pids.push_back(static_cast<int>(a.integer()));
    else if (a.is("--resp")) resp = true;
    else a.unknown();
  }
  if (port <= 0 || rate <= 0 || duration <= 0 || connections <= 0) die("bad arguments");

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) die("bad host " + host);

  int ep = epoll_create1(0);
  std::vector<conn> conns(static_cast<std::size_t>(connections));
  for (int i = 0; i < connections; ++i) {
    auto& c = conns[static_cast<std::size_t>(i)];
    c.index = i;
    c.fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c.fd < 0 || connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      die("connect: " + std::string(std::strerror(errno)));
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c.fd, F_SETFL, O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<std::uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  }
  auto make_request = [resp](std::string_view verb, const std::string& e) {
    return resp ? resp_request(verb, e) : request(verb, e);
  };
  auto parse = [resp](const std::string& in, int& status) {
    return resp ? parse_resp(in, status) : parse_response(in, status);
  };
  auto entry = [&](const conn& c) {
    return prefix + std::to_string(c.index) + "@127.0.0.1:" + std::to_string(20000 + c.index);
  };

  long long sent = 0, completed = 0, non_200 = 0, late = 0, errors = 0;
  std::vector<std::uint32_t> latencies;
  latencies.reserve(static_cast<std::size_t>(rate * duration) + 16);

  auto send_now = [&](conn& c, const std::string& bytes) {
    c.out += bytes;
    ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) die("send: " + std::string(std::strerror(errno)));
    if (n > 0) c.out.erase(0, static_cast<std::size_t>(n));
    if (!c.out.empty()) {
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT;
      ev.data.u32 = static_cast<std::uint32_t>(c.index);
      epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
    }
    c.waiting = true;
    c.sent_at = clock_type::now();
  };
  auto send_next = [&](conn& c) {
    send_now(c, make_request(c.next_is_register ? "REGISTER" : "LOGOUT", entry(c)));
    ++sent;
  };

  // Per connection: how many of its scheduled requests are due and unsent.
  // Request k of the run goes to connection k % connections.
  std::vector<long long> due_sent(conns.size(), 0);
  const auto total_per_conn = static_cast<long long>(rate * duration / connections);

  double cpu0 = pids.empty() ? 0 : bench::cpu_seconds(pids);
  auto t0 = clock_type::now();
  const bench::schedule plan(rate, t0);
  auto due_time = [&](std::size_t i, long long j) {
    return plan.due(j * connections + static_cast<long long>(i));
  };
  const auto hard_end = t0 + std::chrono::duration<double>(duration + 10);
  std::vector<epoll_event> events(static_cast<std::size_t>(connections));
  auto any_waiting = [&] {
    return std::any_of(conns.begin(), conns.end(), [](const conn& c) { return c.waiting; });
  };

  // Reads what arrived; `measure` false during the cleanup.
  auto poll_once = [&](int timeout_ms, bool measure) {
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0 && errno != EINTR) die("epoll_wait: " + std::string(std::strerror(errno)));
    for (int k = 0; k < n; ++k) {
      auto& ev = events[static_cast<std::size_t>(k)];
      auto& c = conns[ev.data.u32];
      if (ev.events & EPOLLOUT) {
        ssize_t w = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (w > 0) c.out.erase(0, static_cast<std::size_t>(w));
        if (c.out.empty()) {
          epoll_event mod{};
          mod.events = EPOLLIN;
          mod.data.u32 = static_cast<std::uint32_t>(c.index);
          epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &mod);
        }
      }
      if (!(ev.events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      char buf[16384];
      ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
      if (r == 0) die("the server closed a connection");
      if (r < 0) {
        if (errno == EAGAIN) continue;
        die("recv: " + std::string(std::strerror(errno)));
      }
      c.in.append(buf, static_cast<std::size_t>(r));
      int status = 0;
      while (std::size_t used = parse(c.in, status)) {
        c.in.erase(0, used);
        if (!c.waiting) die("an answer nobody asked for");
        c.waiting = false;
        if (!measure) {
          c.registered = false;
          continue;
        }
        ++completed;
        latencies.push_back(static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(
            clock_type::now() - c.sent_at).count()));
        if (status == 200) {
          c.registered = c.next_is_register;
        } else {
          ++non_200;
          if (status >= 500) ++errors;
        }
        c.next_is_register = !c.next_is_register;
      }
    }
  };

  // The schedule.
  for (;;) {
    auto now = clock_type::now();
    if (now > hard_end) die("answers did not arrive within 10 s after the schedule");
    auto next_due = clock_type::time_point::max();
    bool schedule_left = false;
    for (std::size_t i = 0; i < conns.size(); ++i) {
      auto& c = conns[i];
      if (due_sent[i] >= total_per_conn) continue;
      schedule_left = true;
      auto due = due_time(i, due_sent[i]);
      if (due <= now && c.waiting && !c.late) {
        c.late = true;
        ++late;
      }
      if (due <= now && !c.waiting) {
        c.late = false;
        send_next(c);
        ++due_sent[i];
        if (due_sent[i] < total_per_conn) next_due = std::min(next_due, due_time(i, due_sent[i]));
      } else if (due > now) {
        next_due = std::min(next_due, due);
      }
    }
    if (!schedule_left && !any_waiting()) break;
    int timeout_ms = 100;
    if (next_due != clock_type::time_point::max()) {
      auto d = std::chrono::duration_cast<std::chrono::microseconds>(next_due - clock_type::now()).count();
      timeout_ms = static_cast<int>(std::clamp<long long>((d + 999) / 1000, 0, 100));
    }
    poll_once(timeout_ms, true);
  }
  auto t1 = clock_type::now();
  double cpu1 = pids.empty() ? 0 : bench::cpu_seconds(pids);

  // Leave the list as it was.
  for (auto& c : conns) {
    if (c.registered) send_now(c, make_request("LOGOUT", entry(c)));
  }
  auto cleanup_end = clock_type::now() + std::chrono::seconds(5);
  while (any_waiting() && clock_type::now() < cleanup_end) poll_once(50, false);
  for (auto& c : conns) close(c.fd);

  double secs = std::chrono::duration<double>(t1 - t0).count();
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double q) -> unsigned {
    if (latencies.empty()) return 0;
    return latencies[std::min(latencies.size() - 1, static_cast<std::size_t>(q * static_cast<double>(latencies.size())))];
  };
  std::printf("{\"rate_target\":%.0f,\"duration_s\":%.3f,\"sent\":%lld,\"completed\":%lld,"
              "\"non_200\":%lld,\"late\":%lld,\"errors\":%lld,\"rate\":%.1f,\"p50_us\":%u,"
              "\"p99_us\":%u",
              rate, secs, sent, completed, non_200, late, errors,
              static_cast<double>(completed) / secs, pct(0.5), pct(0.99));
  if (!pids.empty()) {
    double cpu_s = cpu1 - cpu0;
    std::printf(",\"cpu_s\":%.3f,\"cpu_us_per_request\":%.3f", cpu_s,
                completed ? cpu_s * 1e6 / static_cast<double>(completed) : 0.0);
  }
  std::printf("}\n");
  return 0;
}

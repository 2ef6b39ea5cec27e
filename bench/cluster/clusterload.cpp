// clusterload - the load generator of the cluster benchmarks (bench/cluster).
//
// One thread, blocking sockets and poll(): one message in flight at a time,
// so a round trip is the system's latency, not the generator's queueing.
//
//   clusterload nats --url nats://H:P [common]
//       The floor: NATS request/reply between two clients of one
//       nats-server, with libnats as our nodes use it. The requester calls
//       natsConnection_Request (a --size byte payload); the responder, an
//       asynchronous subscription on its own connection, answers a 16-byte
//       receipt at once.
//   clusterload unicast --send-port A --recv-port B [common]
//       Relay protocol 3: a sender registered on the node at port A, its
//       receiver on the node at port B (A = B: same node). One SEND of --size
//       bytes; the receiver answers RECEIVED to the FORWARD; the round trip
//       ends when SENT is back at the sender.
//   clusterload all --ports A,B,C --users N [common]
//       N receivers spread round-robin over the nodes' ports, a sender on the
//       first: SEND ALL; every receiver answers RECEIVED. Reports the time to
//       SENT ALL and to the last FORWARD's arrival at its receiver.
//
// common: --size BYTES (64) --count N (measured round trips) --warmup N
//   --rate R (0: back to back; else one message every 1/R s, for CPU at a
//   fixed rate) --tag T (user name prefix) --pids P,Q (CPU of these
//   processes over the measured part, summed) --nats-pid P (stated apart).
//
// Prints one JSON object on stdout; errors on stderr, exit 1.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nats/nats.h>

#include "cli.hpp"
#include "proc_cpu.hpp"

namespace {

using Clock = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

[[noreturn]] void die(const std::string& why) {
  std::fflush(stdout);
  bench::die(why);
}

struct Options {
  std::string mode;
  std::string url;
  int send_port = 0, recv_port = 0;
  std::vector<int> ports;
  int users = 300;
  std::size_t size = 64;
  int count = 2000, warmup = 200;
  double rate = 0;
  std::string tag = "c";
  std::vector<int> pids;
  int nats_pid = 0;
  bool send_asap = true;
};

std::vector<int> parse_ints(const std::string& s) {
  std::vector<int> v;
  std::stringstream in(s);
  std::string tok;
  while (std::getline(in, tok, ',')) {
    if (!tok.empty()) v.push_back(std::atoi(tok.c_str()));
  }
  return v;
}

// CPU seconds (bench/lib/proc_cpu.hpp: the threads' schedstat run times,
// the nanosecond count behind utime + stime) over the measured part.
struct CpuWindow {
  double nodes0 = 0, nats0 = 0, gen0 = 0;
  double nodes = 0, nats = 0, gen = 0;
  const Options* o = nullptr;

  static double of(const std::vector<int>& pids) {
    double s = bench::cpu_seconds(pids);
    if (s < 0) die("a measured process is gone");
    return s;
  }
  void begin(const Options& opt) {
    o = &opt;
    nodes0 = opt.pids.empty() ? 0 : of(opt.pids);
    if (opt.nats_pid > 0) nats0 = of({opt.nats_pid});
    gen0 = bench::self_cpu_seconds();
  }
  void end() {
    nodes = o->pids.empty() ? 0 : of(o->pids) - nodes0;
    if (o->nats_pid > 0) nats = of({o->nats_pid}) - nats0;
    gen = bench::self_cpu_seconds() - gen0;
  }
};

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// Paces the next message at a fixed rate (no-op when rate is 0).
struct Pacer {
  double rate;
  std::int64_t t0 = now_ns();
  std::int64_t n = 0;
  void wait() {
    if (rate <= 0) return;
    ++n;
    auto due = t0 + static_cast<std::int64_t>(static_cast<double>(n) * 1e9 / rate);
    auto left = due - now_ns();
    if (left > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(left));
  }
};

void print_result(const Options& o, const std::vector<double>& lat_us, int errors, double wall_s,
                  const CpuWindow& cpu, const std::string& extra) {
  std::printf(
      "{\"mode\": \"%s\", \"n\": %zu, \"errors\": %d, \"p50_us\": %.1f, \"p99_us\": %.1f, "
      "\"max_us\": %.1f, \"wall_s\": %.3f, \"per_s\": %.1f, \"cpu_nodes_s\": %.3f, "
      "\"cpu_nats_s\": %.3f, \"cpu_gen_s\": %.3f%s}\n",
      o.mode.c_str(), lat_us.size(), errors, percentile(lat_us, 0.5), percentile(lat_us, 0.99),
      percentile(lat_us, 1.0), wall_s, static_cast<double>(lat_us.size()) / wall_s, cpu.nodes,
      cpu.nats, cpu.gen, extra.c_str());
  std::fflush(stdout);
}

// Runs `round_trip` (warm-up first, then `count` at the paced rate) and
// prints the row of the counted part: each call returns its latency in µs,
// or nothing for an ERROR answer.
template <class RoundTrip>
void measure_round_trips(const Options& o, RoundTrip&& round_trip) {
  std::vector<double> lat;
  lat.reserve(static_cast<std::size_t>(o.count));
  int errors = 0;
  CpuWindow cpu;
  std::int64_t w0 = 0;
  Pacer pace{o.rate};
  for (int i = 0; i < o.warmup + o.count; ++i) {
    if (i == o.warmup) {
      cpu.begin(o);
      w0 = now_ns();
      pace = Pacer{o.rate};
    }
    std::optional<double> us = round_trip();
    if (i < o.warmup) continue;
    if (us) {
      lat.push_back(*us);
    } else {
      ++errors;
    }
    pace.wait();
  }
  double wall = static_cast<double>(now_ns() - w0) / 1e9;
  cpu.end();
  print_result(o, lat, errors, wall, cpu, "");
}

// ------------------------------------------------------------------- NATS

void check(natsStatus s, const char* what) {
  if (s != NATS_OK) die(std::string(what) + ": " + natsStatus_GetText(s));
}

void on_request(natsConnection* nc, natsSubscription*, natsMsg* msg, void*) {
  static const char receipt[] = "0123456789abcdef";
  if (const char* reply = natsMsg_GetReply(msg)) natsConnection_Publish(nc, reply, receipt, 16);
  natsMsg_Destroy(msg);
}

int run_nats(const Options& o) {
  natsConnection *requester = nullptr, *responder = nullptr;
  natsSubscription* sub = nullptr;
  natsOptions* opts = nullptr;
  check(natsOptions_Create(&opts), "options");
  check(natsOptions_SetURL(opts, o.url.c_str()), "url");
  check(natsConnection_Connect(&requester, opts), "connect requester");
  // The responder sends each reply at once, as libnats advises for a
  // connection that only answers (the requester's Request() does so anyway).
  check(natsOptions_SetSendAsap(opts, o.send_asap), "send asap");
  check(natsConnection_Connect(&responder, opts), "connect responder");
  natsOptions_Destroy(opts);
  std::string subject = "clusterbench." + o.tag;
  check(natsConnection_Subscribe(&sub, responder, subject.c_str(), on_request, nullptr), "subscribe");
  check(natsConnection_Flush(responder), "flush");
  std::string body(o.size, 'x');
  measure_round_trips(o, [&]() -> std::optional<double> {
    natsMsg* reply = nullptr;
    auto t0 = now_ns();
    natsStatus s = natsConnection_Request(&reply, requester, subject.c_str(), body.data(),
                                          static_cast<int>(body.size()), 10000);
    auto t1 = now_ns();
    bool ok = s == NATS_OK && natsMsg_GetDataLength(reply) == 16;
    if (reply) natsMsg_Destroy(reply);
    if (!ok) return std::nullopt;
    return static_cast<double>(t1 - t0) / 1e3;
  });
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(requester);
  natsConnection_Destroy(responder);
  nats_Close();
  return 0;
}

// ------------------------------------------------------------------ relay

struct Sock {
  int fd = -1;
  std::string buf;
  std::string name;
};

int connect_port(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die(std::string("socket: ") + std::strerror(errno) + " (raise the descriptor limit)");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    die("connect to port " + std::to_string(port) + ": " + std::strerror(errno));
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void write_all(const Sock& s, std::string_view data) {
  while (!data.empty()) {
    ssize_t k = ::send(s.fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) die("write to " + s.name + ": " + std::strerror(errno));
    data.remove_prefix(static_cast<std::size_t>(k));
  }
}

// One relay message out of s.buf (exact LF framing, as our server writes):
// true and the start line (and body) when complete.
bool take_msg(Sock& s, std::string& line, std::string* body = nullptr) {
  auto hend = s.buf.find("\n\n");
  if (hend == std::string::npos) return false;
  auto nl = s.buf.find('\n');
  line.assign(s.buf, 0, nl);
  std::size_t clen = 0;
  for (std::size_t h = nl + 1; h < hend;) {
    auto le = s.buf.find('\n', h);
    std::string_view hl(s.buf.data() + h, le - h);
    if (hl.size() > 15 && strncasecmp(hl.data(), "content-length:", 15) == 0) {
      clen = static_cast<std::size_t>(std::strtoul(std::string(hl.substr(15)).c_str(), nullptr, 10));
    }
    h = le + 1;
  }
  std::size_t total = hend + 2 + clen;
  if (s.buf.size() < total) return false;
  if (body) body->assign(s.buf, hend + 2, clen);
  s.buf.erase(0, total);
  return true;
}

// Reads what is there (the caller polled first); dies when the server closed.
bool fill(Sock& s) {
  char tmp[65536];
  ssize_t k = ::recv(s.fd, tmp, sizeof tmp, 0);
  if (k < 0 && (errno == EINTR || errno == EAGAIN)) return false;
  if (k <= 0) die(s.name + ": connection closed by the server" + (k < 0 ? std::string(": ") + std::strerror(errno) : ""));
  s.buf.append(tmp, static_cast<std::size_t>(k));
  return true;
}

std::string read_msg(Sock& s, std::string* body = nullptr) {
  std::string line;
  while (!take_msg(s, line, body)) {
    pollfd p{s.fd, POLLIN, 0};
    if (::poll(&p, 1, 20000) <= 0) die(s.name + ": no answer within 20 s");
    fill(s);
  }
  return line;
}

struct User {
  std::string name;
  Sock send, recv;
};

// Registers both sockets of `name` on the node at `port` (pipelined).
void register_user(User& u, const std::string& name, int port) {
  u.name = name;
  u.send.fd = connect_port(port);
  u.recv.fd = connect_port(port);
  u.send.name = name + "/TOSEND";
  u.recv.name = name + "/TORECV";
  write_all(u.send, "REGISTER TOSEND " + name + "\n\n");
  write_all(u.recv, "REGISTER TORECV " + name + "\n\n");
  for (Sock* s : {&u.send, &u.recv}) {
    std::string line = read_msg(*s);
    if (line.rfind("REGISTERED ", 0) != 0) die(s->name + ": " + line);
  }
}

void close_user(User& u) {
  ::close(u.send.fd);
  ::close(u.recv.fd);
}

std::string send_request(std::string_view to, std::size_t size) {
  std::string r = "SEND ";
  r.append(to).append("\nContent-length: ").append(std::to_string(size)).append("\n\n");
  r.append(size, 'x');
  return r;
}

// Answers every complete FORWARD in r's buffer; returns how many.
int answer_forwards(Sock& r) {
  int n = 0;
  std::string line;
  while (take_msg(r, line)) {
    if (line.rfind("FORWARD ", 0) == 0) {
      write_all(r, "RECEIVED " + line.substr(8) + "\n\n");
      ++n;
    } else if (line.rfind("JOINED ", 0) != 0 && line.rfind("LEFT ", 0) != 0) {
      die(r.name + ": unexpected " + line);
    }
  }
  return n;
}

int run_unicast(const Options& o) {
  User sender, receiver;
  register_user(sender, o.tag + "s", o.send_port);
  register_user(receiver, o.tag + "r", o.recv_port);
  const std::string request = send_request(receiver.name, o.size);
  measure_round_trips(o, [&]() -> std::optional<double> {
    auto t0 = now_ns();
    write_all(sender.send, request);
    std::string line;
    while (true) {
      pollfd p[2] = {{sender.send.fd, POLLIN, 0}, {receiver.recv.fd, POLLIN, 0}};
      if (::poll(p, 2, 20000) <= 0) die("no SENT/ERROR within 20 s");
      if (p[1].revents) {
        fill(receiver.recv);
        answer_forwards(receiver.recv);
      }
      if (p[0].revents) {
        fill(sender.send);
        if (take_msg(sender.send, line)) {
          if (line.rfind("SENT ", 0) == 0) return static_cast<double>(now_ns() - t0) / 1e3;
          if (line.rfind("ERROR ", 0) == 0) return std::nullopt;
          die("sender: unexpected " + line);
        }
      }
    }
  });
  close_user(sender);
  close_user(receiver);
  return 0;
}

int run_all(const Options& o) {
  if (o.ports.empty()) die("all: --ports is required");
  // Two descriptors per user, and then some.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  std::vector<User> receivers(static_cast<std::size_t>(o.users));
  for (int k = 0; k < o.users; ++k) {
    register_user(receivers[static_cast<std::size_t>(k)], o.tag + "u" + std::to_string(k),
                  o.ports[static_cast<std::size_t>(k) % o.ports.size()]);
  }
  User sender;
  register_user(sender, o.tag + "s", o.ports[0]);
  const std::string request = send_request("ALL", o.size);
  std::vector<pollfd> fds;
  fds.push_back({sender.send.fd, POLLIN, 0});
  for (auto& r : receivers) fds.push_back({r.recv.fd, POLLIN, 0});
  std::vector<double> sent_all, last_forward;
  int errors = 0;
  CpuWindow cpu;
  std::int64_t w0 = 0;
  for (int i = 0; i < o.warmup + o.count; ++i) {
    if (i == o.warmup) {
      cpu.begin(o);
      w0 = now_ns();
    }
    auto t0 = now_ns();
    write_all(sender.send, request);
    int forwards = 0;
    std::int64_t t_last = 0, t_sent = 0;
    bool answered = false, failed = false;
    while (!answered || forwards < o.users) {
      int ready = ::poll(fds.data(), fds.size(), 20000);
      if (ready <= 0) {
        die("SEND ALL: after 20 s, " + std::to_string(forwards) + " of " + std::to_string(o.users) +
            " FORWARDs and " + (answered ? "the answer" : "no answer"));
      }
      auto t = now_ns();
      for (std::size_t k = 1; k < fds.size(); ++k) {
        if (!fds[k].revents) continue;
        Sock& r = receivers[k - 1].recv;
        fill(r);
        int n = answer_forwards(r);
        if (n) {
          forwards += n;
          t_last = t;
        }
      }
      if (fds[0].revents) {
        fill(sender.send);
        std::string line;
        while (take_msg(sender.send, line)) {
          if (line.rfind("SENT ", 0) == 0) {
            answered = true;
            t_sent = t;
          } else if (line.rfind("ERROR ", 0) == 0) {
            answered = failed = true;
            t_sent = t;
          } else {
            die("sender: unexpected " + line);
          }
        }
      }
      if (answered && failed) break;  // some receiver may never get it
    }
    if (i < o.warmup) continue;
    if (failed) {
      ++errors;
    } else {
      sent_all.push_back(static_cast<double>(t_sent - t0) / 1e3);
      last_forward.push_back(static_cast<double>(t_last - t0) / 1e3);
    }
  }
  double wall = static_cast<double>(now_ns() - w0) / 1e9;
  cpu.end();
  for (auto& r : receivers) close_user(r);
  close_user(sender);
  char extra[256];
  std::snprintf(extra, sizeof extra,
                ", \"last_forward_p50_us\": %.1f, \"last_forward_p99_us\": %.1f, \"users\": %d",
                percentile(last_forward, 0.5), percentile(last_forward, 0.99), o.users);
  print_result(o, sent_all, errors, wall, cpu, extra);
  return 0;
}

Options parse(int argc, char** argv) {
  Options o;
  if (argc < 2) die("usage: clusterload nats|unicast|all [options] (see the top of clusterload.cpp)");
  o.mode = argv[1];
  for (bench::args a(argc - 1, argv + 1); a.next();) {
    if (a.is("--url")) o.url = a.value();
    else if (a.is("--send-port")) o.send_port = static_cast<int>(a.integer());
    else if (a.is("--recv-port")) o.recv_port = static_cast<int>(a.integer());
    else if (a.is("--ports")) o.ports = parse_ints(a.value());
    else if (a.is("--users")) o.users = static_cast<int>(a.integer());
    else if (a.is("--size")) o.size = static_cast<std::size_t>(a.integer());
    else if (a.is("--count")) o.count = static_cast<int>(a.integer());
    else if (a.is("--warmup")) o.warmup = static_cast<int>(a.integer());
    else if (a.is("--rate")) o.rate = a.number();
    else if (a.is("--tag")) o.tag = a.value();
    else if (a.is("--pids")) o.pids = parse_ints(a.value());
    else if (a.is("--nats-pid")) o.nats_pid = static_cast<int>(a.integer());
    else if (a.is("--send-asap")) o.send_asap = a.value() != "0";
    else a.unknown();
  }
  if (o.count <= 0 || o.warmup < 0 || o.users <= 0 || o.size == 0) die("bad --count/--warmup/--users/--size");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  bench::program = "clusterload";
  Options o = parse(argc, argv);
  if (o.mode == "nats") {
    if (o.url.empty()) die("nats: --url is required");
    return run_nats(o);
  }
  if (o.mode == "unicast") {
    if (o.send_port <= 0 || o.recv_port <= 0) die("unicast: --send-port and --recv-port are required");
    return run_unicast(o);
  }
  if (o.mode == "all") return run_all(o);
  die("unknown mode " + o.mode + " (nats, unicast, all)");
}

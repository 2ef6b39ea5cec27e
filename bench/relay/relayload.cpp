// relayload - the load generator of the relay benchmarks (bench/relay).
//
// One thread, one io_context, plain callbacks: the generator has to cost
// less per message than the servers it measures, so it parses only what it
// needs and batches its writes (everything a read produced leaves in one
// write per socket). It speaks, with framing of its own:
//
//   relay  our protocol 3: a user is a send socket and a receive socket
//   mqtt   MQTT 3.1.1: CONNECT, SUBSCRIBE, PUBLISH, PUBACK (QoS 0 or 1)
//   nats   the NATS client protocol: CONNECT, SUB, PUB, MSG, PING/PONG
//   http   (idle scenario only) one keep-alive GET, then silence
//
// Scenarios (--scenario):
//
//   unicast    --pairs N senders, sender i -> receiver i. A message counts
//              once its acknowledgement is back at the sender: relay SEND ->
//              FORWARD -> RECEIVED -> SENT; mqtt/nats: the receiver
//              republishes a 16-byte receipt to the sender's reply topic /
//              request inbox. Closed loop (--inflight per sender) or open
//              loop (--rate messages/s in total, paced by a 50 us tick;
//              --pace spin polls instead of sleeping between ticks).
//   broadcast  one sender, --receivers R; a message is complete when all R
//              acknowledged (relay: SEND ALL ... SENT ALL; mqtt/nats: one
//              publish to a topic with R subscribers, each republishes a
//              receipt, the sender counts R of them).
//   slow       unicast, open loop; receiver 0 stops reading when the
//              measurement starts. Its pair is reported apart.
//   idle       --clients C connect, register (relay, two sockets each) or
//              CONNECT+SUBSCRIBE (mqtt) or make one GET (http), and stay
//              silent; the server's resident memory is read from
//              /proc/<--server-pid>/status before and after. Clients are
//              spread over --procs processes (one process may hold fewer
//              descriptors than we need) and --src-addrs 127.0.0.x source
//              addresses (so ephemeral ports never run short).
//
// Prints one JSON object on stdout; progress and errors on stderr.

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio.hpp>

#include "proc_cpu.hpp"

namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "relayload: %s\n", why.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

enum class Proto { relay, mqtt, nats, http };
enum class Scenario { unicast, broadcast, slow, idle };
enum class Role { sender, receiver, passive, idle };

struct Options {
  Proto proto = Proto::relay;
  Scenario scenario = Scenario::unicast;
  int qos = 0;
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  int pairs = 64;
  int inflight = 1;
  std::size_t size = 64;
  double rate = 0;  // messages/s over all senders; 0 = closed loop
  double warmup = 0.5;
  double duration = 1.5;
  int receivers = 100;
  int clients = 0;
  int procs = 1;
  int src_addrs = 1;
  double settle = 1.0;
  double setup_timeout = 60;
  int server_pid = 0;
  std::string tag = "b";
  // Open loop: poll the sockets and the clock without sleeping (the core is
  // ours) instead of a 50 us timer, whose sleep and wake-up cost ~45 us of
  // CPU on a virtual machine: timer-paced, the generator sat at 0.92-0.99 of
  // its core at any rate and its own queueing made the latencies (20 pairs
  // at 10,000 msg/s: p99 7.4 ms with the timer, 0.49 ms polling).
  bool spin = false;
  // Sample the server's RSS every 250 ms of the window (on in the slow
  // scenario; --sample-rss 1 turns it on elsewhere, so that the half it is
  // compared with pays the same /proc reads on this thread).
  bool sample_rss = false;
};

// ------------------------------------------------------------- /proc reading

struct ProcMem {
  long rss_kib = -1, hwm_kib = -1;
};

ProcMem read_mem(int pid) {
  ProcMem m;
  if (pid <= 0) return m;
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) m.rss_kib = std::atol(line.c_str() + 6);
    if (line.rfind("VmHWM:", 0) == 0) m.hwm_kib = std::atol(line.c_str() + 6);
  }
  return m;
}

// ------------------------------------------------------------------ framing

void put_hex16(char* out, std::uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    out[i] = digits[v & 15];
    v >>= 4;
  }
}

bool get_hex16(const char* p, std::size_t n, std::uint64_t& v) {
  if (n < 16) return false;
  v = 0;
  for (int i = 0; i < 16; ++i) {
    char c = p[i];
    unsigned d;
    if (c >= '0' && c <= '9') {
      d = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<unsigned>(c - 'a' + 10);
    } else {
      return false;
    }
    v = (v << 4) | d;
  }
  return true;
}

std::size_t parse_size(const char* p, const char* end) {
  while (p < end && (*p == ' ' || *p == '\t')) ++p;
  std::size_t v = 0;
  while (p < end && *p >= '0' && *p <= '9') v = v * 10 + static_cast<std::size_t>(*p++ - '0');
  return v;
}

// One relay message (the server sends exact LF framing): returns the bytes
// it takes, 0 while incomplete.
std::size_t relay_next(const char* p, std::size_t n, std::string_view& line,
                       std::string_view& body) {
  const char* hend = static_cast<const char*>(memmem(p, n, "\n\n", 2));
  if (!hend) return 0;
  const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(hend - p) + 1));
  line = std::string_view(p, static_cast<std::size_t>(nl - p));
  std::size_t clen = 0;
  for (const char* h = nl + 1; h < hend;) {
    const char* le = static_cast<const char*>(std::memchr(h, '\n', static_cast<std::size_t>(hend - h) + 1));
    if (le - h > 15 && strncasecmp(h, "content-length:", 15) == 0) clen = parse_size(h + 15, le);
    h = le + 1;
  }
  std::size_t total = static_cast<std::size_t>(hend - p) + 2 + clen;
  if (n < total) return 0;
  body = std::string_view(hend + 2, clen);
  return total;
}

void mqtt_put_len(std::string& out, std::size_t len) {
  do {
    auto b = static_cast<unsigned char>(len & 127);
    len >>= 7;
    if (len) b |= 128;
    out.push_back(static_cast<char>(b));
  } while (len);
}

void mqtt_put_str(std::string& out, std::string_view s) {
  out.push_back(static_cast<char>(s.size() >> 8));
  out.push_back(static_cast<char>(s.size() & 255));
  out.append(s);
}

// PUBLISH with `body` whose first 16 bytes are replaced by `seq` when seq
// is given (>= 0).
void mqtt_publish(std::string& out, int qos, std::uint16_t pid, std::string_view topic,
                  std::string_view body, std::int64_t seq) {
  out.push_back(static_cast<char>(0x30 | (qos << 1)));
  mqtt_put_len(out, 2 + topic.size() + (qos ? 2 : 0) + body.size());
  mqtt_put_str(out, topic);
  if (qos) {
    out.push_back(static_cast<char>(pid >> 8));
    out.push_back(static_cast<char>(pid & 255));
  }
  std::size_t at = out.size();
  out.append(body);
  if (seq >= 0) put_hex16(&out[at], static_cast<std::uint64_t>(seq));
}

// ---------------------------------------------------------------- the load

struct Load;

constexpr std::size_t ring_size = 1 << 15;
struct Slot {
  std::int64_t t = 0;
  std::int32_t remaining = 0;
};

struct Conn {
  Conn(Load& l, asio::io_context& io, Role r, int i) : load(l), sock(io), role(r), index(i) {}

  Load& load;
  tcp::socket sock;
  Role role;
  int index;
  std::vector<char> rbuf;
  std::size_t rlen = 0;
  std::string out, wbuf;
  bool writing = false;
  bool stalled = false;
  bool ready = false;
  int handshake_left = 1;
  std::uint16_t next_pid = 0;

  std::string hello;  // handshake bytes
  // Sender: what a request looks like.
  std::string req_head;  // relay "SEND x\nContent-length: n\n\n"
  std::string topic;     // mqtt topic / nats subject
  std::string inbox;     // nats reply prefix "_INBOX.x."
  std::string reply_to;  // receiver (mqtt): where receipts go
  std::uint64_t next_seq = 0, acked_seq = 0;
  // Open loop: messages not produced because the server had stopped reading
  // this sender (its bytes still unwritten here past max_backlog).
  std::uint64_t held_back = 0;
  std::vector<Slot> ring;

  std::uint16_t pid() {
    if (++next_pid == 0) next_pid = 1;
    return next_pid;
  }
  void start_read();
  void flush();
  std::size_t consume(char* p, std::size_t n);
  std::size_t consume_relay(char* p, std::size_t n);
  std::size_t consume_mqtt(char* p, std::size_t n);
  std::size_t consume_nats(char* p, std::size_t n);
  std::size_t consume_http(char* p, std::size_t n);
  void handshake_step();
  void fail(const std::string& what);
};

struct Load {
  explicit Load(const Options& o) : opt(o), io(1), timer(io), pacer(io), sampler(io) {}

  Options opt;
  asio::io_context io;
  asio::steady_timer timer, pacer, sampler;
  std::vector<std::unique_ptr<Conn>> conns;
  std::vector<Conn*> senders;
  std::string body;
  int acks_per_message = 1;
  std::size_t ready_count = 0;
  std::size_t next_connect = 0;
  std::size_t connecting = 0;
  bool running = false, done = false;
  std::int64_t t_start = 0, win_start = 0, win_end = 0;
  double gen_cpu0 = 0, srv_cpu0 = 0, gen_cpu1 = 0, srv_cpu1 = 0;
  // Results inside the measurement window.
  std::uint64_t acked = 0, errors = 0, acked0 = 0, errors0 = 0, conn_errors = 0, overflow = 0;
  std::uint64_t held_back = 0;  // messages not produced: see Conn::held_back
  std::vector<std::uint32_t> lat;  // ns, saturating
  std::vector<std::uint32_t> lat_at;  // us since the window opened, beside lat (open loop)
  std::int64_t max_lag_ns = 0;
  std::int64_t next_tick = 0;
  std::vector<long> rss_samples;
  std::function<void()> on_ready;

  // False when the ring is full (nothing produced, try again later); true
  // when sent or held back (counted, never sent: the open loop moves on).
  bool send_one(Conn& s, std::int64_t t);
  void on_ack(Conn& s, std::uint64_t seq, bool ok);
  void complete(Conn& s, const Slot& slot, bool ok);
  void connect_more();
  void start_run();
  void tick();
  void sample();
  void finish();
};

void Conn::fail(const std::string& what) {
  if (!load.running && !load.done && load.opt.scenario != Scenario::idle) {
    die("connection " + std::to_string(index) + ": " + what);
  }
  if (!load.done) {
    ++load.conn_errors;
    if (load.conn_errors <= 5) std::fprintf(stderr, "relayload[%d]: connection %d: %s\n", static_cast<int>(getpid()), index, what.c_str());
  }
}

void Conn::start_read() {
  if (rlen == rbuf.size()) rbuf.resize(rbuf.size() * 2);
  sock.async_read_some(asio::buffer(rbuf.data() + rlen, rbuf.size() - rlen),
                       [this](const std::error_code& ec, std::size_t n) {
                         if (ec) {
                           if (!load.done) fail("read: " + ec.message());
                           return;
                         }
                         rlen += n;
                         std::size_t used = consume(rbuf.data(), rlen);
                         if (used) {
                           std::memmove(rbuf.data(), rbuf.data() + used, rlen - used);
                           rlen -= used;
                         }
                         flush();
                         if (!stalled && !load.done) start_read();
                       });
}

void Conn::flush() {
  if (writing || out.empty()) return;
  std::swap(out, wbuf);
  writing = true;
  asio::async_write(sock, asio::buffer(wbuf), [this](const std::error_code& ec, std::size_t) {
    writing = false;
    wbuf.clear();
    if (ec) {
      if (!load.done) fail("write: " + ec.message());
      return;
    }
    flush();
  });
}

void Conn::handshake_step() {
  if (ready || --handshake_left > 0) return;
  ready = true;
  ++load.ready_count;
  --load.connecting;
  load.connect_more();
  if (load.ready_count == load.conns.size() && load.on_ready) load.on_ready();
}

std::size_t Conn::consume(char* p, std::size_t n) {
  switch (load.opt.proto) {
    case Proto::relay: return consume_relay(p, n);
    case Proto::mqtt: return consume_mqtt(p, n);
    case Proto::nats: return consume_nats(p, n);
    case Proto::http: return consume_http(p, n);
  }
  return 0;
}

std::size_t Conn::consume_relay(char* p, std::size_t n) {
  std::size_t used = 0;
  while (used < n) {
    std::string_view line, body;
    std::size_t k = relay_next(p + used, n - used, line, body);
    if (!k) break;
    used += k;
    if (line.rfind("FORWARD ", 0) == 0) {
      out.append("RECEIVED ").append(line.substr(8)).append("\n\n", 2);
    } else if (line.rfind("SENT ", 0) == 0) {
      load.on_ack(*this, acked_seq++, true);
    } else if (line.rfind("ERROR ", 0) == 0) {
      if (!ready) die("relay: " + std::string(line));
      load.on_ack(*this, acked_seq++, false);
    } else if (line.rfind("REGISTERED ", 0) == 0) {
      handshake_step();
    } else {
      std::fprintf(stderr, "relayload: unexpected relay message: %.*s\n",
                   static_cast<int>(line.size()), line.data());
    }
  }
  return used;
}

std::size_t Conn::consume_mqtt(char* p, std::size_t n) {
  std::size_t used = 0;
  const int qos = load.opt.qos;
  while (n - used >= 2) {
    auto* q = reinterpret_cast<unsigned char*>(p + used);
    std::size_t avail = n - used, rl = 0, i = 1;
    unsigned shift = 0;
    bool complete = false;
    while (i < avail && i <= 4) {
      unsigned char b = q[i++];
      rl |= static_cast<std::size_t>(b & 127) << shift;
      shift += 7;
      if (!(b & 128)) {
        complete = true;
        break;
      }
    }
    if (!complete || avail < i + rl) break;
    used += i + rl;
    const unsigned char* v = q + i;
    switch (q[0] >> 4) {
      case 2:  // CONNACK
        if (rl < 2 || v[1] != 0) die("mqtt: connection refused, code " + std::to_string(rl >= 2 ? v[1] : -1));
        handshake_step();
        break;
      case 9:  // SUBACK
        if (rl >= 3 && v[2] == 0x80) die("mqtt: subscription refused");
        handshake_step();
        break;
      case 3: {  // PUBLISH
        int pq = (q[0] >> 1) & 3;
        std::size_t tl = (static_cast<std::size_t>(v[0]) << 8) | v[1];
        std::size_t off = 2 + tl;
        if (pq) {
          std::uint16_t id = static_cast<std::uint16_t>((v[off] << 8) | v[off + 1]);
          off += 2;
          char ack[4] = {0x40, 2, static_cast<char>(id >> 8), static_cast<char>(id & 255)};
          out.append(ack, 4);
        }
        const char* payload = reinterpret_cast<const char*>(v + off);
        std::size_t plen = rl - off;
        if (role == Role::receiver) {
          mqtt_publish(out, qos, pid(), reply_to, std::string_view(payload, std::min<std::size_t>(plen, 16)), -1);
        } else if (role == Role::sender) {
          std::uint64_t seq;
          if (get_hex16(payload, plen, seq)) load.on_ack(*this, seq, true);
        }
        break;
      }
      case 4:   // PUBACK
      case 13:  // PINGRESP
        break;
      default:
        std::fprintf(stderr, "relayload: unexpected mqtt packet type %d\n", q[0] >> 4);
    }
  }
  return used;
}

std::size_t Conn::consume_nats(char* p, std::size_t n) {
  std::size_t used = 0;
  while (used < n) {
    char* b = p + used;
    auto* nl = static_cast<char*>(std::memchr(b, '\n', n - used));
    if (!nl) break;
    std::string_view line(b, static_cast<std::size_t>(nl - b));
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::size_t head = static_cast<std::size_t>(nl - b) + 1;
    if (line.rfind("MSG ", 0) == 0) {
      // MSG <subject> <sid> [reply-to] <#bytes>
      std::string_view parts[5];
      int count = 0;
      std::size_t pos = 4;
      while (pos < line.size() && count < 5) {
        std::size_t sp = line.find(' ', pos);
        if (sp == std::string_view::npos) sp = line.size();
        if (sp > pos) parts[count++] = line.substr(pos, sp - pos);
        pos = sp + 1;
      }
      if (count < 3) die("nats: bad MSG line");
      std::size_t plen = parse_size(parts[count - 1].data(), parts[count - 1].data() + parts[count - 1].size());
      if (n - used < head + plen + 2) break;
      const char* payload = b + head;
      if (role == Role::receiver && count == 4) {
        out.append("PUB ").append(parts[2]).append(" 16\r\n");
        if (plen >= 16) {
          out.append(payload, 16);
        } else {
          out.append(16, '0');
        }
        out.append("\r\n", 2);
      } else if (role == Role::sender) {
        std::uint64_t seq;
        if (get_hex16(payload, plen, seq)) load.on_ack(*this, seq, true);
      }
      used += head + plen + 2;
      continue;
    }
    used += head;
    if (line == "PING") {
      out.append("PONG\r\n");
    } else if (line == "PONG") {
      handshake_step();
    } else if (line.rfind("-ERR", 0) == 0) {
      std::fprintf(stderr, "relayload: nats: %.*s\n", static_cast<int>(line.size()), line.data());
      if (!ready) die("nats refused the connection");
    }
    // INFO, +OK: nothing to do.
  }
  return used;
}

std::size_t Conn::consume_http(char* p, std::size_t n) {
  const char* hend = static_cast<const char*>(memmem(p, n, "\r\n\r\n", 4));
  if (!hend) return 0;
  std::size_t clen = 0;
  for (const char* h = p; h < hend;) {
    const char* le = static_cast<const char*>(memmem(h, static_cast<std::size_t>(hend - h) + 2, "\r\n", 2));
    if (le - h > 15 && strncasecmp(h, "content-length:", 15) == 0) clen = parse_size(h + 15, le);
    h = le + 2;
  }
  std::size_t total = static_cast<std::size_t>(hend - p) + 4 + clen;
  if (n < total) return 0;
  if (std::strncmp(p, "HTTP/1.1 200", 12) != 0) die("http: " + std::string(p, std::min<std::size_t>(n, 40)));
  handshake_step();
  return total;
}

// ------------------------------------------------------------ the messages

// Bytes a connection may have queued here, unwritten. A client whose server
// stops reading stops producing (TCP backpressure) rather than queueing
// without bound: the stuck pair's sender (scenario slow) queued 30 MB in a
// 4 s window, and growing that buffer (reallocation, page faults) stalled
// this one thread for tens of ms, which the other pairs' latencies showed.
constexpr std::size_t max_backlog = 1 << 20;

bool Load::send_one(Conn& s, std::int64_t t) {
  if (s.next_seq - s.acked_seq >= ring_size) {
    ++overflow;
    return false;
  }
  if (opt.rate > 0 && s.out.size() >= max_backlog) {
    ++s.held_back;
    ++held_back;
    return true;
  }
  std::uint64_t seq = s.next_seq++;
  Slot& slot = s.ring[seq & (ring_size - 1)];
  slot.t = t;
  slot.remaining = acks_per_message;
  switch (opt.proto) {
    case Proto::relay: {
      s.out.append(s.req_head);
      std::size_t at = s.out.size();
      s.out.append(body);
      put_hex16(&s.out[at], seq);
      break;
    }
    case Proto::mqtt:
      mqtt_publish(s.out, opt.qos, s.pid(), s.topic, body, static_cast<std::int64_t>(seq));
      break;
    case Proto::nats: {
      char num[24];
      s.out.append("PUB ").append(s.topic).append(" ").append(s.inbox);
      s.out.append(num, static_cast<std::size_t>(std::snprintf(num, sizeof num, "%" PRIu64 " %zu\r\n", seq, body.size())));
      std::size_t at = s.out.size();
      s.out.append(body).append("\r\n");
      put_hex16(&s.out[at], seq);
      break;
    }
    case Proto::http:
      break;
  }
  return true;
}

void Load::on_ack(Conn& s, std::uint64_t seq, bool ok) {
  if (seq >= s.next_seq || s.next_seq - seq > ring_size) {
    ++errors;
    return;
  }
  Slot& slot = s.ring[seq & (ring_size - 1)];
  if (slot.remaining <= 0) {
    ++errors;
    return;
  }
  if (--slot.remaining > 0) return;
  if (opt.proto != Proto::relay) {
    // Receipts may come out of order (broadcast): the sender's window is
    // the oldest message still open.
    while (s.acked_seq < s.next_seq && s.ring[s.acked_seq & (ring_size - 1)].remaining == 0) ++s.acked_seq;
  }
  complete(s, slot, ok);
}

void Load::complete(Conn& s, const Slot& slot, bool ok) {
  if (!running) return;
  std::int64_t now = now_ns();
  if (now >= win_start && now < win_end) {
    if (opt.scenario == Scenario::slow && s.index == 0) {
      ok ? ++acked0 : ++errors0;
    } else if (ok) {
      ++acked;
      lat.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(now - slot.t, UINT32_MAX)));
      if (opt.rate > 0) lat_at.push_back(static_cast<std::uint32_t>((now - win_start) / 1000));
    } else {
      ++errors;
    }
  }
  if (opt.rate <= 0 && now < win_end) send_one(s, now);
}

// --------------------------------------------------------------- the phases

void Load::connect_more() {
  // Connections being set up at once (connected, handshake unanswered): more
  // would only overflow the server's accept queue and wait for SYN retries.
  constexpr std::size_t window = 128;
  while (connecting < window && next_connect < conns.size()) {
    Conn* c = conns[next_connect].get();
    ++next_connect;
    ++connecting;
    auto addr = asio::ip::make_address(opt.host);
    tcp::endpoint ep(addr, opt.port);
    std::error_code ec;
    c->sock.open(tcp::v4(), ec);
    if (ec) die("socket: " + ec.message() + " (raise the descriptor limit)");
    if (opt.src_addrs > 1) {
      // 127.0.0.2, .3, ...: each source address has its own ephemeral ports.
      // By user, not by connection: the relay pairs a user's two sockets
      // only when they come from one address.
      int one = 1;
      setsockopt(c->sock.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      auto user = static_cast<std::size_t>(c->index);
      auto src = asio::ip::make_address_v4(0x7f000002u + static_cast<std::uint32_t>(user % static_cast<std::size_t>(opt.src_addrs)));
      c->sock.bind(tcp::endpoint(src, 0), ec);
      if (ec) die("bind: " + ec.message());
    }
    c->sock.async_connect(ep, [c](const std::error_code& e) {
      if (e) die("connect: " + e.message());
      std::error_code ignored;
      c->sock.set_option(tcp::no_delay(true), ignored);
      c->out.append(c->hello);
      c->flush();
      c->start_read();
    });
  }
}

void Load::start_run() {
  running = true;
  t_start = now_ns();
  win_start = t_start + static_cast<std::int64_t>(opt.warmup * 1e9);
  win_end = win_start + static_cast<std::int64_t>(opt.duration * 1e9);
  lat.reserve(1 << 20);
  if (opt.rate > 0) lat_at.reserve(1 << 20);
  if (opt.rate <= 0) {
    for (Conn* s : senders) {
      for (int k = 0; k < opt.inflight; ++k) send_one(*s, now_ns());
      s->flush();
    }
  } else {
    next_tick = t_start;
    tick();
  }
  // Window start: CPU counters, and the stalled receiver of the slow scenario.
  timer.expires_at(Clock::time_point(std::chrono::nanoseconds(win_start)));
  timer.async_wait([this](const std::error_code& ec) {
    if (ec) return;
    gen_cpu0 = bench::self_cpu_seconds();
    srv_cpu0 = bench::stat_seconds(opt.server_pid);
    if (opt.scenario == Scenario::slow) {
      for (auto& c : conns) {
        if (c->role == Role::receiver && c->index == 0) c->stalled = true;
      }
    }
    if (opt.sample_rss) sample();
    timer.expires_at(Clock::time_point(std::chrono::nanoseconds(win_end)));
    timer.async_wait([this](const std::error_code& e) {
      if (!e) finish();
    });
  });
}

void Load::tick() {
  std::int64_t now = now_ns();
  if (now >= win_end || done) return;
  max_lag_ns = std::max(max_lag_ns, now - next_tick);
  double elapsed = static_cast<double>(now - t_start) * 1e-9;
  double per_sender = opt.rate / static_cast<double>(senders.size());
  for (std::size_t i = 0; i < senders.size(); ++i) {
    Conn& s = *senders[i];
    double phase = static_cast<double>(i) / static_cast<double>(senders.size());
    auto due = static_cast<std::uint64_t>(std::floor(elapsed * per_sender + phase));
    while (s.next_seq + s.held_back < due) {
      if (!send_one(s, now)) break;  // ring full
    }
    s.flush();
  }
  next_tick += 50'000;
  if (next_tick < now) next_tick = now;
  if (opt.spin) return;  // run_active's loop calls tick() when due
  pacer.expires_at(Clock::time_point(std::chrono::nanoseconds(next_tick)));
  pacer.async_wait([this](const std::error_code& ec) {
    if (!ec) tick();
  });
}

void Load::sample() {
  if (done) return;
  rss_samples.push_back(read_mem(opt.server_pid).rss_kib);
  sampler.expires_after(std::chrono::milliseconds(250));
  sampler.async_wait([this](const std::error_code& ec) {
    if (!ec) sample();
  });
}

double percentile_us(std::vector<std::uint32_t>& v, double q) {
  if (v.empty()) return -1;
  std::size_t k = std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k] / 1000.0;
}

const char* proto_name(const Options& o) {
  switch (o.proto) {
    case Proto::relay: return "relay";
    case Proto::mqtt: return o.qos ? "mqtt-qos1" : "mqtt-qos0";
    case Proto::nats: return "nats";
    case Proto::http: return "http";
  }
  return "?";
}

const char* scenario_name(Scenario s) {
  switch (s) {
    case Scenario::unicast: return "unicast";
    case Scenario::broadcast: return "broadcast";
    case Scenario::slow: return "slow";
    case Scenario::idle: return "idle";
  }
  return "?";
}

void Load::finish() {
  if (done) return;
  gen_cpu1 = bench::self_cpu_seconds();
  srv_cpu1 = bench::stat_seconds(opt.server_pid);
  if (opt.sample_rss) rss_samples.push_back(read_mem(opt.server_pid).rss_kib);
  done = true;
  double secs = opt.duration;
  auto mem = read_mem(opt.server_pid);
  std::string j = "{";
  auto add = [&j](const char* k, const std::string& v) {
    if (j.size() > 1) j += ",";
    j += "\"";
    j += k;
    j += "\":";
    j += v;
  };
  auto num = [](double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.6g", v);
    return std::string(b);
  };
  add("proto", std::string("\"") + proto_name(opt) + "\"");
  add("scenario", std::string("\"") + scenario_name(opt.scenario) + "\"");
  add("senders", num(static_cast<double>(senders.size())));
  add("inflight", num(opt.inflight));
  add("size", num(static_cast<double>(opt.size)));
  add("rate_target", num(opt.rate));
  add("win_start_ns", std::to_string(win_start));
  add("acked", num(static_cast<double>(acked)));
  add("errors", num(static_cast<double>(errors)));
  add("per_s", num(static_cast<double>(acked) / secs));
  add("deliveries_per_s", num(static_cast<double>(acked) * (opt.scenario == Scenario::broadcast ? opt.receivers : 1) / secs));
  if (opt.rate > 0 && !lat.empty()) {
    // The window in 8 slices: where in it the tail comes from (e.g. at the
    // stuck receiver's --receiver-timeout).
    constexpr int slices = 8;
    std::vector<std::vector<std::uint32_t>> by(slices);
    double slice_us = opt.duration * 1e6 / slices;
    for (std::size_t i = 0; i < lat.size(); ++i) {
      auto k = std::min(slices - 1, static_cast<int>(lat_at[i] / slice_us));
      by[static_cast<std::size_t>(k)].push_back(lat[i]);
    }
    std::string s99 = "[", smax = "[";
    for (int k = 0; k < slices; ++k) {
      auto& v = by[static_cast<std::size_t>(k)];
      s99 += (k ? "," : "") + num(percentile_us(v, 0.99));
      smax += (k ? "," : "") + num(v.empty() ? -1 : *std::max_element(v.begin(), v.end()) / 1000.0);
    }
    add("p99_us_slices", s99 + "]");
    add("max_us_slices", smax + "]");
  }
  add("p50_us", num(percentile_us(lat, 0.50)));
  add("p90_us", num(percentile_us(lat, 0.90)));
  add("p99_us", num(percentile_us(lat, 0.99)));
  add("p999_us", num(percentile_us(lat, 0.999)));
  add("max_us", num(lat.empty() ? -1 : *std::max_element(lat.begin(), lat.end()) / 1000.0));
  add("gen_cpu", num((gen_cpu1 - gen_cpu0) / secs));
  add("srv_cpu", num(opt.server_pid > 0 ? (srv_cpu1 - srv_cpu0) / secs : -1));
  add("srv_rss_kib", num(static_cast<double>(mem.rss_kib)));
  add("srv_hwm_kib", num(static_cast<double>(mem.hwm_kib)));
  add("max_lag_us", num(static_cast<double>(max_lag_ns) / 1000.0));
  add("overflow", num(static_cast<double>(overflow)));
  add("held_back", num(static_cast<double>(held_back)));
  add("conn_errors", num(static_cast<double>(conn_errors)));
  if (opt.scenario == Scenario::slow) {
    add("stalled_acked", num(static_cast<double>(acked0)));
    add("stalled_errors", num(static_cast<double>(errors0)));
  }
  if (opt.sample_rss) {
    std::string s = "[";
    for (std::size_t i = 0; i < rss_samples.size(); ++i) s += (i ? "," : "") + num(static_cast<double>(rss_samples[i]));
    add("rss_samples_kib", s + "]");
  }
  j += "}";
  std::printf("%s\n", j.c_str());
  std::fflush(stdout);
  io.stop();
}

}  // namespace

namespace {

// ------------------------------------------------------------ handshakes

std::string mqtt_connect(std::string_view client_id) {
  std::string out;
  out.push_back(0x10);
  mqtt_put_len(out, 10 + 2 + client_id.size());
  mqtt_put_str(out, "MQTT");
  out.push_back(4);     // protocol level 3.1.1
  out.push_back(0x02);  // clean session
  out.push_back(0);     // keep alive 0: none
  out.push_back(0);
  mqtt_put_str(out, client_id);
  return out;
}

std::string mqtt_subscribe(std::string_view topic, int qos) {
  std::string out;
  out.push_back(static_cast<char>(0x82));
  mqtt_put_len(out, 2 + 2 + topic.size() + 1);
  out.push_back(0);
  out.push_back(1);
  mqtt_put_str(out, topic);
  out.push_back(static_cast<char>(qos));
  return out;
}

const char nats_connect[] =
    "CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false,\"name\":\"relayload\","
    "\"lang\":\"cpp\",\"version\":\"0.1\",\"protocol\":1}\r\n";

// A client that subscribes to `topic` and is ready once the server has
// confirmed it.
void subscriber_hello(Load& load, Conn& c, const std::string& client, const std::string& topic) {
  if (load.opt.proto == Proto::mqtt) {
    c.hello = mqtt_connect(client) + mqtt_subscribe(topic, load.opt.qos);
    c.handshake_left = 2;  // CONNACK, SUBACK
  } else {
    c.hello = std::string(nats_connect) + "SUB " + topic + " 1\r\nPING\r\n";
    c.handshake_left = 1;  // PONG
  }
}

Conn& add_conn(Load& load, Role role, int index) {
  load.conns.push_back(std::make_unique<Conn>(load, load.io, role, index));
  Conn& c = *load.conns.back();
  c.rbuf.resize(load.opt.scenario == Scenario::idle ? 512 : 64 * 1024);
  if (role == Role::sender) {
    c.ring.resize(ring_size);
    load.senders.push_back(&c);
  }
  return c;
}

// The users of the unicast, slow and broadcast scenarios.
void build_active(Load& load) {
  const Options& o = load.opt;
  const std::string& t = o.tag;
  bool broadcast = o.scenario == Scenario::broadcast;
  int senders = broadcast ? 1 : o.pairs;
  int receivers = broadcast ? o.receivers : o.pairs;
  std::string size = std::to_string(o.size);
  for (int i = 0; i < senders; ++i) {
    std::string me = t + "s" + std::to_string(i);
    std::string peer = broadcast ? std::string() : t + "r" + std::to_string(i);
    if (o.proto == Proto::relay) {
      Conn& s = add_conn(load, Role::sender, i);
      s.hello = "REGISTER TOSEND " + me + "\n\n";
      s.req_head = "SEND " + (broadcast ? std::string("ALL") : peer) + "\nContent-length: " + size + "\n\n";
      add_conn(load, Role::passive, i).hello = "REGISTER TORECV " + me + "\n\n";
    } else if (o.proto == Proto::mqtt) {
      Conn& s = add_conn(load, Role::sender, i);
      subscriber_hello(load, s, me, "r/" + me);
      s.topic = broadcast ? "b/" + t : "m/" + peer;
    } else {
      Conn& s = add_conn(load, Role::sender, i);
      subscriber_hello(load, s, me, "_INBOX." + me + ".*");
      s.topic = broadcast ? "b." + t : "m." + peer;
      s.inbox = "_INBOX." + me + ".";
    }
  }
  for (int i = 0; i < receivers; ++i) {
    std::string me = t + "r" + std::to_string(i);
    std::string sender = t + "s" + std::to_string(broadcast ? 0 : i);
    if (o.proto == Proto::relay) {
      add_conn(load, Role::passive, i).hello = "REGISTER TOSEND " + me + "\n\n";
      add_conn(load, Role::receiver, i).hello = "REGISTER TORECV " + me + "\n\n";
    } else if (o.proto == Proto::mqtt) {
      Conn& r = add_conn(load, Role::receiver, i);
      subscriber_hello(load, r, me, broadcast ? "b/" + t : "m/" + me);
      r.reply_to = "r/" + sender;
    } else {
      Conn& r = add_conn(load, Role::receiver, i);
      subscriber_hello(load, r, me, broadcast ? "b." + t : "m." + me);
    }
  }
  // Relay broadcast: SENT ALL is one answer for all receivers; the others
  // count one receipt per receiver.
  load.acks_per_message = broadcast && o.proto != Proto::relay ? o.receivers : 1;
}

void build_idle(Load& load, int first, int last) {
  const Options& o = load.opt;
  for (int k = first; k < last; ++k) {
    std::string me = o.tag + "i" + std::to_string(k);
    switch (o.proto) {
      case Proto::relay:
        add_conn(load, Role::idle, k).hello = "REGISTER TOSEND " + me + "\n\n";
        add_conn(load, Role::idle, k).hello = "REGISTER TORECV " + me + "\n\n";
        break;
      case Proto::mqtt:
        subscriber_hello(load, add_conn(load, Role::idle, k), me, "m/" + me);
        break;
      case Proto::nats:
        subscriber_hello(load, add_conn(load, Role::idle, k), me, "m." + me);
        break;
      case Proto::http:
        add_conn(load, Role::idle, k).hello = "GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: relayload\r\n\r\n";
        break;
    }
  }
}

void arm_setup_timeout(Load& load) {
  load.sampler.expires_after(std::chrono::milliseconds(static_cast<long>(load.opt.setup_timeout * 1000)));
  load.sampler.async_wait([&load](const std::error_code& ec) {
    if (ec || load.running) return;
    die("setup timed out: " + std::to_string(load.ready_count) + " of " +
        std::to_string(load.conns.size()) + " connections ready");
  });
}

int run_active(const Options& o) {
  Load load(o);
  build_active(load);
  load.body.assign(o.size, 'x');
  load.on_ready = [&load] {
    load.sampler.cancel();
    load.start_run();
  };
  arm_setup_timeout(load);
  load.connect_more();
  if (o.spin && o.rate > 0) {
    // poll() returns at once; stopped() once finish() stopped the context
    // or no work is left.
    while (!load.io.stopped()) {
      load.io.poll();
      if (load.running && !load.done && now_ns() >= load.next_tick) load.tick();
    }
  } else {
    load.io.run();
  }
  // Close every socket before the io_context goes (pending handlers are
  // destroyed, never run).
  for (auto& c : load.conns) {
    std::error_code ignored;
    c->sock.close(ignored);
  }
  load.conns.clear();
  return 0;
}

void raise_nofile() {
  rlimit r{};
  getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  setrlimit(RLIMIT_NOFILE, &r);
}

int run_idle(const Options& o) {
  ProcMem before = read_mem(o.server_pid);
  std::int64_t t0 = now_ns();
  struct Kid {
    pid_t pid;
    int ready, hold;
  };
  std::vector<Kid> kids;
  for (int k = 0; k < o.procs; ++k) {
    int ready[2], hold[2];
    if (pipe(ready) || pipe(hold)) die("pipe failed");
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid < 0) die("fork failed");
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      close(ready[0]);
      close(hold[1]);
      for (auto& kid : kids) {
        close(kid.ready);
        close(kid.hold);
      }
      raise_nofile();
      Load load(o);
      build_idle(load, o.clients * k / o.procs, o.clients * (k + 1) / o.procs);
      load.on_ready = [&] {
        load.running = true;
        char one = '1';
        if (write(ready[1], &one, 1) != 1) std::_Exit(1);
        // Hold every connection, silent, until the parent closes the pipe.
        char c;
        while (read(hold[0], &c, 1) > 0) {
        }
        std::_Exit(0);
      };
      arm_setup_timeout(load);
      load.connect_more();
      load.io.run();
      std::_Exit(1);
    }
    close(ready[1]);
    close(hold[0]);
    kids.push_back({pid, ready[0], hold[1]});
  }
  bool ok = true;
  for (auto& kid : kids) {
    char c;
    if (read(kid.ready, &c, 1) != 1) ok = false;  // the child died (it said why)
  }
  double setup_s = static_cast<double>(now_ns() - t0) * 1e-9;
  if (ok) {
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(o.settle * 1000)));
    ProcMem after = read_mem(o.server_pid);
    // What the server holds: its descriptors (sockets, listener, epoll...).
    long fds = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(o.server_pid) + "/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++fds;
    }
    int per_client = o.proto == Proto::relay ? 2 : 1;
    double conns = static_cast<double>(o.clients) * per_client;
    double delta = static_cast<double>(after.rss_kib - before.rss_kib) * 1024.0;
    std::printf(
        "{\"proto\":\"%s\",\"scenario\":\"idle\",\"clients\":%d,\"connections\":%.0f,"
        "\"rss_start_kib\":%ld,\"rss_idle_kib\":%ld,\"hwm_kib\":%ld,\"per_conn_bytes\":%.1f,"
        "\"per_client_bytes\":%.1f,\"server_fds\":%ld,\"setup_s\":%.3f}\n",
        proto_name(o), o.clients, conns, before.rss_kib, after.rss_kib, after.hwm_kib,
        delta / conns, delta / o.clients, fds, setup_s);
    std::fflush(stdout);
  }
  for (auto& kid : kids) close(kid.hold);
  for (auto& kid : kids) {
    int status;
    waitpid(kid.pid, &status, 0);
    close(kid.ready);
  }
  return ok ? 0 : 1;
}

void usage() {
  std::fprintf(stderr,
               "usage: relayload --proto relay|mqtt|nats|http --port P [--host H] [--qos 0|1]\n"
               "  [--scenario unicast|broadcast|slow|idle] [--pairs N] [--inflight K] [--size B]\n"
               "  [--rate MSGS_PER_S] [--pace timer|spin] [--sample-rss 0|1] [--warmup S] [--duration S] [--receivers R]\n"
               "  [--clients C] [--procs P] [--src-addrs A] [--settle S] [--setup-timeout S]\n"
               "  [--server-pid PID] [--tag NAME]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "-h" || k == "--help") usage();
    if (i + 1 >= argc) usage();
    std::string v = argv[++i];
    if (k == "--proto") {
      if (v == "relay") o.proto = Proto::relay;
      else if (v == "mqtt") o.proto = Proto::mqtt;
      else if (v == "nats") o.proto = Proto::nats;
      else if (v == "http") o.proto = Proto::http;
      else usage();
    } else if (k == "--scenario") {
      if (v == "unicast") o.scenario = Scenario::unicast;
      else if (v == "broadcast") o.scenario = Scenario::broadcast;
      else if (v == "slow") o.scenario = Scenario::slow;
      else if (v == "idle") o.scenario = Scenario::idle;
      else usage();
    } else if (k == "--host") o.host = v;
    else if (k == "--port") o.port = static_cast<std::uint16_t>(std::atoi(v.c_str()));
    else if (k == "--qos") o.qos = std::atoi(v.c_str());
    else if (k == "--pairs") o.pairs = std::atoi(v.c_str());
    else if (k == "--inflight") o.inflight = std::atoi(v.c_str());
    else if (k == "--size") o.size = static_cast<std::size_t>(std::atol(v.c_str()));
    else if (k == "--rate") o.rate = std::atof(v.c_str());
    else if (k == "--warmup") o.warmup = std::atof(v.c_str());
    else if (k == "--duration") o.duration = std::atof(v.c_str());
    else if (k == "--pace") {
      if (v == "spin") o.spin = true;
      else if (v == "timer") o.spin = false;
      else usage();
    }
    else if (k == "--sample-rss") o.sample_rss = v == "1";
    else if (k == "--receivers") o.receivers = std::atoi(v.c_str());
    else if (k == "--clients") o.clients = std::atoi(v.c_str());
    else if (k == "--procs") o.procs = std::max(1, std::atoi(v.c_str()));
    else if (k == "--src-addrs") o.src_addrs = std::max(1, std::atoi(v.c_str()));
    else if (k == "--settle") o.settle = std::atof(v.c_str());
    else if (k == "--setup-timeout") o.setup_timeout = std::atof(v.c_str());
    else if (k == "--server-pid") o.server_pid = std::atoi(v.c_str());
    else if (k == "--tag") o.tag = v;
    else usage();
  }
  if (!o.port) usage();
  if (o.size < 16) die("--size must be at least 16 (the body carries a sequence number)");
  if (o.proto == Proto::http && o.scenario != Scenario::idle) die("http is for the idle scenario only");
  if (o.qos < 0 || o.qos > 1) die("--qos must be 0 or 1");
  if (o.scenario == Scenario::slow) o.sample_rss = true;
  if (o.scenario == Scenario::idle) return run_idle(o);
  return run_active(o);
}

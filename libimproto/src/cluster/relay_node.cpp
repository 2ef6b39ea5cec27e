#include "improto/cluster/relay_node.hpp"

#include <algorithm>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <map>
#include <random>
#include <set>

#include "improto/wire/text.hpp"

namespace improto::cluster {
namespace {

using server::relay_cluster;
using server::relay_local;
using std::chrono::milliseconds;

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

std::string new_incarnation() {
  std::random_device rd;
  std::uint64_t v = (std::uint64_t{rd()} << 32) ^ rd();
  static const char* hex = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[static_cast<std::size_t>(i)] = hex[v & 15];
  return out;
}

// Splits the first line ("a b c") of a payload from its body.
struct head_and_body {
  std::vector<std::string_view> words;
  std::string_view body;
};

head_and_body split_payload(std::string_view data) {
  head_and_body out;
  auto nl = data.find('\n');
  std::string_view head = data.substr(0, nl);
  out.body = nl == std::string_view::npos ? std::string_view{} : data.substr(nl + 1);
  while (!head.empty()) {
    auto sp = head.find(' ');
    out.words.push_back(head.substr(0, sp));
    if (sp == std::string_view::npos) break;
    head.remove_prefix(sp + 1);
  }
  return out;
}

std::optional<std::int64_t> number(std::string_view s) {
  auto v = wire::parse_decimal(s, std::uint64_t{1} << 62);
  if (!v) return std::nullopt;
  return static_cast<std::int64_t>(*v);
}

bool valid_node_name(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
  });
}

std::string seconds_text(milliseconds d) {
  return std::to_string(d.count() / 1000) + "." + std::to_string(d.count() % 1000 / 100);
}

// A name this node holds in the KV bucket, or is claiming.
struct name_claim {
  std::uint64_t revision = 0;  // written and read on the KV worker only
  result<std::uint64_t> outcome = 0;
  bool confirmed = false;      // io thread: the name is ours
  std::uint64_t subscription = 0;
};

class relay_node final : public relay_cluster {
 public:
  relay_node(asio::io_context& io, relay_node_options o, std::unique_ptr<nats_connection> c,
             std::shared_ptr<kv_bucket> kv)
      : io_(io), opt_(std::move(o)), conn_(std::move(c)), kv_(std::move(kv)), tick_(io) {}

  ~relay_node() override {
    tick_.cancel();
    kv_.reset();
    conn_.reset();  // drains the KV work first: names given back on the way out
  }

  void start(relay_local& local) override {
    local_ = &local;
    incarnation_ = new_incarnation();
    own_echo_ = net::clock::now();  // just connected
    const std::string& p = opt_.prefix;
    subscribe(p + ".hb", [this](nats_message&& m) { on_heartbeat(m, false); });
    subscribe(p + ".bye", [this](nats_message&& m) { on_heartbeat(m, true); });
    subscribe(p + ".presence", [this](nats_message&& m) { on_presence(m); });
    subscribe(p + ".all", [this](nats_message&& m) { on_all(m); });
    subscribe(p + ".list", [this](nats_message&& m) { on_list(m); });
    log("cluster node " + opt_.node + " (" + incarnation_ + "), heartbeat " +
        seconds_text(opt_.heartbeat) + " s, dead after " + seconds_text(opt_.node_timeout) + " s");
    publish_heartbeat();
    arm_tick();
  }

  void stop() override {
    if (stopped_) return;
    stopped_ = true;
    tick_.cancel();
    // Peers stop waiting for us at once; names still held are given back as
    // their sessions close (and swept if that fails).
    (void)conn_->publish(opt_.prefix + ".bye", opt_.node + " " + incarnation_);
  }

  // ------------------------------------------------------------------ names

  void claim(const std::string& user, std::function<void(claim_result)> done) override {
    if (!serving()) {
      asio::post(io_, [done = std::move(done)] { done(claim_result::unavailable); });
      return;
    }
    auto c = std::make_shared<name_claim>();
    claims_[user] = c;
    // Subscribed before the claim and flushed after it: once REGISTERED is
    // answered, a SEND from any node reaches us (until then we stay silent).
    if (auto id = conn_->subscribe(opt_.prefix + ".user." + user,
                                   [this, user](nats_message&& m) { on_forward(user, m); })) {
      c->subscription = *id;
    }
    std::string value = opt_.node + " " + incarnation_;
    conn_->run_blocking(
        [kv = kv_, conn = conn_.get(), c, user, value] {
          c->outcome = kv->create(user, value);
          if (!c->outcome && c->outcome.error().code() == errc::name_taken) {
            // Ours already: a create that succeeded but whose answer was lost.
            if (auto e = kv->get(user); e && e->value == value) c->outcome = e->revision;
          }
          if (c->outcome) {
            c->revision = *c->outcome;
            (void)conn->flush();
          }
        },
        [this, c, user, done = std::move(done)] {
          auto it = claims_.find(user);
          if (it == claims_.end() || it->second != c) return done(claim_result::released);
          if (c->outcome) {
            c->confirmed = true;
            return done(claim_result::claimed);
          }
          if (c->subscription != 0) conn_->unsubscribe(c->subscription);
          claims_.erase(it);
          if (c->outcome.error().code() == errc::name_taken) return done(claim_result::taken);
          log(user + ": " + c->outcome.error().message());
          done(claim_result::unavailable);
        });
  }

  void joined(const std::string& user) override {
    if (claims_.find(user) == claims_.end()) return;
    (void)conn_->publish(opt_.prefix + ".presence", incarnation_ + " JOINED " + user);
  }

  void release(const std::string& user, bool was_joined) override {
    auto it = claims_.find(user);
    if (it == claims_.end()) return;
    auto c = std::move(it->second);
    claims_.erase(it);
    if (c->subscription != 0) conn_->unsubscribe(c->subscription);
    // After the create in the worker's order, so a claim still in flight is
    // given back too. LEFT only when this delete freed the name: a sweeper
    // that freed it first has announced it.
    auto* conn = conn_.get();
    std::string subject = opt_.prefix + ".presence", origin = incarnation_;
    conn_->run_blocking([kv = kv_, c, user, was_joined, conn, subject, origin] {
      if (c->revision == 0) return;
      // A KV timeout is retried (rejected means someone else freed it).
      auto r = kv->erase(user, c->revision);
      for (int i = 0; i < 2 && !r && r.error().code() == errc::storage_error; ++i) {
        r = kv->erase(user, c->revision);
      }
      if (r && was_joined) (void)conn->publish(subject, origin + " LEFT " + user);
    });
  }

  // --------------------------------------------------------------- delivery

  void send(const std::string& from, const std::string& to, std::string body,
            std::function<void(bool)> done) override {
    if (!serving()) {
      asio::post(io_, [done = std::move(done)] { done(false); });
      return;
    }
    std::string payload = from + " " + std::to_string(deadline_ms()) + "\n";
    payload += body;
    conn_->request(opt_.prefix + ".user." + to, payload, opt_.forward_timeout + opt_.reply_grace,
                   [done = std::move(done)](result<nats_message> r) {
                     done(r && r->data == "OK");
                   });
  }

  void send_all(const std::string& from, std::string body,
                std::function<void(bool)> done) override {
    struct gathering {
      std::set<std::string> waiting;  // live nodes that have not answered
      bool failed = false;
      std::function<void(bool)> done;
    };
    auto g = std::make_shared<gathering>();
    for (auto& entry : peers_) g->waiting.insert(entry.first);
    g->done = std::move(done);
    if (!serving() || g->waiting.empty()) {
      bool ok = serving();
      asio::post(io_, [g, ok] { g->done(ok); });
      return;
    }
    std::string payload =
        opt_.node + " " + from + " " + std::to_string(deadline_ms()) + "\n";
    payload += body;
    conn_->gather(
        opt_.prefix + ".all", payload, opt_.forward_timeout + opt_.reply_grace,
        [g](nats_message&& m) {
          auto p = split_payload(m.data);  // "<node> <count> <failures>"
          if (p.words.size() != 3) return true;
          auto node = g->waiting.find(std::string(p.words[0]));
          if (node == g->waiting.end()) return true;  // not live when we sent, or twice
          g->waiting.erase(node);
          if (p.words[2] != "0") g->failed = true;
          return !g->waiting.empty();
        },
        [g] { g->done(!g->failed && g->waiting.empty()); });
  }

  void list_users(const std::string& after, std::size_t max_bytes, user_page local,
                  std::function<void(user_page)> done) override {
    struct gathering {
      std::set<std::string> waiting;
      std::vector<user_page> pages;
      std::function<void(user_page)> done;
    };
    auto g = std::make_shared<gathering>();
    for (auto& entry : peers_) g->waiting.insert(entry.first);
    g->pages.push_back(std::move(local));
    g->done = std::move(done);
    if (!serving() || g->waiting.empty()) {
      asio::post(io_, [g, after, max_bytes] { g->done(merge(g->pages, max_bytes)); });
      return;
    }
    conn_->gather(
        opt_.prefix + ".list", opt_.node + " " + std::to_string(max_bytes) + "\n" + after,
        opt_.list_timeout,
        [g](nats_message&& m) {
          auto p = split_payload(m.data);  // "<node> <more>\n<name>\n<name>..."
          if (p.words.size() != 2) return true;
          auto node = g->waiting.find(std::string(p.words[0]));
          if (node == g->waiting.end()) return true;
          g->waiting.erase(node);
          user_page page;
          page.more = p.words[1] == "1";
          std::string_view rest = p.body;
          while (!rest.empty()) {
            auto nl = rest.find('\n');
            page.users.emplace_back(rest.substr(0, nl));
            rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
          }
          g->pages.push_back(std::move(page));
          return !g->waiting.empty();
        },
        [g, max_bytes] { g->done(merge(g->pages, max_bytes)); });
  }

  // Pages of names in order, each possibly cut short: the union is exact up
  // to the first name where some page was cut.
  static user_page merge(std::vector<user_page>& pages, std::size_t max_bytes) {
    std::optional<std::string> cut;
    for (auto& p : pages) {
      if (p.more && !p.users.empty() && (!cut || p.users.back() < *cut)) cut = p.users.back();
    }
    std::vector<std::string> all;
    for (auto& p : pages) {
      for (auto& u : p.users) {
        if (!cut || u <= *cut) all.push_back(std::move(u));
      }
    }
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    user_page out;
    out.more = cut.has_value();
    std::size_t body = 0;
    for (auto& u : all) {
      if (body + u.size() + 1 > max_bytes) {
        out.more = true;
        break;
      }
      body += u.size() + 1;
      out.users.push_back(std::move(u));
    }
    return out;
  }

 private:
  void log(const std::string& line) const {
    if (opt_.log) opt_.log(line);
  }

  void subscribe(const std::string& subject, nats_connection::handler h) {
    if (auto r = conn_->subscribe(subject, std::move(h)); !r) log(r.error().message());
  }

  std::int64_t deadline_ms() const {
    return unix_ms(std::chrono::system_clock::now() + opt_.forward_timeout);
  }

  // The FORWARD's deadline on our clock, or nullopt when it has passed.
  std::optional<net::clock::time_point> local_deadline(std::string_view ms) const {
    auto d = number(ms);
    if (!d) return std::nullopt;
    auto left = milliseconds(*d - unix_ms(std::chrono::system_clock::now()));
    if (left.count() <= 0) return std::nullopt;
    return net::clock::now() + std::min(left, opt_.forward_timeout);
  }

  void reply(const std::string& to, const std::string& data) {
    if (to.empty()) return;
    (void)conn_->publish(to, data);
  }

  // A SEND from another node for our user (subject <prefix>.user.<user>).
  void on_forward(const std::string& user, nats_message& m) {
    if (!check_serving()) return;  // fenced: the node now holding it answers
    auto c = claims_.find(user);
    if (c == claims_.end() || !c->second->confirmed) return;  // not (yet) ours
    auto p = split_payload(m.data);  // "<from> <deadline-unix-ms>\n<body>"
    if (p.words.size() != 2) return;
    auto deadline = local_deadline(p.words[1]);
    if (!deadline) {
      ++expired_;
      return;  // at most once: an expired FORWARD is dropped, its sender has ERROR 102
    }
    local_->deliver(std::string(p.words[0]), user, std::string(p.body), *deadline,
                    [this, to = m.reply](bool ok) { reply(to, ok ? "OK" : "FAIL"); });
  }

  void on_all(nats_message& m) {
    if (!check_serving()) return;
    auto p = split_payload(m.data);  // "<origin> <from> <deadline-unix-ms>\n<body>"
    if (p.words.size() != 3 || p.words[0] == opt_.node) return;
    auto deadline = local_deadline(p.words[2]);
    if (!deadline) return;
    local_->deliver_all(std::string(p.words[1]), std::string(p.body), *deadline,
                        [this, to = m.reply](std::size_t count, std::size_t failures) {
                          reply(to, opt_.node + " " + std::to_string(count) + " " +
                                        std::to_string(failures));
                        });
  }

  void on_list(nats_message& m) {
    if (!check_serving()) return;
    auto p = split_payload(m.data);  // "<origin> <max-bytes>\n<after>"
    if (p.words.size() != 2 || p.words[0] == opt_.node) return;
    auto max = number(p.words[1]);
    if (!max) return;
    bool more = false;
    auto users = local_->local_users(std::string(p.body), static_cast<std::size_t>(*max), more);
    std::string out = opt_.node + (more ? " 1\n" : " 0\n");
    for (std::size_t i = 0; i < users.size(); ++i) {
      if (i > 0) out += '\n';
      out += users[i];
    }
    reply(m.reply, out);
  }

  void on_presence(nats_message& m) {
    auto p = split_payload(m.data);  // "<origin-incarnation> JOINED|LEFT <user>"
    if (p.words.size() != 3 || p.words[0] == incarnation_ || !serving()) return;
    local_->presence(std::string(p.words[2]), p.words[1] == "JOINED");
  }

  void on_heartbeat(nats_message& m, bool bye) {
    auto p = split_payload(m.data);  // "<node> <incarnation>"
    if (p.words.size() != 2 || stopped_) return;
    std::string node(p.words[0]), inc(p.words[1]);
    if (node == opt_.node) {
      if (inc == incarnation_) {
        check_serving();  // an echo late from before a stop must not hide it
        if (inc != incarnation_) return;
        own_echo_ = net::clock::now();
        if (fenced_ && !bye) {
          fenced_ = false;
          log("cluster: serving again as " + incarnation_);
        }
      } else if (!bye && own_past_.count(inc) == 0) {
        log("cluster: another node is named " + node + " (" + inc + "): node names must be unique");
      }
      return;
    }
    if (bye) {
      if (auto it = peers_.find(node); it != peers_.end() && it->second.incarnation == inc) {
        peers_.erase(it);
        log("node " + node + " left the cluster");
      }
      return;
    }
    if (dead_.count(inc) != 0) return;  // swept: it fences itself and comes back renamed
    auto [it, fresh] = peers_.try_emplace(node);
    if (!fresh && it->second.incarnation != inc) {
      log("node " + node + " restarted (" + it->second.incarnation + " -> " + inc + ")");
      dead_.insert(it->second.incarnation);
      sweep_due_ = true;  // the old incarnation's names
    } else if (fresh) {
      log("node " + node + " joined the cluster");
    }
    it->second.incarnation = inc;
    it->second.last = net::clock::now();
  }

  // --------------------------------------------------------------- liveness

  bool serving() const { return !fenced_ && !stopped_; }

  // Fences when our own heartbeats have not come back in time (cut off, or
  // this process was stopped): peers may have freed our names by now.
  bool check_serving() {
    if (fenced_ || stopped_) return false;
    auto silent = net::clock::now() - own_echo_;
    if (silent > opt_.node_timeout - opt_.heartbeat) {
      fence("no heartbeat of its own back from NATS for " +
            seconds_text(std::chrono::duration_cast<milliseconds>(silent)) + " s");
      return false;
    }
    return true;
  }

  void fence(const std::string& why) {
    fenced_ = true;
    log("cluster: fenced, " + why + ": dropping every session");
    // A new incarnation: peers' sweeps may take what the old one held, and
    // our own heartbeats under it are what lets us serve again.
    own_past_.insert(incarnation_);
    incarnation_ = new_incarnation();
    peers_.clear();
    local_->fence(why);
  }

  void publish_heartbeat() {
    (void)conn_->publish(opt_.prefix + ".hb", opt_.node + " " + incarnation_);
  }

  void arm_tick() {
    tick_.expires_after(opt_.heartbeat);
    tick_.async_wait([this](std::error_code ec) {
      if (ec || stopped_) return;
      on_tick();
      arm_tick();
    });
  }

  void on_tick() {
    check_serving();
    publish_heartbeat();
    auto now = net::clock::now();
    for (auto it = peers_.begin(); it != peers_.end();) {
      if (now - it->second.last > opt_.node_timeout) {
        log("node " + it->first + " is dead: no heartbeat for " +
            seconds_text(std::chrono::duration_cast<milliseconds>(now - it->second.last)) + " s");
        dead_.insert(it->second.incarnation);
        it = peers_.erase(it);
        sweep_due_ = true;
      } else {
        ++it;
      }
    }
    // Once at start (a previous run's names), then now and then.
    ++ticks_;
    auto per_sweep = std::max<long>(1, static_cast<long>(std::chrono::seconds(30) / opt_.heartbeat));
    auto first = opt_.node_timeout / opt_.heartbeat + 1;
    if (ticks_ == first || ticks_ % per_sweep == 0) sweep_due_ = true;
    if (sweep_due_ && serving() && lowest_live() && !sweeping_) {
      sweep_due_ = false;
      sweep();
    }
  }

  bool lowest_live() const { return peers_.empty() || opt_.node < peers_.begin()->first; }

  // Frees the names whose owner (node and incarnation) is known dead, or not
  // live and older than node_timeout (a name younger than that of an owner
  // never heard may be a newcomer's).
  void sweep() {
    sweeping_ = true;
    auto found = std::make_shared<std::vector<kv_entry>>();
    auto failure = std::make_shared<std::string>();
    conn_->run_blocking(
        [kv = kv_, found, failure] {
          auto keys = kv->keys();
          if (!keys) {
            *failure = keys.error().message();
            return;
          }
          for (auto& k : *keys) {
            if (auto e = kv->get(k)) found->push_back(std::move(*e));
          }
        },
        [this, found, failure] {
          sweeping_ = false;
          if (!failure->empty()) {
            log("cluster sweep: " + *failure);
            sweep_due_ = true;
            return;
          }
          auto young = std::chrono::system_clock::now() - opt_.node_timeout;
          for (auto& e : *found) {
            auto p = split_payload(e.value);  // "<node> <incarnation>"
            if (p.words.size() != 2) continue;
            std::string node(p.words[0]), inc(p.words[1]);
            if (node == opt_.node && inc == incarnation_) continue;
            auto peer = peers_.find(node);
            if (peer != peers_.end() && peer->second.incarnation == inc) continue;
            // A name of an owner never seen may be a newcomer's not yet heard.
            if (dead_.count(inc) == 0 && e.created > young) continue;
            free_orphan(e, node, inc);
          }
        });
  }

  void free_orphan(const kv_entry& e, const std::string& node, const std::string& inc) {
    auto* conn = conn_.get();
    std::string subject = opt_.prefix + ".presence";
    auto logger = opt_.log;
    conn_->run_blocking([kv = kv_, e, conn, subject, inc, node, logger, io = &io_] {
      if (!kv->erase(e.key, e.revision)) return;
      // The dead incarnation's LEFT: every live node tells its subscribers.
      (void)conn->publish(subject, inc + " LEFT " + e.key);
      if (logger) {
        asio::post(*io, [logger, line = e.key + " freed (its node " + node + " is gone)"] {
          logger(line);
        });
      }
    });
  }

  struct peer_state {
    std::string incarnation;
    net::clock::time_point last;
  };

  asio::io_context& io_;
  relay_node_options opt_;
  std::unique_ptr<nats_connection> conn_;
  std::shared_ptr<kv_bucket> kv_;
  relay_local* local_ = nullptr;
  std::string incarnation_;
  std::map<std::string, std::shared_ptr<name_claim>> claims_;
  std::map<std::string, peer_state> peers_;  // ordered: the first is the lowest
  std::set<std::string> dead_, own_past_;               // incarnations seen, then seen dying
  net::clock::time_point own_echo_;
  asio::steady_timer tick_;
  long ticks_ = 0;
  std::size_t expired_ = 0;
  bool fenced_ = false, stopped_ = false, sweep_due_ = false, sweeping_ = false;
};

}  // namespace

result<std::unique_ptr<server::relay_cluster>> open_relay_node(asio::io_context& io,
                                                               relay_node_options options) {
  auto bad = [](std::string why) -> result<std::unique_ptr<server::relay_cluster>> {
    return tl::unexpected(error(errc::invalid_config, std::move(why)));
  };
  if (!valid_node_name(options.node)) {
    return bad("node name: expected 1 to 64 of A-Z a-z 0-9 _ -, got '" + options.node + "'");
  }
  if (options.heartbeat.count() <= 0 || options.node_timeout < 3 * options.heartbeat) {
    return bad("the node timeout must be at least 3 heartbeats");
  }
  if (options.replicas < 1 || options.replicas > 5) return bad("KV replicas: expected 1 to 5");
  options.nats.name = "imrelayd " + options.node;
  if (!options.nats.log) options.nats.log = options.log;
  auto conn = nats_connection::connect(io, options.nats);
  if (!conn) return tl::unexpected(conn.error());
  auto kv = (*conn)->key_value(options.bucket, options.replicas);
  if (!kv) return tl::unexpected(kv.error());
  return std::unique_ptr<server::relay_cluster>(
      new relay_node(io, std::move(options), std::move(*conn), std::move(*kv)));
}

}  // namespace improto::cluster

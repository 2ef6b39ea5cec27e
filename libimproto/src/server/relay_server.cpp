#include "improto/server/relay_server.hpp"

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <deque>
#include <map>
#include <optional>
#include <variant>

#include "improto/net/ordered_replies.hpp"
#include "improto/net/tcp_server.hpp"

#include "improto/relay/codes.hpp"
#include "improto/relay/decoder.hpp"
#include "improto/relay/messages.hpp"

namespace improto::server {
namespace {

struct session;

// 300ms -> "0.3", 30s -> "30": as the operator wrote it on the command line.
std::string seconds_text(std::chrono::milliseconds d) {
  auto ms = d.count();
  std::string out = std::to_string(ms / 1000);
  if (auto frac = ms % 1000; frac != 0) {
    std::string digits = std::to_string(1000 + frac).substr(1);
    while (digits.back() == '0') digits.pop_back();
    out += "." + digits;
  }
  return out;
}

// One SEND waiting for its receivers' answers: a local sender's (its reply
// slot), or another node's (`done`).
struct delivery {
  std::weak_ptr<session> sender;
  net::ordered_replies::slot slot = 0;  // the sender's reply slot
  std::string to;          // as the sender wrote it, for `SENT <to>`
  std::size_t remaining = 0;
  std::size_t failures = 0;
  std::function<void(std::size_t failures)> done;
};

// A FORWARD its receiver has not answered yet.
struct unanswered {
  std::shared_ptr<delivery> pending;
  std::string from;
  net::clock::time_point deadline;
};

// A REGISTER answered once the cluster has said whether the name is ours.
struct waiting_registration {
  std::weak_ptr<session> s;
  net::ordered_replies::slot slot = 0;
  relay::role role = relay::role::to_send;
};

struct user_entry {
  std::shared_ptr<session> sender, receiver;
  bool subscribed = false;
  bool claiming = false;  // cluster: the name's claim is in flight
  // Cluster only, while the claim is in flight (an idle user holds none).
  std::unique_ptr<std::vector<waiting_registration>> waiting;
  bool complete() const noexcept { return sender && receiver && !claiming; }
};

// A timer made when first armed and freed by cancel() (which ends a wait
// like asio's cancel: operation_aborted): most sessions never arm theirs,
// and an idle one holds none, not even its io_context's address.
class lazy_timer {
 public:
  void expires_after(asio::io_context& io, std::chrono::milliseconds d) {
    get(io).expires_after(d);
  }
  void expires_at(asio::io_context& io, net::clock::time_point t) { get(io).expires_at(t); }
  // After expires_after() or expires_at().
  template <class Handler>
  void async_wait(Handler&& h) {
    timer_->async_wait(std::forward<Handler>(h));
  }
  void cancel() { timer_.reset(); }

 private:
  asio::steady_timer& get(asio::io_context& io) {
    if (!timer_) timer_ = std::make_unique<asio::steady_timer>(io);
    return *timer_;
  }
  std::unique_ptr<asio::steady_timer> timer_;
};

// A deque made on first use: libstdc++ allocates half a kilobyte for an
// empty one. release() frees an empty one (an idle session holds none).
template <class T>
class lazy_deque {
 public:
  bool empty() const noexcept { return !items_ || items_->empty(); }
  std::size_t size() const noexcept { return items_ ? items_->size() : 0; }
  T& front() { return items_->front(); }
  T& back() { return items_->back(); }
  T& operator[](std::size_t i) { return (*items_)[i]; }
  void push_back(T&& item) {
    if (!items_) items_ = std::make_unique<std::deque<T>>();
    items_->push_back(std::move(item));
  }
  void pop_front() { items_->pop_front(); }
  void clear() noexcept {
    if (items_) items_->clear();
  }
  void release() noexcept {
    if (empty()) items_.reset();
  }

 private:
  std::unique_ptr<std::deque<T>> items_;
};

struct session : net::tcp_session {
  session(std::shared_ptr<net::tcp_connection> c,
          std::shared_ptr<const net::ordered_replies::settings> reply_settings)
      : tcp_session(std::move(c)), replies(std::move(reply_settings), conn) {}

  // Stopping: the writer flushes and closes; one finishing its replies stops waiting.
  void on_stop() override {
    conn->close_after_flush();
    replies.wake();
  }

  // Ordered by size, the small fields last: one per idle connection, it is
  // most of the memory an idle client costs (with its connection).

  // Made when bytes arrive; dropped while parked between messages.
  std::unique_ptr<relay::decoder> decoder;
  std::string user;

  // Replies leave in request order. A reader over max_in_flight waits for them.
  net::ordered_replies replies;

  // Receiver side. Expired entries (their senders already got ERROR 102)
  // stay at the front until the receiver's late answers arrive, so answers
  // keep matching FORWARDs in order; they always form a prefix.
  lazy_deque<unanswered> awaiting;
  lazy_timer answer_timer;
  // Runs while this socket holds a name whose other socket has not come.
  lazy_timer pairing_timer;
  std::uint32_t expired = 0;  // of `awaiting`, bounded by the queue's bytes

  std::optional<relay::role> role;  // set once REGISTER succeeded on this socket
  // Reading waits while this socket's REGISTER waits for the cluster, so
  // later requests see the outcome as they would on one server.
  bool claim_wait = false;
  bool timer_armed = false;
};

}  // namespace

struct relay_server::impl final : relay_local, std::enable_shared_from_this<relay_server::impl> {
  impl(asio::io_context& io_context, relay_config cfg, net::tcp_server server,
       std::unique_ptr<file_service> f, std::unique_ptr<relay_cluster> c)
      : io(io_context), config(std::move(cfg)), tcp(std::move(server)), files(std::move(f)),
        cluster(std::move(c)) {}

  asio::io_context& io;
  relay_config config;
  net::tcp_server tcp;
  std::unique_ptr<file_service> files;
  std::map<std::string, user_entry, std::less<>> users;  // ordered: LIST USERS pages by name
  std::size_t complete_users = 0;
  std::size_t subscribers = 0;  // notices skip the user walk while nobody listens
  std::string scratch, reply_scratch;
  // A sender that does not read its replies fills its queue; nothing else
  // bounds what we would hold for it, so it is closed.
  std::shared_ptr<const net::ordered_replies::settings> reply_settings =
      std::make_shared<net::ordered_replies::settings>(net::ordered_replies::settings{
          io.get_executor(), config.stream.max_queued_bytes, net::ordered_replies::overflow::close,
          config.log});
  // Last: it may call back into the members above until it is gone.
  std::unique_ptr<relay_cluster> cluster;

  using user_map = std::map<std::string, user_entry, std::less<>>;

  void log(std::string_view line) const { tcp.log(line); }

  asio::awaitable<void> run_session(std::shared_ptr<session> s);
  asio::awaitable<void> finish_replies(session& s);
  void handle(const std::shared_ptr<session>& s, const relay::message_view& v);
  void cleanup(const std::shared_ptr<session>& s, std::string_view reason);

  void reply(session& s, const relay::message& m);
  void reply_error(session& s, int code);

  void on_register(const std::shared_ptr<session>& s, const relay::register_request& m);
  void arm_pairing_timer(const std::shared_ptr<session>& s);
  void expire_half_registration(const std::shared_ptr<session>& s);
  void on_send(const std::shared_ptr<session>& s, std::string_view to, std::string_view body);
  void on_answer(const std::shared_ptr<session>& s, bool ok, std::string_view from);
  bool forward_to(const std::shared_ptr<session>& receiver, const std::shared_ptr<delivery>& d,
                  std::string_view from, std::string_view bytes,
                  net::clock::time_point deadline);
  void settle(delivery& d, bool ok);
  void arm_answer_timer(const std::shared_ptr<session>& s);
  void expire_answers(session& s);
  void fail_awaiting(session& s);

  void on_list_users(const std::shared_ptr<session>& s, const relay::list_users& m);
  void on_claimed(const std::string& user, relay_cluster::claim_result r);
  void became_complete(user_map::iterator it);
  void drop_user(user_map::iterator it);

  // relay_local: what the other nodes ask of this one.
  void deliver(const std::string& from, const std::string& to, std::string body,
               net::clock::time_point deadline, std::function<void(bool)> done) override;
  void deliver_all(const std::string& from, std::string body, net::clock::time_point deadline,
                   std::function<void(std::size_t, std::size_t)> done) override;
  std::vector<std::string> local_users(const std::string& after, std::size_t max_bytes,
                                       bool& more) const override;
  void presence(const std::string& user, bool joined) override;
  void fence(const std::string& reason) override;
  void set_subscribed(session& s, bool on);
  void notify_presence(const relay::message& notice, std::string_view about);
  // Registered on both sockets and this is the sending one; answers the
  // error itself when not.
  bool check_sender(session& s);
  void on_download(const std::shared_ptr<session>& s, const relay::download& m);
};

// ------------------------------------------------------------------ sessions

asio::awaitable<void> relay_server::impl::run_session(std::shared_ptr<session> s) {
  auto& conn = *s->conn;
  std::string reason = "closed";
  while (conn.is_open()) {
    if (s->replies.owed() >= config.max_in_flight) {
      // Backpressure: a sender must read its replies before sending more.
      co_await s->replies.wait();
      continue;
    }
    // Waiting for bytes: parked, with no coroutine meanwhile (replies owed
    // are sent as their answers come); the state lives in the session.
    auto data = co_await conn.read(true);
    if (data && data->empty()) {
      if (!conn.mid_message()) s->decoder.reset();
      s->replies.release_if_idle();
      s->awaiting.release();
      if (!s->timer_armed) s->answer_timer.cancel();
      co_return;
    }
    if (!data) {
      reason = data.error().message();
      if (conn.peer_finished()) co_await finish_replies(*s);
      break;
    }
    std::string_view in = *data;
    if (!s->decoder) {
      s->decoder = std::make_unique<relay::decoder>(relay::direction::to_server, config.wire);
    }
    std::string held;  // the rest of a read kept across a wait for the cluster
    bool partial = false;
    while (!in.empty() && conn.is_open()) {
      if (s->claim_wait) {
        held = std::string(in);  // `in` views the shared read buffer: gone at co_await
        while (s->claim_wait && conn.is_open() && !tcp.stopping()) co_await s->replies.wait();
        in = held;
        continue;
      }
      // Views into `in`: handled before the next co_await.
      auto r = s->decoder->next_view(in);
      if (!r) {
        int code = relay::to_wire(r.error().code());
        reply_error(*s, code);
        if (s->decoder->failed() || relay::closes_connection(code)) {
          reason = r.error().message();
          log(net::to_string(conn.remote()) + ": " + reason + ", closing");
          conn.close_after_flush();
          break;
        }
        continue;
      }
      if (!*r) {
        partial = true;
        break;
      }
      handle(s, **r);
    }
    if (s->decoder->failed()) break;
    conn.set_mid_message(partial);
  }
  cleanup(s, reason);
}

// The peer has shut down its sending side but may still read: its pending
// replies (SENT once the receivers answer, bounded by receiver_timeout) go
// out before the close. FORWARDs it can no longer answer fail now.
asio::awaitable<void> relay_server::impl::finish_replies(session& s) {
  fail_awaiting(s);
  while (s.replies.owed() > 0 && s.conn->is_open() && !tcp.stopping()) co_await s.replies.wait();
}

void relay_server::impl::handle(const std::shared_ptr<session>& s, const relay::message_view& v) {
  if (v.kind == relay::view_kind::send) {
    on_send(s, v.peer, v.body);
    return;
  }
  if (v.other == nullptr) {  // a FORWARD: never decoded from a client's bytes
    reply_error(*s, relay::codes::unknown_command);
    return;
  }
  std::visit(
      [&](auto& msg) {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, relay::register_request>) {
          on_register(s, msg);
        } else if constexpr (std::is_same_v<T, relay::received>) {
          on_answer(s, true, msg.from);
        } else if constexpr (std::is_same_v<T, relay::error_reply>) {
          on_answer(s, false, {});
        } else if constexpr (std::is_same_v<T, relay::list_users>) {
          if (check_sender(*s)) on_list_users(s, msg);
        } else if constexpr (std::is_same_v<T, relay::subscribe>) {
          if (check_sender(*s)) set_subscribed(*s, true);
        } else if constexpr (std::is_same_v<T, relay::unsubscribe>) {
          if (check_sender(*s)) set_subscribed(*s, false);
        } else if constexpr (std::is_same_v<T, relay::list_files>) {
          if (check_sender(*s)) reply(*s, files->list(msg));
        } else if constexpr (std::is_same_v<T, relay::download>) {
          if (check_sender(*s)) on_download(s, msg);
        } else if constexpr (std::is_same_v<T, relay::pause>) {
          if (check_sender(*s)) reply(*s, files->pause(s->user, msg.id));
        } else if constexpr (std::is_same_v<T, relay::resume>) {
          if (check_sender(*s)) reply(*s, files->resume(s->user, msg.id));
        } else if constexpr (std::is_same_v<T, relay::cancel>) {
          if (check_sender(*s)) reply(*s, files->cancel(s->user, msg.id));
        } else {
          reply_error(*s, relay::codes::unknown_command);
        }
      },
      *v.other);
}

void relay_server::impl::cleanup(const std::shared_ptr<session>& s, std::string_view reason) {
  s->replies.wake();
  fail_awaiting(*s);
  s->answer_timer.cancel();
  s->pairing_timer.cancel();
  if (s->role) {
    auto it = users.find(s->user);
    if (it != users.end()) {
      bool was_complete = it->second.complete();
      if (it->second.subscribed) --subscribers;
      auto other = *s->role == relay::role::to_send ? it->second.receiver : it->second.sender;
      drop_user(it);
      files->user_gone(s->user);
      // Unregistered on both sockets; the other stays open and may register again.
      if (other) {
        fail_awaiting(*other);
        other->pairing_timer.cancel();
        other->role.reset();
        other->user.clear();
      }
      log(s->user + " unregistered (" + std::string(reason) + ")");
      if (was_complete) {
        --complete_users;
        notify_presence(relay::left{s->user}, s->user);
      }
    }
  }
  if (s->conn->is_open()) s->conn->close_after_flush();
}

// ------------------------------------------------------------------- replies

void relay_server::impl::reply(session& s, const relay::message& m) {
  reply_scratch.clear();
  relay::serialize_unchecked(m, reply_scratch);
  s.replies.push(reply_scratch);
}

void relay_server::impl::reply_error(session& s, int code) { reply(s, relay::error_for(code)); }

bool relay_server::impl::check_sender(session& s) {
  if (!s.role) {
    reply_error(s, relay::codes::no_user_registered);
    return false;
  }
  auto it = users.find(s.user);
  if (it == users.end() || !it->second.complete()) {
    reply_error(s, relay::codes::no_user_registered);
    return false;
  }
  if (*s.role != relay::role::to_send) {
    reply_error(s, relay::codes::bad_request);
    return false;
  }
  return true;
}

// -------------------------------------------------------------- registration

void relay_server::impl::on_register(const std::shared_ptr<session>& s,
                                     const relay::register_request& m) {
  if (s->role) {
    reply_error(*s, relay::codes::bad_request);  // this socket is registered already
    return;
  }
  if (!relay::valid_user(m.user)) {
    reply_error(*s, relay::codes::malformed_username);
    return;
  }
  auto [it, fresh] = users.try_emplace(m.user);
  auto& entry = it->second;
  auto& holder = m.role == relay::role::to_send ? entry.sender : entry.receiver;
  const auto& other = m.role == relay::role::to_send ? entry.receiver : entry.sender;
  // Without credentials the source address is all that ties the two
  // sockets to one client: a socket from elsewhere cannot complete (and so
  // send as, or receive for) a name someone else holds half of.
  if (holder || (other && other->conn->remote_address() != s->conn->remote().address())) {
    reply_error(*s, relay::codes::username_taken);
    return;
  }
  holder = s;
  s->role = m.role;
  s->user = m.user;
  if (cluster && (fresh || entry.claiming)) {
    // The name is ours only once the cluster says so; this socket reads on after.
    if (!entry.waiting) entry.waiting = std::make_unique<std::vector<waiting_registration>>();
    entry.waiting->push_back({s, s->replies.reserve(), m.role});
    s->claim_wait = true;
    arm_pairing_timer(s);
    if (fresh) {
      entry.claiming = true;
      cluster->claim(m.user, [this, user = m.user](relay_cluster::claim_result r) {
        on_claimed(user, r);
      });
    }
    return;
  }
  reply(*s, relay::registered{m.role, m.user});
  log(m.user + " registered " + std::string(relay::role_name(m.role)) + " from " +
      net::to_string(s->conn->remote()));
  if (entry.complete()) {
    became_complete(it);
  } else {
    arm_pairing_timer(s);
  }
}

void relay_server::impl::became_complete(user_map::iterator it) {
  it->second.sender->pairing_timer.cancel();
  it->second.receiver->pairing_timer.cancel();
  ++complete_users;
  if (cluster) cluster->joined(it->first);
  notify_presence(relay::joined{it->first}, it->first);
}

void relay_server::impl::on_claimed(const std::string& user, relay_cluster::claim_result r) {
  if (r == relay_cluster::claim_result::released) return;  // its sockets left meanwhile
  auto it = users.find(user);
  if (it == users.end() || !it->second.claiming) return;
  auto& entry = it->second;
  entry.claiming = false;
  std::vector<waiting_registration> waiting;
  if (entry.waiting) waiting = std::move(*entry.waiting);
  entry.waiting.reset();
  bool ok = r == relay_cluster::claim_result::claimed;
  int code = r == relay_cluster::claim_result::taken ? relay::codes::username_taken
                                                      : relay::codes::server_busy;
  for (auto& w : waiting) {
    auto ws = w.s.lock();
    if (!ws) continue;
    ws->claim_wait = false;
    if (ok) {
      ws->replies.fill(w.slot, relay::serialize_unchecked(relay::registered{w.role, user}));
      log(user + " registered " + std::string(relay::role_name(w.role)) + " from " +
          net::to_string(ws->conn->remote()));
    } else {
      ws->replies.fill(w.slot, relay::serialize_unchecked(relay::error_for(code)));
      ws->pairing_timer.cancel();
      ws->role.reset();
      ws->user.clear();
    }
    ws->replies.wake();
  }
  if (!ok) {
    if (code == relay::codes::server_busy) log(user + ": not registered, the cluster is unavailable");
    users.erase(it);  // the cluster kept no claim
    return;
  }
  if (entry.complete()) became_complete(it);
}

// Forgets a name here and gives it back to the cluster.
void relay_server::impl::drop_user(user_map::iterator it) {
  auto& entry = it->second;
  bool was_complete = entry.complete();
  // A REGISTER still waiting on the claim is answered as one server would
  // have (registered, then unregistered with the name).
  if (entry.waiting) {
    for (auto& w : *entry.waiting) {
      if (auto ws = w.s.lock()) {
        ws->claim_wait = false;
        ws->replies.fill(w.slot, relay::serialize_unchecked(relay::registered{w.role, it->first}));
        ws->replies.wake();
      }
    }
  }
  if (cluster) cluster->release(it->first, was_complete);
  users.erase(it);
}

void relay_server::impl::arm_pairing_timer(const std::shared_ptr<session>& s) {
  s->pairing_timer.expires_after(io, config.pairing_timeout);
  // Weak both: a timer must not keep its session or the server alive.
  s->pairing_timer.async_wait([server = weak_from_this(), weak = std::weak_ptr<session>(s)](
                                  std::error_code ec) {
    auto locked = weak.lock();
    auto self = server.lock();
    if (!locked || !self || ec) return;
    self->expire_half_registration(locked);
  });
}

void relay_server::impl::expire_half_registration(const std::shared_ptr<session>& s) {
  // The timer may have fired just as the pair completed or the socket left.
  if (!s->role || tcp.stopping()) return;
  auto it = users.find(s->user);
  if (it == users.end() || it->second.complete()) return;
  const auto& holder = *s->role == relay::role::to_send ? it->second.sender : it->second.receiver;
  if (holder != s) return;
  std::string user = std::move(s->user);
  drop_user(it);  // never complete: never listed nor announced, so no LEFT
  s->role.reset();
  s->user.clear();
  log(user + " unregistered (other socket not registered within " +
      seconds_text(config.pairing_timeout) + " s)");
  // 101: the name is no longer registered; closing tells a client waiting
  // on its lone receiving socket, which would otherwise never hear.
  reply_error(*s, relay::codes::no_user_registered);
  s->conn->close_after_flush();
}

// ------------------------------------------------------------------ delivery

void relay_server::impl::on_send(const std::shared_ptr<session>& s, std::string_view to,
                                 std::string_view body) {
  if (!check_sender(*s)) return;
  auto d = std::make_shared<delivery>();
  d->sender = s;
  d->slot = s->replies.reserve();
  d->to = to;

  std::vector<std::shared_ptr<session>> receivers;
  bool broadcast = relay::is_broadcast(to);
  if (broadcast) {
    receivers.reserve(complete_users);
    for (auto& [name, entry] : users) {
      if (entry.complete() && name != s->user) receivers.push_back(entry.receiver);
    }
  } else if (auto it = users.find(to); it != users.end() && it->second.complete()) {
    receivers.push_back(it->second.receiver);
  } else if (it == users.end() && cluster) {
    // Not ours (a name held here is nobody else's): the node holding it answers.
    d->remaining = 1;
    cluster->send(s->user, d->to, std::string(body), [this, d](bool ok) { settle(*d, ok); });
    return;
  } else {
    s->replies.fill(d->slot,
                    relay::serialize_unchecked(relay::error_for(relay::codes::unable_to_send)));
    return;
  }
  bool remote = broadcast && cluster;
  if (receivers.empty() && !remote) {
    // SEND ALL with nobody else online: delivered to every one of none.
    s->replies.fill(d->slot, relay::serialize_unchecked(relay::sent{d->to}));
    return;
  }
  // The other nodes count as one receiver: SENT ALL needs all of them.
  d->remaining = receivers.size() + (remote ? 1 : 0);
  // The one copy of the body: straight from the read buffer into the FORWARD.
  scratch.clear();
  relay::serialize_forward(s->user, body, scratch);
  std::string bytes = std::move(scratch);
  auto deadline = net::clock::now() + config.receiver_timeout;
  for (auto& r : receivers) {
    if (!forward_to(r, d, s->user, bytes, deadline)) settle(*d, false);
  }
  scratch = std::move(bytes);
  if (remote) {
    cluster->send_all(s->user, std::string(body), [this, d](bool ok) { settle(*d, ok); });
  }
}

bool relay_server::impl::forward_to(const std::shared_ptr<session>& receiver,
                                    const std::shared_ptr<delivery>& d, std::string_view from,
                                    std::string_view bytes, net::clock::time_point deadline) {
  if (receiver->awaiting.size() >= config.max_unanswered) return false;
  // A receiver that does not read fills its own bounded queue; the sender
  // gets ERROR 102 and nobody else waits.
  if (!receiver->conn->send(bytes)) return false;
  // Expiry walks the queue's prefix: deadlines must not decrease along it
  // (another node's FORWARD may carry an earlier one).
  if (!receiver->awaiting.empty()) deadline = std::max(deadline, receiver->awaiting.back().deadline);
  receiver->awaiting.push_back({d, std::string(from), deadline});
  arm_answer_timer(receiver);
  return true;
}

void relay_server::impl::settle(delivery& d, bool ok) {
  if (!ok) ++d.failures;
  if (--d.remaining > 0) return;
  if (d.done) {
    d.done(d.failures);
    return;
  }
  auto sender = d.sender.lock();
  if (!sender) return;
  sender->replies.fill(d.slot, relay::serialize_unchecked(d.failures > 0 ? relay::message(relay::error_for(relay::codes::unable_to_send))
                                 : relay::message(relay::sent{d.to})));
}

void relay_server::impl::on_answer(const std::shared_ptr<session>& s, bool ok,
                                   std::string_view from) {
  if (s->awaiting.empty()) {
    // Not an answer to anything: before registration that is the seed's 101.
    if (!s->role) reply_error(*s, relay::codes::no_user_registered);
    return;
  }
  unanswered front = std::move(s->awaiting.front());
  s->awaiting.pop_front();
  if (s->expired > 0) {
    --s->expired;  // a late answer; its sender already has ERROR 102
    return;
  }
  // An answer naming another sender is not a receipt for this FORWARD.
  settle(*front.pending, ok && from == front.from);
}

void relay_server::impl::arm_answer_timer(const std::shared_ptr<session>& s) {
  if (s->timer_armed || s->awaiting.size() <= s->expired) return;
  s->timer_armed = true;
  s->answer_timer.expires_at(io, s->awaiting[s->expired].deadline);
  s->answer_timer.async_wait([server = weak_from_this(), weak = std::weak_ptr<session>(s)](
                                 std::error_code ec) {
    auto locked = weak.lock();
    if (!locked) return;
    locked->timer_armed = false;
    auto self = server.lock();
    if (ec || !self) return;
    self->expire_answers(*locked);
    self->arm_answer_timer(locked);
  });
}

void relay_server::impl::expire_answers(session& s) {
  auto now = net::clock::now();
  // Deadlines grow along the queue: expiry always extends the prefix.
  while (s.expired < s.awaiting.size() && s.awaiting[s.expired].deadline <= now) {
    auto pending = std::move(s.awaiting[s.expired].pending);
    ++s.expired;
    settle(*pending, false);
  }
}

void relay_server::impl::fail_awaiting(session& s) {
  auto awaiting = std::move(s.awaiting);
  std::size_t expired = s.expired;
  s.awaiting.clear();
  s.expired = 0;
  for (std::size_t i = expired; i < awaiting.size(); ++i) settle(*awaiting[i].pending, false);
}

// ------------------------------------------------------------------- files

void relay_server::impl::on_download(const std::shared_ptr<session>& s,
                                     const relay::download& m) {
  // The reply may come after the file is hashed; its slot keeps the order.
  auto slot = s->replies.reserve();
  files->download(s->user, s->conn->remote().address(), s->conn->local().address(), m,
                  [slot, weak = std::weak_ptr<session>(s)](relay::message reply) {
                    if (auto locked = weak.lock()) {
                      locked->replies.fill(slot, relay::serialize_unchecked(reply));
                    }
                  });
}

// ---------------------------------------------------------- users, presence

void relay_server::impl::on_list_users(const std::shared_ptr<session>& s,
                                       const relay::list_users& m) {
  relay::user_list out;
  out.users = local_users(m.after, relay::max_list_body, out.more);
  if (!cluster) {
    reply(*s, out);
    return;
  }
  auto slot = s->replies.reserve();
  relay_cluster::user_page page{std::move(out.users), out.more};
  cluster->list_users(m.after, relay::max_list_body, std::move(page),
                      [slot, weak = std::weak_ptr<session>(s)](relay_cluster::user_page all) {
                        auto locked = weak.lock();
                        if (!locked) return;
                        relay::user_list merged;
                        merged.users = std::move(all.users);
                        merged.more = all.more;
                        locked->replies.fill(slot, relay::serialize_unchecked(merged));
                      });
}

std::vector<std::string> relay_server::impl::local_users(const std::string& after,
                                                         std::size_t max_bytes,
                                                         bool& more) const {
  std::vector<std::string> out;
  more = false;
  std::size_t body = 0;
  for (auto it = users.upper_bound(after); it != users.end(); ++it) {
    if (!it->second.complete()) continue;
    if (body + it->first.size() + 1 > max_bytes) {
      more = true;
      break;
    }
    body += it->first.size() + 1;
    out.push_back(it->first);
  }
  return out;
}

// ------------------------------------------------------------ other nodes

void relay_server::impl::deliver(const std::string& from, const std::string& to, std::string body,
                                 net::clock::time_point deadline,
                                 std::function<void(bool)> done) {
  auto it = users.find(to);
  if (it == users.end() || !it->second.complete()) {
    done(false);
    return;
  }
  auto d = std::make_shared<delivery>();
  d->remaining = 1;
  d->done = [done = std::move(done)](std::size_t failures) { done(failures == 0); };
  std::string bytes = relay::serialize_unchecked(relay::forward{from, std::move(body)});
  if (!forward_to(it->second.receiver, d, from, bytes, deadline)) settle(*d, false);
}

void relay_server::impl::deliver_all(const std::string& from, std::string body,
                                     net::clock::time_point deadline,
                                     std::function<void(std::size_t, std::size_t)> done) {
  std::vector<std::shared_ptr<session>> receivers;
  for (auto& [name, entry] : users) {
    if (entry.complete() && name != from) receivers.push_back(entry.receiver);
  }
  if (receivers.empty()) {
    done(0, 0);
    return;
  }
  auto d = std::make_shared<delivery>();
  d->remaining = receivers.size();
  d->done = [count = receivers.size(), done = std::move(done)](std::size_t failures) {
    done(count, failures);
  };
  std::string bytes = relay::serialize_unchecked(relay::forward{from, std::move(body)});
  for (auto& r : receivers) {
    if (!forward_to(r, d, from, bytes, deadline)) settle(*d, false);
  }
}

void relay_server::impl::presence(const std::string& user, bool joined) {
  if (joined) {
    notify_presence(relay::joined{user}, user);
  } else {
    notify_presence(relay::left{user}, user);
  }
}

void relay_server::impl::fence(const std::string& reason) {
  log("dropping every registered session: " + reason);
  std::vector<std::shared_ptr<session>> drop;
  for (auto& [name, entry] : users) {
    if (entry.sender) drop.push_back(entry.sender);
    if (entry.receiver) drop.push_back(entry.receiver);
  }
  // Their loops end and clean up as for any closed socket.
  for (auto& s : drop) s->conn->close();
}

void relay_server::impl::set_subscribed(session& s, bool on) {
  auto& entry = users.find(s.user)->second;
  if (entry.subscribed != on) {
    if (on) {
      ++subscribers;
    } else {
      --subscribers;
    }
  }
  entry.subscribed = on;
  if (on) {
    reply(s, relay::subscribed{});
  } else {
    reply(s, relay::unsubscribed{});
  }
}

void relay_server::impl::notify_presence(const relay::message& notice, std::string_view about) {
  if (subscribers == 0) return;
  std::string bytes = relay::serialize_unchecked(notice);
  for (auto& [name, entry] : users) {
    // Notices are not acknowledged; a receiver with a full queue misses one.
    if (entry.subscribed && entry.complete() && name != about) entry.receiver->conn->send(bytes);
  }
}

// -------------------------------------------------------------------- public

relay_server::relay_server(std::shared_ptr<impl> i) : impl_(std::move(i)) {}

// Stops (each connection closes once its queue is flushed); the sessions'
// coroutines own the state until they have ended.
relay_server::~relay_server() {
  stop();
  // The cluster's threads post to the io_context: gone now, while it is sure
  // to exist (sessions that outlive the handle then route locally only).
  impl_->cluster.reset();
}

result<std::unique_ptr<relay_server>> relay_server::bind(asio::io_context& io,
                                                         relay_config config,
                                                         std::unique_ptr<relay_cluster> cluster) {
  net::tcp_server_options options;
  // Over the limit a newcomer learns why, rather than seeing a bare close.
  options.refusal = relay::serialize_unchecked(relay::error_for(relay::codes::server_busy));
  options.log = config.log;
  auto server = net::tcp_server::bind(io, config.host, config.port, config.stream, options);
  if (!server) return tl::unexpected(server.error());
  auto files = file_service::open(io, config.files, config.log);
  if (!files) return tl::unexpected(files.error());
  auto state = std::make_shared<impl>(io, std::move(config), std::move(*server),
                                      std::move(*files), std::move(cluster));
  return std::unique_ptr<relay_server>(new relay_server(std::move(state)));
}

result<std::unique_ptr<relay_server>> relay_server::bind(asio::io_context& io,
                                                         relay_config config) {
  return bind(io, std::move(config), nullptr);
}

asio::ip::tcp::endpoint relay_server::local_endpoint() const { return impl_->tcp.local_endpoint(); }

void relay_server::start() {
  auto* state = impl_.get();
  if (state->cluster) state->cluster->start(*state);
  state->log("listening on " + net::to_string(local_endpoint()));
  // `state` outlives every call of the factory (see tcp_server::start).
  state->tcp.start(impl_, &impl::run_session, [state](std::shared_ptr<net::tcp_connection> c) {
    return std::make_shared<session>(std::move(c), state->reply_settings);
  });
}

void relay_server::stop() {
  if (impl_->tcp.stopping()) return;
  impl_->files->stop();
  if (impl_->cluster) impl_->cluster->stop();
  impl_->tcp.stop();
}

std::size_t relay_server::user_count() const { return impl_->complete_users; }
std::size_t relay_server::connection_count() const { return impl_->tcp.session_count(); }

}  // namespace improto::server

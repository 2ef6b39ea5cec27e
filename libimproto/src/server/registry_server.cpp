#include "improto/server/registry_server.hpp"

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <deque>
#include <list>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "improto/registry/codes.hpp"
#include "improto/registry/decoder.hpp"
#include "improto/registry/messages.hpp"
#include "improto/server/group_commit.hpp"
#include "improto/store/registry_store.hpp"
#include "improto/wire/text.hpp"

namespace improto::server {
namespace {

using store_type = store::registry_store;

constexpr std::string_view list_path = "/userlist.txt";
constexpr std::string_view allowed_methods = "GET, HEAD, POST";
// After a request we cannot parse, keep reading (and dropping) what the
// client still sends before closing: closing with unread bytes makes the
// kernel send a reset, which can destroy our error reply before the client
// reads it. We stop once the client is quiet for linger_quiet, or after
// linger_time in all.
constexpr std::chrono::seconds linger_time{2};
constexpr std::chrono::milliseconds linger_quiet{200};

// The path of an origin-form (`/userlist.txt?x`) or absolute-form
// (`http://host:port/userlist.txt`) request target.
std::string_view path_of(std::string_view target) {
  if (wire::istarts_with(target, "http://") || wire::istarts_with(target, "https://")) {
    auto slash = target.find('/', target.find("//") + 2);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  return target.substr(0, target.find_first_of("?#"));
}

// "30 s", "0.5 s".
std::string seconds_text(std::chrono::milliseconds d) {
  auto ms = d.count();
  std::string text = std::to_string(ms / 1000);
  if (ms % 1000 != 0) {
    std::string fraction = std::to_string(1000 + ms % 1000).substr(1);
    text += "." + fraction.substr(0, fraction.find_last_not_of('0') + 1);
  }
  return text + " s";
}

// How one reply is framed, from its request.
struct reply_form {
  int version = 1;
  bool keep_alive = true;
  bool head = false;  // HEAD: the headers GET would send, no body
};

// Appends one complete response. The codec writes the common form; an
// HTTP/1.0 client that asked to keep the connection must hear it said.
void append_response(std::string& out, int status, std::string_view body, const reply_form& form,
                     std::string_view extra_headers = {}) {
  registry::write_response(out, status, body, form.keep_alive);
  std::string headers(extra_headers);
  if (form.version == 0 && form.keep_alive) headers += "Connection: keep-alive\r\n";
  if (!headers.empty()) out.insert(out.size() - body.size() - 2, headers);
  if (form.head) out.resize(out.size() - body.size());
}

// The status line and headers append_response() writes for a body of
// `body_size` bytes, without the body: a large list is streamed after them.
void append_head(std::string& out, int status, std::size_t body_size, const reply_form& form) {
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += registry::reason_phrase(status);
  out += "\r\nContent-Length: ";
  out += std::to_string(body_size);
  out += "\r\n";
  if (!form.keep_alive) out += "Connection: close\r\n";
  if (form.version == 0 && form.keep_alive) out += "Connection: keep-alive\r\n";
  out += "\r\n";
}

// The address a LOGOUT must come from: the peer's IP, IPv4-mapped IPv6
// written as IPv4 so that both listener kinds remember the same text.
std::string origin_of(const asio::ip::tcp::endpoint& peer) {
  auto address = peer.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).to_string();
  }
  return address.to_string();
}

// A reply in its connection's queue. Replies leave in request order.
struct slot {
  enum class state {
    ready,    // `bytes` is the response
    pending,  // a write being committed
    listing,  // a GET/HEAD answered when it reaches the front, so that it sees
              // the writes pipelined before it on this connection
  };
  state st = state::ready;
  std::string bytes;
  reply_form form;
  // A listing at the front: the list it answers (set once; its first
  // list_size bytes never change, see impl::list_body) and how much of it
  // has been sent.
  std::shared_ptr<const std::string> list;
  std::size_t list_sent = 0;
  std::size_t list_size = 0;
};

struct session {
  session(asio::io_context& io, std::shared_ptr<net::tcp_connection> c, const wire::limits& lim)
      : conn(std::move(c)), decoder(lim), wake(io) {}

  std::shared_ptr<net::tcp_connection> conn;
  registry::request_decoder decoder;
  std::deque<slot> replies;
  std::uint64_t first_slot = 0;  // number of replies.front()
  bool mid_message = false;   // bytes of an unfinished request are buffered
  bool stop_reading = false;  // Connection: close, or a request we could not parse
  bool waiting = false;
  asio::steady_timer wake;    // the reader waits here for commits to finish
  // The front reply does not fit in the connection's queue now; a drainer
  // coroutine (at most one: `draining`) resumes it as the peer reads.
  bool blocked = false;
  bool draining = false;
};

}  // namespace

struct registry_server::impl {
  impl(asio::io_context& io_context, registry_config cfg, net::tcp_listener l,
       std::vector<store::registry_record> records, store_type st)
      : io(io_context), config(std::move(cfg)), listener(std::move(l)) {
    for (auto& r : records) add_entry({std::move(r.name), std::move(r.host), r.port});
    committer = std::make_unique<group_committer<store_type>>(io, std::move(st));
  }

  asio::io_context& io;
  registry_config config;
  net::tcp_listener listener;
  std::unordered_set<std::shared_ptr<session>> sessions;
  bool stopping = false;
  std::size_t pending_writes = 0;
  std::size_t registers_pending = 0;  // REGISTERs being committed (max_users)
  std::string loaded_from;  // for the startup log
  std::string scratch;      // replies sent at once are built here, no allocation

  // The committed list, in registration order, and its GET body.
  std::list<registry::entry> entries;
  std::unordered_map<std::string, std::list<registry::entry>::iterator> by_name;
  // `a@1.2.3.4:5,b@...,`. Shared with the GETs streaming it, each of which
  // answers the first list_size bytes it saw: a REGISTER appends in place
  // (that prefix does not change), a LOGOUT makes the next GET build a new
  // string (copy on write) and leaves the old one to the GETs still on it.
  std::shared_ptr<std::string> list_body = std::make_shared<std::string>();
  bool list_body_stale = false;

  // Last member: destroyed first, while the state its results touch exists.
  std::unique_ptr<group_committer<store_type>> committer;

  void log(const std::string& line) const {
    if (config.log) config.log(line);
  }

  void add_entry(registry::entry e) {
    if (!list_body_stale) {
      *list_body += registry::to_string(e);
      *list_body += ',';
    }
    std::string key = e.user;
    entries.push_back(std::move(e));
    by_name[std::move(key)] = std::prev(entries.end());
  }
  void remove_entry(const std::string& name) {
    auto it = by_name.find(name);
    if (it == by_name.end()) return;
    entries.erase(it->second);
    by_name.erase(it);
    list_body_stale = true;  // rebuilt by the next GET, not by every LOGOUT
  }
  std::shared_ptr<const std::string> current_list() {
    if (list_body_stale) {
      auto fresh = std::make_shared<std::string>();
      fresh->reserve(list_body->size());
      for (const auto& e : entries) {
        *fresh += registry::to_string(e);
        *fresh += ',';
      }
      list_body = std::move(fresh);
      list_body_stale = false;
    }
    return list_body;
  }

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> run_session(std::shared_ptr<session> s);
  asio::awaitable<void> wait_for_replies(session& s);
  asio::awaitable<void> commit(std::shared_ptr<session> s, std::uint64_t slot_number,
                               registry::command cmd);
  void handle(const std::shared_ptr<session>& s, const registry::request& req);
  void reject(const std::shared_ptr<session>& s, const error& why);

  std::uint64_t add_slot(session& s, slot::state st, const reply_form& form);
  void reply(const std::shared_ptr<session>& s, int status, std::string_view body,
             const reply_form& form, std::string_view extra_headers = {});
  void complete(const std::shared_ptr<session>& s, std::uint64_t slot_number, std::string bytes);
  void flush(const std::shared_ptr<session>& s);
  bool fits(const session& s, std::size_t bytes) const;
  bool send_list(session& s, slot& sl);
  asio::awaitable<void> drain(std::shared_ptr<session> s);
  void send_now(session& s, std::string_view bytes);
};

// ------------------------------------------------------------------ sessions

asio::awaitable<void> registry_server::impl::accept_loop() {
  {
    // Over the limit a newcomer learns why, rather than seeing a bare close.
    std::string busy;
    registry::write_response(busy, 503, {}, false);
    listener.set_refusal(std::move(busy));
    listener.set_logger([this](std::string_view line) { log(std::string(line)); });
  }
  while (!stopping) {
    // A named callable: g++ 12 mishandles temporaries inside co_await.
    std::function<std::size_t()> live = [this] { return sessions.size(); };
    auto socket = co_await listener.accept(live, config.stream.max_connections);
    if (!socket && socket.error() == errc::overloaded) continue;
    if (!socket) break;
    auto conn = std::make_shared<net::tcp_connection>(std::move(*socket), config.stream);
    conn->start();
    auto s = std::make_shared<session>(io, conn, config.http);
    sessions.insert(s);
    asio::co_spawn(io, run_session(s), asio::detached);
  }
}

asio::awaitable<void> registry_server::impl::wait_for_replies(session& s) {
  s.waiting = true;
  s.wake.expires_at(net::clock::time_point::max());
  co_await s.wake.async_wait(net::use_nothrow);
  s.waiting = false;
}

asio::awaitable<void> registry_server::impl::run_session(std::shared_ptr<session> s) {
  auto& conn = *s->conn;
  std::optional<net::clock::time_point> linger_until;
  while (conn.is_open()) {
    // Nothing more is read while this connection's replies wait for the
    // peer to read (s->blocked): no point queueing more, and its end of
    // stream must not cut an answer short.
    if (s->blocked || s->replies.size() >= config.max_pipelined) {
      co_await wait_for_replies(*s);
      continue;
    }
    if (linger_until) {
      if (net::clock::now() >= *linger_until) break;
    } else if (s->stop_reading || stopping) {
      break;
    }
    auto data = co_await conn.read();
    if (!data) {
      if (data.error() == errc::timeout && s->mid_message) {
        log(net::to_string(conn.remote()) + ": dropped, no complete request within " +
            seconds_text(config.stream.message_timeout));
      }
      break;
    }
    if (linger_until) continue;  // discarding what follows a bad request
    std::string_view in = *data;
    while (!in.empty() && !s->stop_reading) {
      std::string_view before = in;
      auto got = s->decoder.next(in);
      if (!got) {
        reject(s, got.error());
        linger_until = net::clock::now() + linger_time;
        conn.set_idle_timeout(linger_quiet);
        s->mid_message = false;
        break;
      }
      if (!*got) {
        // All of `in` went into an unfinished request; blank lines between
        // requests do not start one.
        if (before.find_first_not_of("\r\n") != std::string_view::npos) s->mid_message = true;
        break;
      }
      s->mid_message = false;
      handle(s, **got);
      // Its strings hold the next request: no allocation per request once warm.
      s->decoder.recycle(std::move(**got));
    }
    conn.set_mid_message(s->mid_message);
  }
  // Replies still owed (commits in flight) go out before the close, also to
  // a peer that has shut down its sending side (read() leaves it writable).
  while (!s->replies.empty() && conn.is_open()) co_await wait_for_replies(*s);
  if (conn.is_open()) conn.close_after_flush();
  sessions.erase(s);
}

void registry_server::impl::reject(const std::shared_ptr<session>& s, const error& why) {
  s->stop_reading = true;
  int status = registry::to_wire(why.code());
  log(net::to_string(s->conn->remote()) + ": " + std::to_string(status) + " " +
      std::string(registry::reason_phrase(status)) + " (" + why.message() + "), closing");
  reply_form form;
  form.keep_alive = false;
  reply(s, status, why.message() + "\n", form);
}

void registry_server::impl::handle(const std::shared_ptr<session>& s, const registry::request& req) {
  reply_form form;
  form.version = req.version;
  form.keep_alive = req.keep_alive() && !stopping;
  form.head = req.method == "HEAD";
  if (!form.keep_alive) s->stop_reading = true;

  if (path_of(req.target) != list_path) {
    reply(s, 404, "no such resource: " + wire::escape(req.target) + " (try /userlist.txt)\n",
          form);
    return;
  }
  if (req.method == "GET" || req.method == "HEAD") {
    // Answered when it reaches the front, after this connection's writes
    // (at once when nothing is owed before it).
    add_slot(*s, slot::state::listing, form);
    if (s->replies.size() == 1) flush(s);
    return;
  }
  if (req.method != "POST") {
    std::string allow = "Allow: " + std::string(allowed_methods) + "\r\n";
    reply(s, 405, req.method.substr(0, 32) + " is not allowed here; use GET or POST\n", form,
          allow);
    return;
  }
  auto cmd = registry::parse_command(req.body);
  if (!cmd) {
    reply(s, registry::to_wire(cmd.error().code()), cmd.error().message() + "\n", form);
    return;
  }
  if (cmd->kind == registry::command_kind::register_) {
    // Counting the REGISTERs in flight, which may yet fail: the cap holds
    // whatever they turn out to be. A taken name still hears 406.
    if (entries.size() + registers_pending >= config.max_users &&
        !by_name.contains(cmd->entry.user)) {
      log("REGISTER " + registry::to_string(cmd->entry) + ": 503 (user limit of " +
          std::to_string(config.max_users) + " reached)");
      reply(s, 503,
            "user limit reached: the registry holds at most " + std::to_string(config.max_users) +
                " users; try again after some log out\n",
            form);
      return;
    }
    ++registers_pending;
  }
  auto number = add_slot(*s, slot::state::pending, form);
  ++pending_writes;
  asio::co_spawn(io, commit(s, number, std::move(*cmd)), asio::detached);
}

asio::awaitable<void> registry_server::impl::commit(std::shared_ptr<session> s,
                                                    std::uint64_t slot_number,
                                                    registry::command cmd) {
  bool is_register = cmd.kind == registry::command_kind::register_;
  std::string origin = origin_of(s->conn->remote());
  store_type::operation op;
  if (is_register) {
    op = store_type::add_op{cmd.entry.user, cmd.entry.host, cmd.entry.port, origin};
  } else {
    // Checked by the store, in commit order: a REGISTER just ahead of this
    // LOGOUT in the same group is seen with its origin.
    std::optional<std::string> from;
    if (!config.logout_from_any) from = origin;
    op = store_type::remove_op{cmd.entry.user, cmd.entry.host, cmd.entry.port, std::move(from)};
  }
  // A named awaitable: g++ 12 mishandles temporaries inside co_await.
  auto write = committer->write(std::move(op));
  auto done = co_await std::move(write);

  // Results arrive in commit order on this one thread, so the copy in
  // memory replays the store's history exactly.
  std::string what = (is_register ? "REGISTER " : "LOGOUT ") + registry::to_string(cmd.entry);
  int status = 200;
  std::string body;
  if (done) {
    if (is_register) {
      log("registered " + registry::to_string(cmd.entry) + " (from " +
          net::to_string(s->conn->remote()) + ")");
      add_entry(std::move(cmd.entry));
    } else {
      log("logged out " + registry::to_string(cmd.entry));
      remove_entry(cmd.entry.user);
    }
  } else {
    const auto& e = done.error();
    status = registry::to_wire(e.code());  // 403, 406, 404; 500 for storage_error
    if (e == errc::rejected) {
      body = "LOGOUT refused: " + e.detail() + "\n";
    } else if (e == errc::name_taken) {
      body = "the name '" + cmd.entry.user + "' is already registered\n";
    } else if (e == errc::not_found) {
      body = registry::to_string(cmd.entry) + " is not registered\n";
    } else {
      body = e.message() + "\n";
    }
    log(what + ": " + std::to_string(status) + " (" + e.message() + ")");
  }
  if (is_register) --registers_pending;
  --pending_writes;
  std::string bytes;
  auto index = static_cast<std::size_t>(slot_number - s->first_slot);
  append_response(bytes, status, body, s->replies[index].form);
  complete(s, slot_number, std::move(bytes));
  // stop() left open a session owed replies; it may be reading, not waiting.
  if (stopping && s->replies.empty()) s->conn->close_after_flush();
}

// ------------------------------------------------------------------- replies

std::uint64_t registry_server::impl::add_slot(session& s, slot::state st, const reply_form& form) {
  s.replies.emplace_back();
  s.replies.back().st = st;
  s.replies.back().form = form;
  return s.first_slot + s.replies.size() - 1;
}

void registry_server::impl::reply(const std::shared_ptr<session>& s, int status,
                                  std::string_view body, const reply_form& form,
                                  std::string_view extra_headers) {
  if (s->replies.empty()) {
    scratch.clear();
    append_response(scratch, status, body, form, extra_headers);
    if (fits(*s, scratch.size())) {
      send_now(*s, scratch);
      return;
    }
  }
  // Behind other replies, or the queue is full of a list still streaming.
  add_slot(*s, slot::state::ready, form);
  append_response(s->replies.back().bytes, status, body, form, extra_headers);
  if (s->replies.size() == 1) flush(s);
}

// Whether `bytes` can be queued now. Into an empty queue always: a reply
// larger than the whole bound can never fit, and send_now() then closes.
bool registry_server::impl::fits(const session& s, std::size_t bytes) const {
  std::size_t queued = s.conn->queued_bytes();
  return queued == 0 || queued + bytes <= config.stream.max_queued_bytes;
}

void registry_server::impl::send_now(session& s, std::string_view bytes) {
  if (s.conn->is_open() && !s.conn->send(bytes)) {
    // Callers check fits() first: a connection already closing, or a reply
    // larger than the whole queue bound.
    log(net::to_string(s.conn->remote()) + ": reply refused (" + std::to_string(bytes.size()) +
        " bytes), closing");
    s.conn->close();
  }
}

void registry_server::impl::complete(const std::shared_ptr<session>& s, std::uint64_t slot_number,
                                     std::string bytes) {
  auto& sl = s->replies[static_cast<std::size_t>(slot_number - s->first_slot)];
  sl.st = slot::state::ready;
  sl.bytes = std::move(bytes);
  flush(s);
}

// Sends what it can of a listing at the front; true once all of it is queued
// (or the connection is gone), false when the queue is full.
bool registry_server::impl::send_list(session& s, slot& sl) {
  if (!s.conn->is_open()) return true;
  if (!sl.list) {
    // Its snapshot: taken now, after the writes before it on this connection.
    sl.list = current_list();
    scratch.clear();
    if (sl.list->empty()) {
      // The seed clients read 400 as "no online users".
      append_response(scratch, 400, "no users are registered\n", sl.form);
    } else {
      append_head(scratch, 200, sl.list->size(), sl.form);
      if (!sl.form.head) sl.list_size = sl.list->size();
    }
    // The usual case, straight out without a copy of its own.
    if (fits(s, scratch.size())) {
      send_now(s, scratch);
    } else {
      sl.bytes = scratch;
    }
  }
  if (!sl.bytes.empty()) {
    if (!fits(s, sl.bytes.size())) return false;
    send_now(s, sl.bytes);
    sl.bytes = std::string();
  }
  // The body in pieces that fit: the queue bound limits what waits for the
  // peer, not the size of one answer.
  constexpr std::size_t piece = 256 * 1024;
  while (sl.list_sent < sl.list_size && s.conn->is_open()) {
    std::size_t queued = s.conn->queued_bytes();
    if (queued >= config.stream.max_queued_bytes) return false;
    std::size_t n = std::min({sl.list_size - sl.list_sent, piece,
                              config.stream.max_queued_bytes - queued});
    send_now(s, std::string_view(*sl.list).substr(sl.list_sent, n));
    sl.list_sent += n;
  }
  sl.list.reset();
  return true;
}

void registry_server::impl::flush(const std::shared_ptr<session>& s) {
  s->blocked = false;
  while (!s->replies.empty() && s->replies.front().st != slot::state::pending) {
    auto& front = s->replies.front();
    if (front.st == slot::state::listing) {
      if (!send_list(*s, front)) {
        s->blocked = true;
        break;
      }
    } else if (s->conn->is_open()) {
      if (!fits(*s, front.bytes.size())) {
        s->blocked = true;
        break;
      }
      send_now(*s, front.bytes);
    }
    s->replies.pop_front();
    ++s->first_slot;
  }
  if (s->blocked && !s->draining) {
    s->draining = true;
    asio::co_spawn(io, drain(s), asio::detached);
  }
  if (s->waiting) s->wake.cancel();
}

asio::awaitable<void> registry_server::impl::drain(std::shared_ptr<session> s) {
  // Resumes once half the queue has gone out: pieces stay large, and the
  // peer always has bytes to read.
  while (s->blocked && s->conn->is_open()) {
    co_await s->conn->wait_until_queued_at_most(config.stream.max_queued_bytes / 2);
    flush(s);
  }
  s->draining = false;
  if (s->blocked) {
    // Closed: what is left can no longer be sent; let the reader finish.
    s->blocked = false;
    if (s->waiting) s->wake.cancel();
  }
}

// -------------------------------------------------------------------- public

registry_server::registry_server(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
registry_server::~registry_server() = default;

result<std::unique_ptr<registry_server>> registry_server::bind(asio::io_context& io,
                                                               registry_config config) {
  if (config.max_pipelined == 0) return fail(errc::invalid_config, "max_pipelined must be at least 1");
  if (config.max_users == 0) return fail(errc::invalid_config, "max_users must be at least 1");
  auto path = config.data_dir / store_file_name;
  auto opened = store_type::open(path, config.store);
  if (!opened) return tl::unexpected(opened.error());
  auto records = opened->list();
  if (!records) return tl::unexpected(records.error());
  auto listener = net::tcp_listener::bind(io, config.host, config.port);
  if (!listener) return tl::unexpected(listener.error());
  auto state = std::make_unique<impl>(io, std::move(config), std::move(*listener),
                                      std::move(*records), std::move(*opened));
  state->loaded_from = path.string();
  return std::unique_ptr<registry_server>(new registry_server(std::move(state)));
}

asio::ip::tcp::endpoint registry_server::local_endpoint() const {
  return impl_->listener.local_endpoint();
}

void registry_server::start() {
  impl_->log("listening on " + net::to_string(local_endpoint()));
  std::size_t n = impl_->entries.size();
  impl_->log(std::to_string(n) + (n == 1 ? " user" : " users") + " registered in " +
             impl_->loaded_from);
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
}

void registry_server::stop() {
  if (impl_->stopping) return;
  impl_->stopping = true;
  impl_->listener.close();
  auto sessions = impl_->sessions;
  for (auto& s : sessions) {
    // A session with replies owed closes once they are sent (commit());
    // the others are idle.
    if (s->replies.empty()) s->conn->close_after_flush();
  }
}

std::size_t registry_server::user_count() const { return impl_->entries.size(); }
std::size_t registry_server::connection_count() const { return impl_->sessions.size(); }
std::size_t registry_server::pending_writes() const { return impl_->pending_writes; }

}  // namespace improto::server

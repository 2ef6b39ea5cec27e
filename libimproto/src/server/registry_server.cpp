#include "improto/server/registry_server.hpp"

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
};

struct session {
  session(asio::io_context& io, std::shared_ptr<net::tcp_connection> c, const wire::limits& lim)
      : conn(std::move(c)), decoder(lim), wake(io) {}

  std::shared_ptr<net::tcp_connection> conn;
  registry::request_decoder decoder;
  std::deque<slot> replies;
  std::uint64_t first_slot = 0;  // number of replies.front()
  std::size_t writes_pending = 0;
  bool mid_message = false;   // bytes of an unfinished request are buffered
  bool stop_reading = false;  // Connection: close, or a request we could not parse
  bool waiting = false;
  asio::steady_timer wake;    // the reader waits here for commits to finish
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
  std::string loaded_from;  // for the startup log
  std::string scratch;      // replies sent at once are built here, no allocation

  // The committed list, in registration order, and its GET body.
  std::list<registry::entry> entries;
  std::unordered_map<std::string, std::list<registry::entry>::iterator> by_name;
  std::string list_body;      // `a@1.2.3.4:5,b@...,`
  bool list_body_stale = false;

  // Last member: destroyed first, while the state its results touch exists.
  std::unique_ptr<group_committer<store_type>> committer;

  void log(const std::string& line) const {
    if (config.log) config.log(line);
  }

  void add_entry(registry::entry e) {
    if (!list_body_stale) {
      list_body += registry::to_string(e);
      list_body += ',';
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
  const std::string& current_list() {
    if (list_body_stale) {
      list_body.clear();
      for (const auto& e : entries) {
        list_body += registry::to_string(e);
        list_body += ',';
      }
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
  void reject(session& s, const error& why);

  std::uint64_t add_slot(session& s, slot::state st, const reply_form& form);
  void reply(session& s, int status, std::string_view body, const reply_form& form,
             std::string_view extra_headers = {});
  void complete(session& s, std::uint64_t slot_number, std::string bytes);
  void flush(session& s);
  void send_now(session& s, std::string_view bytes);
  void append_list(std::string& out, const reply_form& form);
};

// ------------------------------------------------------------------ sessions

asio::awaitable<void> registry_server::impl::accept_loop() {
  while (!stopping) {
    // The limit is checked below, per newcomer, against the live sessions.
    // A named callable: g++ 12 mishandles temporaries inside co_await.
    std::function<std::size_t()> live = [] { return std::size_t{0}; };
    auto socket = co_await listener.accept(live, config.stream.max_connections);
    if (!socket) break;
    if (sessions.size() >= config.stream.max_connections) {
      std::error_code ignored;
      socket->close(ignored);  // refused at once rather than left waiting
      continue;
    }
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
    // Nothing more is read while a write of this connection is being
    // committed: its reply must not be refused because the peer's end of
    // stream (which closes our sending side once flushed) was read first.
    // Group commit still batches across connections.
    if (s->writes_pending > 0 || s->replies.size() >= config.max_pipelined) {
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
        reject(*s, got.error());
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
  // Replies still owed (commits in flight) go out before the close.
  while (!s->replies.empty() && conn.is_open()) co_await wait_for_replies(*s);
  if (conn.is_open()) conn.close_after_flush();
  sessions.erase(s);
}

void registry_server::impl::reject(session& s, const error& why) {
  s.stop_reading = true;
  int status = registry::to_wire(why.code());
  log(net::to_string(s.conn->remote()) + ": " + std::to_string(status) + " " +
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
    reply(*s, 404, "no such resource: " + wire::escape(req.target) + " (try /userlist.txt)\n",
          form);
    return;
  }
  if (req.method == "GET" || req.method == "HEAD") {
    if (!s->replies.empty()) {
      // Answered when it reaches the front, after this connection's writes.
      add_slot(*s, slot::state::listing, form);
      return;
    }
    // The hot path: straight from the list in memory to the connection.
    scratch.clear();
    append_list(scratch, form);
    send_now(*s, scratch);
    return;
  }
  if (req.method != "POST") {
    std::string allow = "Allow: " + std::string(allowed_methods) + "\r\n";
    reply(*s, 405, req.method.substr(0, 32) + " is not allowed here; use GET or POST\n", form,
          allow);
    return;
  }
  auto cmd = registry::parse_command(req.body);
  if (!cmd) {
    reply(*s, registry::to_wire(cmd.error().code()), cmd.error().message() + "\n", form);
    return;
  }
  auto number = add_slot(*s, slot::state::pending, form);
  ++s->writes_pending;
  ++pending_writes;
  asio::co_spawn(io, commit(s, number, std::move(*cmd)), asio::detached);
}

asio::awaitable<void> registry_server::impl::commit(std::shared_ptr<session> s,
                                                    std::uint64_t slot_number,
                                                    registry::command cmd) {
  bool is_register = cmd.kind == registry::command_kind::register_;
  store_type::operation op;
  if (is_register) {
    op = store_type::add_op{cmd.entry.user, cmd.entry.host, cmd.entry.port};
  } else {
    op = store_type::remove_op{cmd.entry.user, cmd.entry.host, cmd.entry.port};
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
    status = registry::to_wire(e.code());  // 406, 404; 500 for storage_error
    if (e == errc::name_taken) {
      body = "the name '" + cmd.entry.user + "' is already registered\n";
    } else if (e == errc::not_found) {
      body = registry::to_string(cmd.entry) + " is not registered\n";
    } else {
      body = e.message() + "\n";
    }
    log(what + ": " + std::to_string(status) + " (" + e.message() + ")");
  }
  --pending_writes;
  --s->writes_pending;
  std::string bytes;
  auto index = static_cast<std::size_t>(slot_number - s->first_slot);
  append_response(bytes, status, body, s->replies[index].form);
  complete(*s, slot_number, std::move(bytes));
}

// ------------------------------------------------------------------- replies

std::uint64_t registry_server::impl::add_slot(session& s, slot::state st, const reply_form& form) {
  s.replies.emplace_back();
  s.replies.back().st = st;
  s.replies.back().form = form;
  return s.first_slot + s.replies.size() - 1;
}

void registry_server::impl::reply(session& s, int status, std::string_view body,
                                  const reply_form& form, std::string_view extra_headers) {
  if (s.replies.empty()) {
    scratch.clear();
    append_response(scratch, status, body, form, extra_headers);
    send_now(s, scratch);
    return;
  }
  add_slot(s, slot::state::ready, form);
  append_response(s.replies.back().bytes, status, body, form, extra_headers);
}

void registry_server::impl::send_now(session& s, std::string_view bytes) {
  if (s.conn->is_open() && !s.conn->send(bytes)) {
    // It does not read its replies: nothing else bounds what we would hold.
    log(net::to_string(s.conn->remote()) + ": reply queue full, closing");
    s.conn->close();
  }
}

void registry_server::impl::complete(session& s, std::uint64_t slot_number, std::string bytes) {
  auto& sl = s.replies[static_cast<std::size_t>(slot_number - s.first_slot)];
  sl.st = slot::state::ready;
  sl.bytes = std::move(bytes);
  flush(s);
}

void registry_server::impl::flush(session& s) {
  while (!s.replies.empty() && s.replies.front().st != slot::state::pending) {
    auto& front = s.replies.front();
    if (front.st == slot::state::listing) append_list(front.bytes, front.form);
    send_now(s, front.bytes);
    s.replies.pop_front();
    ++s.first_slot;
  }
  if (s.waiting) s.wake.cancel();
}

void registry_server::impl::append_list(std::string& out, const reply_form& form) {
  const std::string& body = current_list();
  if (body.empty()) {
    // The seed clients read 400 as "no online users".
    append_response(out, 400, "no users are registered\n", form);
  } else {
    append_response(out, 200, body, form);
  }
}

// -------------------------------------------------------------------- public

registry_server::registry_server(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
registry_server::~registry_server() = default;

result<std::unique_ptr<registry_server>> registry_server::bind(asio::io_context& io,
                                                               registry_config config) {
  if (config.max_pipelined == 0) return fail(errc::invalid_config, "max_pipelined must be at least 1");
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
    // A session with replies owed is waiting for its commits; it closes
    // itself once they are sent. The others are blocked reading.
    if (s->replies.empty()) s->conn->close_after_flush();
  }
}

std::size_t registry_server::user_count() const { return impl_->entries.size(); }
std::size_t registry_server::connection_count() const { return impl_->sessions.size(); }
std::size_t registry_server::pending_writes() const { return impl_->pending_writes; }

}  // namespace improto::server

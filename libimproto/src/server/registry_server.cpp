#include "improto/server/registry_server.hpp"

#include <algorithm>
#include <list>
#include <optional>
#include <unordered_map>
#include <variant>

#include "improto/net/ordered_replies.hpp"
#include "improto/net/tcp_server.hpp"

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
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  }
  if (!address.is_v4()) return address.to_string();
  // Dotted quad by hand: to_string() goes through inet_ntop's sprintf, a
  // noticeable part of a change's user-space work (one per REGISTER/LOGOUT).
  std::string text;
  text.reserve(15);
  for (auto byte : address.to_v4().to_bytes()) {
    if (!text.empty()) text += '.';
    if (byte >= 100) text += static_cast<char>('0' + byte / 100);
    if (byte >= 10) text += static_cast<char>('0' + byte / 10 % 10);
    text += static_cast<char>('0' + byte % 10);
  }
  return text;
}

struct session : net::tcp_session {
  session(std::shared_ptr<net::tcp_connection> c,
          std::shared_ptr<const net::ordered_replies::settings> reply_settings)
      : tcp_session(std::move(c)), replies(std::move(reply_settings), conn) {}

  // A session with replies owed closes once they are sent (commit()); the
  // others are idle.
  void on_stop() override {
    if (replies.owed() == 0) conn->close_after_flush();
  }

  // Made when bytes arrive, dropped while the connection is parked.
  std::unique_ptr<registry::request_decoder> decoder;
  // In request order. A GET is answered when it reaches the front, so that
  // it sees the writes pipelined before it on this connection.
  net::ordered_replies replies;
  bool mid_message = false;   // bytes of an unfinished request are buffered
  bool stop_reading = false;  // Connection: close, or a request we could not parse
};

}  // namespace

namespace {
// A REGISTER/LOGOUT's completion: a callback, not a coroutine per request
// (no frame to allocate), and of its own type, so the committer queues it
// without a std::function's allocation. It owns the state (`self`), which
// may outlive the handle until it has run; the change's name and address
// come back with its operation, not as a copy of their own.
struct change_done {
  std::shared_ptr<registry_server::impl> self;
  std::shared_ptr<session> s;
  net::ordered_replies::slot slot;
  reply_form form;
  void operator()(result<void> done, store_type::operation& op);
};
}  // namespace

struct registry_server::impl : std::enable_shared_from_this<registry_server::impl> {
  impl(asio::io_context& io_context, registry_config cfg, net::tcp_server server,
       std::vector<store::registry_record> records, store_type st, commit_thread where)
      : io(io_context), config(std::move(cfg)), tcp(std::move(server)) {
    for (auto& r : records) add_entry({std::move(r.name), std::move(r.host), r.port});
    committer =
        std::make_unique<group_committer<store_type, change_done>>(io, std::move(st), 512, where);
  }

  asio::io_context& io;
  registry_config config;
  net::tcp_server tcp;
  std::size_t pending_writes = 0;
  std::size_t registers_pending = 0;  // REGISTERs being committed (max_users)
  std::string loaded_from;  // for the startup log
  // A database server: its failures are outages, answered 503 (retry).
  bool remote_store = false;
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

  // A client reading slowly gets its replies as it reads.
  std::shared_ptr<const net::ordered_replies::settings> reply_settings =
      std::make_shared<net::ordered_replies::settings>(net::ordered_replies::settings{
          io.get_executor(), config.stream.max_queued_bytes, net::ordered_replies::overflow::wait,
          config.log});

  // Last member: destroyed first, while the state its results touch exists.
  std::unique_ptr<group_committer<store_type, change_done>> committer;

  void log(std::string_view line) const { tcp.log(line); }

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

  asio::awaitable<void> run_session(std::shared_ptr<session> s);
  // Hands a REGISTER/LOGOUT to the committer; committed() answers it.
  void commit(const std::shared_ptr<session>& s, net::ordered_replies::slot slot,
              reply_form form, registry::command& cmd);
  void committed(const std::shared_ptr<session>& s, net::ordered_replies::slot slot,
                 const reply_form& form, store_type::operation& op, const result<void>& done);
  void handle(const std::shared_ptr<session>& s, const registry::request_view& req);
  void reject(const std::shared_ptr<session>& s, const error& why);

  void reply(const std::shared_ptr<session>& s, int status, std::string_view body,
             const reply_form& form, std::string_view extra_headers = {});
  net::ordered_replies::stream_body list_answer(std::string& head, const reply_form& form);
};

// A commit that does not wait (SQLite without an fsync per commit) is done
// on the io thread, once per turn: cheaper than two thread hand-offs. One
// that waits for fsync or for a database server has a worker, so that the io
// thread goes on serving meanwhile, unless the configuration trades that for
// CPU (commit_on_io, SQLite only: a database server's round trips would
// stall the io thread for nothing).
static commit_thread commit_thread_for(const registry_config& config) {
  bool remote_store = !config.store_url.empty();
  if (remote_store) return commit_thread::worker;
  bool waits = config.store.synchronous == store::sync_level::full ||
               config.store.synchronous == store::sync_level::extra;
  return waits && !config.commit_on_io ? commit_thread::worker : commit_thread::io;
}

// ------------------------------------------------------------------ sessions

asio::awaitable<void> registry_server::impl::run_session(std::shared_ptr<session> s) {
  auto& conn = *s->conn;
  std::optional<net::clock::time_point> linger_until;
  while (conn.is_open()) {
    // Nothing more is read while this connection's replies wait for the
    // peer to read (replies.blocked()): no point queueing more, and its end of
    // stream must not cut an answer short.
    if (s->replies.blocked() || s->replies.owed() >= config.max_pipelined) {
      co_await s->replies.wait();
      continue;
    }
    if (linger_until) {
      if (net::clock::now() >= *linger_until) break;
    } else if (s->stop_reading || tcp.stopping()) {
      break;
    }
    // Between requests with nothing owed: parked until bytes arrive, with
    // no coroutine, decoder or reply queue meanwhile.
    bool may_park = !linger_until && !s->mid_message && s->replies.owed() == 0;
    auto data = co_await conn.read(may_park);
    if (data && data->empty()) {
      s->decoder.reset();
      s->replies.release_if_idle();
      co_return;
    }
    if (!data) {
      if (data.error() == errc::timeout && s->mid_message) {
        log(net::to_string(conn.remote()) + ": dropped, no complete request within " +
            seconds_text(config.stream.message_timeout));
      }
      break;
    }
    if (linger_until) continue;  // discarding what follows a bad request
    std::string_view in = *data;
    if (!s->decoder) s->decoder = std::make_unique<registry::request_decoder>(config.http);
    while (!in.empty() && !s->stop_reading) {
      std::string_view before = in;
      auto got = s->decoder->next_view(in);
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
      // Views into `data`, valid until the decoder's next call.
      handle(s, **got);
    }
    conn.set_mid_message(s->mid_message);
  }
  // Replies still owed (commits in flight) go out before the close, also to
  // a peer that has shut down its sending side (read() leaves it writable).
  while (s->replies.owed() > 0 && conn.is_open()) co_await s->replies.wait();
  if (conn.is_open()) conn.close_after_flush();
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

// `req` points into the read buffer: nothing of it is kept past this call.
void registry_server::impl::handle(const std::shared_ptr<session>& s,
                                   const registry::request_view& req) {
  reply_form form;
  form.version = req.version;
  form.keep_alive = req.keep_alive() && !tcp.stopping();
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
    // Weak: the reply queue (the session's) must not own the server.
    s->replies.push_stream([server = weak_from_this(), form](std::string& head) {
      auto self = server.lock();
      return self ? self->list_answer(head, form) : net::ordered_replies::stream_body{};
    });
    return;
  }
  if (req.method != "POST") {
    std::string allow = "Allow: " + std::string(allowed_methods) + "\r\n";
    reply(s, 405, std::string(req.method.substr(0, 32)) + " is not allowed here; use GET or POST\n", form,
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
  auto slot = s->replies.reserve();
  ++pending_writes;
  commit(s, slot, form, *cmd);
}

void registry_server::impl::commit(const std::shared_ptr<session>& s,
                                   net::ordered_replies::slot slot, reply_form form,
                                   registry::command& cmd) {
  auto& e = cmd.entry;
  change_done done{shared_from_this(), s, slot, form};
  if (cmd.kind == registry::command_kind::register_) {
    committer->submit(store_type::add_op{std::move(e.user), std::move(e.host), e.port,
                                         origin_of(s->conn->remote())},
                      std::move(done));
    return;
  }
  // Checked by the store, in commit order: a REGISTER just ahead of this
  // LOGOUT in the same group is seen with its origin.
  std::optional<std::string> from;
  if (!config.logout_from_any) from = origin_of(s->conn->remote());
  committer->submit(
      store_type::remove_op{std::move(e.user), std::move(e.host), e.port, std::move(from)},
      std::move(done));
}

void change_done::operator()(result<void> done, store_type::operation& op) {
  self->committed(s, slot, form, op, done);
}

// Results arrive in commit order on the io thread, so the copy in memory
// replays the store's history exactly.
void registry_server::impl::committed(const std::shared_ptr<session>& s,
                                      net::ordered_replies::slot slot, const reply_form& form,
                                      store_type::operation& op, const result<void>& done) {
  const bool is_register = std::holds_alternative<store_type::add_op>(op);
  registry::entry entry = std::visit(
      [](auto& o) { return registry::entry{std::move(o.name), std::move(o.host), o.port}; }, op);
  int status = 200;
  std::string body;
  if (done) {
    if (is_register) {
      if (config.log && config.log_changes) {
        log("registered " + registry::to_string(entry) + " (from " +
            net::to_string(s->conn->remote()) + ")");
      }
      add_entry(std::move(entry));
    } else {
      if (config.log && config.log_changes) log("logged out " + registry::to_string(entry));
      remove_entry(entry.user);
    }
  } else {
    const auto& e = done.error();
    status = registry::to_wire(e.code());  // 403, 406, 404; 500 for storage_error
    if (e == errc::rejected) {
      body = "LOGOUT refused: " + e.detail() + "\n";
    } else if (e == errc::name_taken) {
      body = "the name '" + entry.user + "' is already registered\n";
    } else if (e == errc::not_found) {
      body = registry::to_string(entry) + " is not registered\n";
    } else if (e == errc::storage_error && remote_store) {
      // Not committed: the database is unreachable or failed. Its address
      // and message are for the log, not for clients.
      status = 503;
      body = "the registry's database is unavailable; try again later\n";
    } else {
      body = e.message() + "\n";
    }
    log((is_register ? "REGISTER " : "LOGOUT ") + registry::to_string(entry) + ": " +
        std::to_string(status) + " (" + e.message() + ")");
  }
  if (is_register) --registers_pending;
  --pending_writes;
  std::string bytes;
  append_response(bytes, status, body, form);
  s->replies.fill(slot, std::move(bytes));
  // stop() left open a session owed replies; it may be reading, not waiting.
  if (tcp.stopping() && s->replies.owed() == 0) s->conn->close_after_flush();
}

// ------------------------------------------------------------------- replies

void registry_server::impl::reply(const std::shared_ptr<session>& s, int status,
                                  std::string_view body, const reply_form& form,
                                  std::string_view extra_headers) {
  // Built here: no allocation when it goes out at once.
  scratch.clear();
  append_response(scratch, status, body, form, extra_headers);
  s->replies.push(scratch);
}

// The answer to a GET/HEAD reaching the front: its snapshot is taken now,
// after the writes before it on this connection.
net::ordered_replies::stream_body registry_server::impl::list_answer(std::string& head,
                                                                     const reply_form& form) {
  auto list = current_list();
  if (list->empty()) {
    // The seed clients read 400 as "no online users".
    append_response(head, 400, "no users are registered\n", form);
    return {};
  }
  append_head(head, 200, list->size(), form);
  std::size_t size = form.head ? 0 : list->size();
  return {std::move(list), size};
}

// -------------------------------------------------------------------- public

registry_server::registry_server(std::shared_ptr<impl> i) : impl_(std::move(i)) {}

// Stops, and lets the committer finish what it was given: its results are
// then queued on the io_context (run on its next turns, or freed with it),
// and it takes no more, so no thread posts to an io_context that may go.
// The sessions' coroutines own the state until they have ended.
registry_server::~registry_server() {
  stop();
  impl_->committer->close();
}

result<std::unique_ptr<registry_server>> registry_server::bind(asio::io_context& io,
                                                               registry_config config) {
  if (config.max_pipelined == 0) return fail(errc::invalid_config, "max_pipelined must be at least 1");
  if (config.max_users == 0) return fail(errc::invalid_config, "max_users must be at least 1");
  const auto where = commit_thread_for(config);
  auto store_options = config.store;
  // Commits on the io thread must never wait for another process's lock.
  if (where == commit_thread::io) store_options.exclusive = true;
  auto opened = config.store_url.empty()
                    ? store_type::open(config.data_dir / store_file_name, store_options)
                    : store_type::connect(config.store_url, store_options);
  if (!opened) return tl::unexpected(opened.error());
  const std::string location = opened->location();
  const bool shared = opened->shared();
  auto records = opened->list();
  if (!records) return tl::unexpected(records.error());
  net::tcp_server_options options;
  // Over the limit a newcomer learns why, rather than seeing a bare close.
  registry::write_response(options.refusal, 503, {}, false);
  options.log = config.log;
  options.defer_accept = config.defer_accept;
  auto server = net::tcp_server::bind(io, config.host, config.port, config.stream, options);
  if (!server) return tl::unexpected(server.error());
  auto state = std::make_shared<impl>(io, std::move(config), std::move(*server),
                                      std::move(*records), std::move(*opened), where);
  state->loaded_from = location;
  state->remote_store = shared;
  return std::unique_ptr<registry_server>(new registry_server(std::move(state)));
}

asio::ip::tcp::endpoint registry_server::local_endpoint() const {
  return impl_->tcp.local_endpoint();
}

void registry_server::start() {
  impl_->log("listening on " + net::to_string(local_endpoint()));
  std::size_t n = impl_->entries.size();
  impl_->log(std::to_string(n) + (n == 1 ? " user" : " users") + " registered in " +
             impl_->loaded_from);
  auto* state = impl_.get();
  // `state` outlives every call of the factory (see tcp_server::start).
  state->tcp.start(impl_, &impl::run_session, [state](std::shared_ptr<net::tcp_connection> c) {
    return std::make_shared<session>(std::move(c), state->reply_settings);
  });
}

void registry_server::stop() { impl_->tcp.stop(); }

std::size_t registry_server::user_count() const { return impl_->entries.size(); }
std::size_t registry_server::connection_count() const { return impl_->tcp.session_count(); }
std::size_t registry_server::pending_writes() const { return impl_->pending_writes; }

}  // namespace improto::server

#include "improto/server/buddy_server.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstring>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "improto/buddy/codes.hpp"
#include "improto/buddy/decoder.hpp"
#include "improto/net/tcp_server.hpp"
#include "improto/server/group_commit.hpp"
#include "improto/store/buddy_feed.hpp"
#include "improto/store/buddy_store.hpp"
#include "improto/wire/text.hpp"
#include "../buddy/udp_shape.hpp"
#include "datagram_cache.hpp"
#include "user_index.hpp"

namespace improto::server {
namespace {

using store_type = store::buddy_store;

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

// A registered user: the committed buddy list and the soft status.
struct user_record {
  explicit user_record(std::string name) : id(std::move(name)), valid_id(buddy::valid_user(id)) {
    reply_line = id + " 101 0.0.0.0 0\n";  // never seen: offline, no address
  }

  std::string id;
  // A userid by the protocol's rule, as every id registered over TCP is; a
  // datagram naming this id needs no check of its bytes (a store written by
  // other means could hold anything).
  bool valid_id;
  std::vector<user_record*> buddies;  // first added first, as the store keeps them
  bool seen = false;                  // has sent a SET since the server started
  buddy::presence status = buddy::presence::offline;
  net::clock::time_point online_until;
  asio::ip::address address;
  std::string ip;  // `address` as text, made only when it changes
  std::uint16_t port = 0;
  // Where the last SET that set `address` came from: a SET from that host
  // (any source port) that changes nothing else only moves the expiry.
  asio::ip::udp::endpoint source;
  // The SET datagram, byte for byte, that last gave this user the status and
  // port of `refresh_key` from `source`'s host, when it is short enough to
  // keep (0 bytes: none is kept). The same bytes from that host again are a
  // refresh, known without reading them (datagram_cache.hpp).
  std::uint8_t last_set_size = 0;
  std::array<char, detail::datagram_cache<user_record>::max_size> last_set;
  // This user's line in a GET reply, "id 10x ip port\n", made only when the
  // address or port changes; a GET sets the status digit (at id.size() + 3)
  // in its copy.
  std::string reply_line;
  // This user's GET reply as last made: the lines of the buddies that fit one
  // datagram, back to back, and where each one's status digit is. Valid while
  // `reply_epoch` is the server's `lines_epoch` (no line and no list has
  // changed since); made again on the first GET after.
  std::string reply;
  std::vector<std::uint32_t> reply_digits;  // one per buddy in `reply`, in order
  std::uint64_t reply_epoch = 0;
  std::chrono::system_clock::time_point set_at;  // the SET shown: the newest wins
  // refresh_key() of the last local SET, whose status and port are shown
  // and whose host is `source`'s; 0 (no SET's key) when none is, or when
  // every SET must be published (shared statuses).
  std::uint32_t refresh_key = 0;
  // Shared store: the feed's refresh number asked after this node last
  // changed the list; states read before it may predate that change.
  std::uint64_t refresh_ticket = 0;
};

struct session : net::tcp_session {
  using tcp_session::tcp_session;
  // Its request is queued for the store: answer it even when stopping.
  void on_stop() override {
    if (!committing) conn->close_after_flush();
  }
  bool committing = false;
};

// Same host, byte for byte, whatever the source port (the kernel writes
// every byte of the sockaddr it reports, padding zeroed): the first 16 bytes
// hold the family, then the port (bytes 2 and 3, masked out), then all of an
// IPv4 address; IPv6 has 12 more. The port is not part of what a SET shows
// (the address and the message port in the datagram), and a client that
// sends each SET from a new socket still refreshes.
// (The address's bytes have room for 28 whatever its size: net/udp.hpp.)
[[gnu::always_inline]] inline bool same_host(net::udp_address a,
                                             const asio::ip::udp::endpoint& b) noexcept {
  static_assert(sizeof(sockaddr_in6) == 28 && net::udp_address::capacity == 28);
  static_assert(offsetof(sockaddr_in, sin_port) == 2 && offsetof(sockaddr_in6, sin6_port) == 2);
  constexpr auto without_port = std::bit_cast<std::uint64_t>(
      std::array<unsigned char, 8>{0xff, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff});
  const auto* p = reinterpret_cast<const char*>(a.data());
  const auto* q = reinterpret_cast<const char*>(b.data());
  std::uint64_t x[2], y[2];
  std::memcpy(x, p, 16);
  std::memcpy(y, q, 16);
  if ((((x[0] ^ y[0]) & without_port) | (x[1] ^ y[1])) != 0) return false;
  if (a.is_v4()) return true;
  // No call to memcmp: the datagram path then needs no saved registers.
  std::uint64_t x2, y2;
  std::uint32_t x3, y3;
  std::memcpy(&x2, p + 16, 8);
  std::memcpy(&y2, q + 16, 8);
  std::memcpy(&x3, p + 24, 4);
  std::memcpy(&y3, q + 24, 4);
  return ((x2 ^ y2) | (x3 ^ y3)) == 0;
}

// A SET's status and port in one word, never 0 (the status is 100 or 101):
// a SET with the key of the last one shown changes neither.
constexpr std::uint32_t refresh_key(buddy::presence status, std::uint16_t msgport) noexcept {
  return static_cast<std::uint32_t>(status) << 16 | msgport;
}

// IPv4 clients of a dual-stack socket appear as ::ffff:a.b.c.d; their
// buddies must be told the plain IPv4 address.
asio::ip::address plain(const asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  }
  return a;
}

std::string request_text(const buddy::request& r) {
  std::string text;
  buddy::serialize_unchecked(r, text);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

std::string response_text(const buddy::response& r) {
  std::string text;
  buddy::serialize_unchecked(r, text);
  return text;
}

// ADD and DEL: which, and the two users they name.
struct buddy_change {
  bool add;
  const std::string& user;
  const std::string& buddy;
};
buddy_change change_of(const buddy::request& req) {
  if (const auto* a = std::get_if<buddy::add_request>(&req)) return {true, a->user, a->buddy};
  const auto& d = std::get<buddy::delete_request>(req);
  return {false, d.user, d.buddy};
}

}  // namespace

struct buddy_server::impl final : buddy_status_sink, std::enable_shared_from_this<impl> {
  impl(asio::io_context& io_context, buddy_config cfg, net::tcp_server server, net::udp_socket u)
      : io(io_context), config(std::move(cfg)), tcp(std::move(server)), udp(std::move(u)) {}

  asio::io_context& io;
  buddy_config config;
  net::tcp_server tcp;
  net::udp_socket udp;
  std::string store_location;
  // The store is shared with other nodes (PostgreSQL): the copy follows the
  // feed, and only the store decides ADD and DEL.
  bool shared = false;
  std::unique_ptr<group_committer<store_type>> committer;
  // Owns the records (which never move); `index` finds them (user_index.hpp
  // on why), and ensure() keeps both in step.
  std::unordered_map<std::string, user_record, string_hash, std::equal_to<>> users;
  detail::user_index<user_record> index;
  // Finds the user whose last SET a datagram repeats (user_record::last_set).
  detail::datagram_cache<user_record> refreshes;
  // Moves on whenever a reply line or a buddy list changes: every prepared
  // GET reply older than it is made again when next asked for.
  std::uint64_t lines_epoch = 1;
  // The datagram answers that never change, made once.
  const std::string invalid_reply = response_text(buddy::response::invalid());
  const std::string no_such_user_reply = response_text(buddy::response::no_such_user());

  void log(std::string_view line) const { tcp.log(line); }

  [[gnu::always_inline]] user_record* find(std::string_view id) const noexcept {
    return index.find(id);
  }

  result<void> load(store_type& st);

  asio::awaitable<void> run_session(std::shared_ptr<session> s);
  void serve(const std::shared_ptr<session>& s, buddy::request req);
  void committed(session& s, const buddy::request& req, const result<void>& done);
  std::optional<buddy::response> precheck(const buddy::request& req);
  void apply(const buddy::request& req);
  void answer(session& s, const buddy::request* req, const buddy::response& r,
              std::string_view why = {});

  // Owns the state while the UDP socket is served (until stop()).
  static asio::awaitable<void> serve_datagrams(std::shared_ptr<impl> self) {
    auto* state = self.get();
    // Named, not a temporary: see net/common.hpp on g++ 12.
    net::udp_socket::batch_handler on_batch = [state](std::span<const net::udp_datagram> batch,
                                                      net::udp_replies& replies) {
      state->on_batch(batch, replies);
    };
    auto served = self->udp.serve_batches(std::move(on_batch));
    co_await std::move(served);
  }
  // One call per batch; each datagram's path is inlined into the walk.
  void on_batch(std::span<const net::udp_datagram> batch, net::udp_replies& replies);
  // A datagram with `payload` and `from`: `cache_hash` is its hash in
  // `refreshes` when it may be kept as a user's last SET, else 0.
  struct datagram {
    std::string_view payload;
    net::udp_address from;
    std::uint64_t cache_hash;
  };
  // True when `payload` from `from` repeats the last SET of a user from the
  // same host and that status has not expired: the refresh is done. Sets
  // `cache_hash` for the datagram's further way.
  [[gnu::always_inline]] bool repeated_refresh(std::string_view payload, net::udp_address from,
                                               std::uint64_t& cache_hash);
  [[gnu::always_inline]] void on_datagram(const datagram& d, net::udp_replies& replies);
  // Out of line, so that the common datagrams' path saves no registers.
  [[gnu::noinline]] void on_other_datagram(const datagram& d, net::udp_replies& replies);
  // The refresh of a known user is inlined into on_datagram(); any change
  // goes to change_status().
  // (The fields by value: the request view stays in registers.)
  [[gnu::always_inline]] void on_set(user_record& u, buddy::presence status,
                                     std::uint16_t msgport, const datagram& d);
  [[gnu::noinline]] void change_status(user_record& u, buddy::presence status,
                                       std::uint16_t msgport, const datagram& d);
  // Keeps `d` as `u`'s last SET (or none, when it cannot be kept).
  void remember_set(user_record& u, const datagram& d);
  void forget_set(user_record& u);
  void on_get(user_record& u, net::udp_address from, net::udp_replies& replies);
  [[gnu::noinline]] void prepare_reply(user_record& u);

  user_record& ensure(const std::string& id) {
    auto [it, added] = users.try_emplace(id, id);
    if (added) {
      index.insert(&it->second);
      refreshes.reserve(users.size());
    }
    return it->second;
  }
  void on_feed(store::buddy_feed::event e);
  void set_list(const store::buddy_feed::user_state& s);

  // Posted feed events check it: they may outlive the server.
  std::shared_ptr<char> alive = std::make_shared<char>();
  // Last: stopped (its thread joined) before anything it reports to goes.
  std::unique_ptr<store::buddy_feed> feed;

  // Shared statuses (share_status): every node's SETs, this one's included.
  void apply(const buddy_status_update& u) override;
  void set_status(user_record& u, bool online, const asio::ip::address& address,
                  std::uint16_t port, net::clock::time_point now, net::clock::time_point until);
  // Last, after the feed: it may call back into the members above until it is gone.
  std::unique_ptr<buddy_status_store> shared_status;
};

// ------------------------------------------------------------------- startup

result<void> buddy_server::impl::load(store_type& st) {
  auto ids = st.users();
  if (!ids) return tl::unexpected(ids.error());
  users.reserve(ids->size());
  for (const auto& id : *ids) ensure(id);
  for (auto& [id, record] : users) {
    auto list = st.buddies(id);
    if (!list) return tl::unexpected(list.error());
    record.buddies.reserve(list->size());
    for (const auto& b : *list) {
      if (auto* other = find(b)) record.buddies.push_back(other);
    }
  }
  return {};
}

// ------------------------------------------------------------------------ TCP

asio::awaitable<void> buddy_server::impl::run_session(std::shared_ptr<session> s) {
  auto& conn = *s->conn;
  buddy::request_decoder decoder(config.wire);
  bool started = false;  // bytes of the request have arrived
  while (conn.is_open()) {
    // Silent so far: parked until bytes arrive, with no coroutine (and no
    // decoder) meanwhile; woken, this coroutine starts afresh.
    auto data = co_await conn.read(!started);
    if (data && data->empty()) co_return;
    if (!data) {
      if (data.error() == errc::timeout) {
        log(net::to_string(conn.remote()) + ": no complete request in time, dropped");
      } else if (auto end = decoder.finish(); !end) {
        // The request was cut short: acting on "REG ali" of "REG alice" is wrong.
        log(net::to_string(conn.remote()) + ": " + end.error().message());
      }
      break;
    }
    started = true;
    std::string_view in = *data;
    auto r = decoder.next(in);
    if (!r) {
      // Bad syntax, an unknown verb or a line over the limit: all are 201.
      answer(*s, nullptr, buddy::response::invalid(), r.error().message());
      break;
    }
    if (!*r) {
      conn.set_mid_message(true);
      continue;
    }
    // One request per connection: whatever follows it is ignored.
    conn.set_mid_message(false);
    serve(s, std::move(**r));
    break;
  }
  // A change being committed is answered (and closed) by its completion.
  if (conn.is_open() && !s->committing) conn.close_after_flush();
  // Until the writer has sent the answer and closed: the session still
  // counts for a graceful stop, and bytes the peer sends meanwhile are read
  // and dropped, since closing with unread bytes would reset the connection
  // (and could discard the answer).
  while (conn.is_open() && !conn.peer_finished()) {
    auto more = co_await conn.read();
    if (!more) break;
  }
}

// Answers at once, or queues the change for the store; then the answer
// comes from committed(), run in commit order on the io thread by the
// committer's batch itself (a callback, no coroutine to resume per change).
void buddy_server::impl::serve(const std::shared_ptr<session>& s, buddy::request req) {
  if (auto early = precheck(req)) {
    answer(*s, &req, *early);
    return;
  }
  store_type::operation op;
  if (const auto* reg = std::get_if<buddy::register_request>(&req)) {
    op = store_type::add_user_op{reg->user};
  } else if (const auto* add = std::get_if<buddy::add_request>(&req)) {
    op = store_type::add_buddy_op{add->user, add->buddy};
  } else {
    const auto& del = std::get<buddy::delete_request>(req);
    op = store_type::remove_buddy_op{del.user, del.buddy};
  }
  s->committing = true;
  // It owns the state and the session, which may outlive the handle and
  // run_session until it has run.
  committer->submit(std::move(op), [self = shared_from_this(), s,
                                    req = std::move(req)](result<void> done) {
    self->committed(*s, req, done);
  });
}

void buddy_server::impl::committed(session& s, const buddy::request& req,
                                   const result<void>& done) {
  s.committing = false;
  if (done) {
    apply(req);
    answer(s, &req, buddy::response::ok());
    return;
  }
  if (auto code = buddy::to_wire(done.error().code())) {
    answer(s, &req, *code);
    return;
  }
  if (shared && done.error() == errc::storage_error) {
    // The database is unreachable or failed: not committed. The protocol
    // has no code for it; clients read any code but 200 as a failure.
    answer(s, &req, buddy::response{503, "UNAVAILABLE"}, done.error().message());
    return;
  }
  // Not committed, and the protocol has no code for it: no answer at all
  // rather than one that could be taken for success.
  log(net::to_string(s.conn->remote()) + " " + request_text(req) +
      ": not answered: " + done.error().message());
  s.conn->close();
}

// Answers from the in-memory copy what needs no write. It holds committed
// state only, so "already there" is already durable, and "unknown" is right
// for a user whose REG has not been answered yet. A shared store's copy may
// lag behind other nodes: only "registered" is certain there (users are
// never removed), the rest is the store's to say.
std::optional<buddy::response> buddy_server::impl::precheck(const buddy::request& req) {
  if (const auto* reg = std::get_if<buddy::register_request>(&req)) {
    if (find(reg->user)) return buddy::response::user_exists();
    return std::nullopt;
  }
  if (shared) return std::nullopt;
  auto [add, user, buddy_id] = change_of(req);
  auto* u = find(user);
  auto* b = find(buddy_id);
  if (!u || !b) return buddy::response::no_such_user();
  bool listed = std::find(u->buddies.begin(), u->buddies.end(), b) != u->buddies.end();
  if (add == listed) return buddy::response::ok();  // ADD twice, or DEL of a non-buddy
  return std::nullopt;
}

// Mirrors a committed change in memory; commits resume in commit order.
void buddy_server::impl::apply(const buddy::request& req) {
  if (const auto* reg = std::get_if<buddy::register_request>(&req)) {
    ensure(reg->user);
    return;
  }
  auto [add, user, buddy_id] = change_of(req);
  auto* u = find(user);
  auto* b = find(buddy_id);
  if (shared) {
    // Another node's REG may not have reached the copy yet; the store knew both.
    u = &ensure(user);
    b = &ensure(buddy_id);
  }
  if (!u || !b) return;  // the store knew both; a REG commits before anything naming it
  auto it = std::find(u->buddies.begin(), u->buddies.end(), b);
  if (add && it == u->buddies.end()) {
    u->buddies.push_back(b);
    ++lines_epoch;
  }
  if (!add && it != u->buddies.end()) {
    u->buddies.erase(it);
    ++lines_epoch;
  }
  // Another node may have changed this list just after us: the database,
  // read after this, has the last word; states read before are stale.
  if (feed) u->refresh_ticket = feed->refresh(user);
}

// The database's state of one user's list replaces the copy's.
void buddy_server::impl::set_list(const store::buddy_feed::user_state& st) {
  auto& u = ensure(st.userid);
  if (st.refreshes_seen < u.refresh_ticket) return;  // read before our own change
  u.buddies.clear();
  u.buddies.reserve(st.buddies.size());
  for (const auto& b : st.buddies) u.buddies.push_back(&ensure(b));
  ++lines_epoch;
}

void buddy_server::impl::on_feed(store::buddy_feed::event e) {
  if (auto* one = std::get_if<store::buddy_feed::user_state>(&e)) {
    set_list(*one);
    return;
  }
  // After (re)connecting: everything. Users are never removed.
  for (const auto& st : std::get<store::buddy_feed::snapshot>(e).users) set_list(st);
}

void buddy_server::impl::answer(session& s, const buddy::request* req, const buddy::response& r,
                                std::string_view why) {
  std::string line = response_text(r);
  s.conn->send(line);
  line.pop_back();
  log(net::to_string(s.conn->remote()) + (req ? " " + request_text(*req) : std::string()) +
      ": " + line + (why.empty() ? std::string() : " (" + std::string(why) + ")"));
  // The writer sends the answer, then closes.
  s.conn->close_after_flush();
}

// ------------------------------------------------------------------------ UDP

void buddy_server::impl::on_batch(std::span<const net::udp_datagram> batch,
                                  net::udp_replies& replies) {
  for (const auto& d : batch) {
    std::uint64_t cache_hash;
    if (repeated_refresh(d.payload, d.from, cache_hash)) continue;
    on_datagram({d.payload, d.from, cache_hash}, replies);
  }
}

inline bool buddy_server::impl::repeated_refresh(std::string_view payload, net::udp_address from,
                                                 std::uint64_t& cache_hash) {
  using cache = detail::datagram_cache<user_record>;
  const std::size_t n = payload.size();
  cache_hash = 0;
  if (n < cache::min_size || n > cache::max_size ||
      buddy::detail::load32(payload.data()) != buddy::detail::le32("SET ")) {
    return false;
  }
  cache_hash = refreshes.hash(payload);
  user_record* u = refreshes.find(cache_hash);
  // The same bytes as the SET that set the status shown read the same way
  // (same user, status and port): what on_set() decides from those, and
  // from the host, is all that is left to check.
  if (!u || u->last_set_size != n || !detail::equal_bytes(u->last_set.data(), payload.data(), n) ||
      !same_host(from, u->source)) {
    return false;
  }
  const auto now = udp.batch_time();
  if (u->status == buddy::presence::online && config.status_ttl.count() > 0 &&
      now >= u->online_until) {
    return false;  // expired: coming back online is news
  }
  u->online_until = now + config.status_ttl;
  return true;
}

inline void buddy_server::impl::on_datagram(const datagram& d, net::udp_replies& replies) {
  // Read in place: nothing is copied or allocated per datagram. The shapes
  // clients send are read first without classifying the id's bytes: found
  // among the users, and valid there, it is a userid, and the general
  // reading would give the same fields.
  buddy::udp_request_view shape;
  if (buddy::detail::read_common_shape<false>(d.payload, shape)) {
    if (auto* u = find(shape.user); u && u->valid_id) {
      if (shape.verb == buddy::udp_verb::set) {
        on_set(*u, shape.status, shape.msgport, d);
      } else {
        on_get(*u, d.from, replies);
      }
      return;
    }
  }
  on_other_datagram(d, replies);
}

// Anything else, and ids not found: the whole reading decides.
void buddy_server::impl::on_other_datagram(const datagram& d, net::udp_replies& replies) {
  const auto req = buddy::parse_udp_request_view(d.payload);
  if (!req.valid) {
    // SET is never answered, not even a bad one; anything else gets what a
    // bad GET gets.
    if (req.verb != buddy::udp_verb::set) replies.send(invalid_reply, d.from);
    return;
  }
  // No reply to SET; statuses are kept for registered users only.
  auto* u = find(req.user);
  if (req.verb == buddy::udp_verb::set) {
    if (u) on_set(*u, req.status, req.msgport, d);
  } else if (!u) {
    replies.send(no_such_user_reply, d.from);
  } else {
    on_get(*u, d.from, replies);
  }
}

inline void buddy_server::impl::on_set(user_record& u, buddy::presence status,
                                       std::uint16_t msgport, const datagram& d) {
  const auto now = udp.batch_time();
  // The common SET, a refresh: same status, port and host (one key and
  // the address bytes), not expired. It is not news, so only the expiry moves.
  if (refresh_key(status, msgport) == u.refresh_key && same_host(d.from, u.source) &&
      (status != buddy::presence::online || config.status_ttl.count() <= 0 ||
       now < u.online_until)) {
    u.online_until = now + config.status_ttl;
    // Its bytes may differ from the kept ones ("ONLINE" for "100"), or the
    // cache may have lost the user: either way these are the next repeat's.
    remember_set(u, d);
    return;
  }
  change_status(u, status, msgport, d);
}

void buddy_server::impl::remember_set(user_record& u, const datagram& d) {
  if (std::string_view(u.last_set.data(), u.last_set_size) != d.payload) forget_set(u);
  // Shared statuses publish every SET: none is a mere refresh there.
  if (d.cache_hash == 0 || shared_status) return;
  std::memcpy(u.last_set.data(), d.payload.data(), d.payload.size());
  u.last_set_size = static_cast<std::uint8_t>(d.payload.size());
  refreshes.put(d.cache_hash, &u);
}

void buddy_server::impl::forget_set(user_record& u) {
  if (u.last_set_size == 0) return;
  refreshes.erase(refreshes.hash({u.last_set.data(), u.last_set_size}), &u);
  u.last_set_size = 0;
}

void buddy_server::impl::change_status(user_record& u, buddy::presence status,
                                       std::uint16_t msgport, const datagram& d) {
  const auto now = udp.batch_time();
  const bool online = status == buddy::presence::online;
  u.source = d.from.endpoint();
  const auto address = plain(u.source.address());
  if (shared_status) {
    u.set_at = buddy_status_update::stamp_now();
    shared_status->put({u.id, online, address.to_string(), msgport, u.set_at});
  }
  set_status(u, online, address, msgport, now, now + config.status_ttl);
  // Shared statuses publish every SET: none is a mere refresh there.
  u.refresh_key = shared_status ? 0 : refresh_key(status, msgport);
  remember_set(u, d);
}

void buddy_server::impl::apply(const buddy_status_update& update) {
  auto* u = find(update.user);
  if (!u || update.at < u->set_at) return;  // older than what we show
  std::error_code ec;
  auto address = asio::ip::make_address(update.ip, ec);
  if (ec) return;
  u->set_at = update.at;
  u->source = {};  // from another node: no local SET matches it
  u->refresh_key = 0;
  forget_set(*u);
  // The TTL counts from the SET, on whichever node it was made.
  auto age = std::chrono::system_clock::now() - update.at;
  auto now = net::clock::now();
  auto until = now + config.status_ttl - std::chrono::duration_cast<net::clock::duration>(age);
  set_status(*u, update.online, address, update.port, now, until);
}

void buddy_server::impl::set_status(user_record& u, bool online,
                                    const asio::ip::address& address, std::uint16_t msgport,
                                    net::clock::time_point now, net::clock::time_point until) {
  bool was_online = u.seen && u.status == buddy::presence::online &&
                    (config.status_ttl.count() <= 0 || now < u.online_until);
  bool moved = !u.seen || address != u.address || msgport != u.port;
  if (address != u.address || !u.seen) {
    u.address = address;
    u.ip = address.to_string();
  }
  if (moved) {
    u.reply_line.assign(u.id);
    u.reply_line += " 101 ";
    u.reply_line += u.ip;
    u.reply_line += ' ';
    wire::append_decimal(u.reply_line, msgport);
    u.reply_line += '\n';
    ++lines_epoch;
  }
  u.seen = true;
  u.status = online ? buddy::presence::online : buddy::presence::offline;
  u.port = msgport;
  u.online_until = until;
  // Refreshes are the common case and are not news.
  if (online != was_online || (online && moved)) {
    log(u.id + (online ? " online at " + u.ip + " port " + std::to_string(u.port)
                       : std::string(" offline")));
  }
}

// The reply is written straight into the batch's send buffer: the user's
// prepared lines in one copy, then each buddy's status as of this batch.
void buddy_server::impl::on_get(user_record& u, net::udp_address from,
                                net::udp_replies& replies) {
  if (u.reply_epoch != lines_epoch) prepare_reply(u);
  const auto now = udp.batch_time();
  const bool ttl = config.status_ttl.count() > 0;
  std::string& out = replies.begin(from);
  const std::size_t at = out.size();
  out += u.reply;
  char* const w = out.data() + at;
  const std::uint32_t* digit = u.reply_digits.data();
  const std::size_t fit = u.reply_digits.size();  // the first `fit` buddies
  for (std::size_t i = 0; i < fit; ++i) {
    const user_record* b = u.buddies[i];
    // Online only after a SET (never seen: offline at 0.0.0.0 port 0, its
    // initial line); "100" online, "101" offline: the last digit tells them apart.
    const bool online = b->status == buddy::presence::online && (!ttl || now < b->online_until);
    w[digit[i]] = online ? '0' : '1';
  }
}

// One datagram is all the protocol has: a list too long for it is cut.
void buddy_server::impl::prepare_reply(user_record& u) {
  u.reply.clear();
  u.reply_digits.clear();
  for (const user_record* b : u.buddies) {
    if (u.reply.size() + b->reply_line.size() > buddy::max_datagram) break;
    u.reply_digits.push_back(static_cast<std::uint32_t>(u.reply.size() + b->id.size() + 3));
    u.reply += b->reply_line;
  }
  u.reply_epoch = lines_epoch;
}

// --------------------------------------------------------------------- public

buddy_server::buddy_server(std::shared_ptr<impl> i) : impl_(std::move(i)) {}

// Stops, and lets the committer finish what it was given: its results are
// then queued on the io_context (run on its next turns, or freed with it),
// and it takes no more, so no thread posts to an io_context that may go.
// The coroutines (sessions, UDP) own the state until they have ended.
buddy_server::~buddy_server() {
  stop();
  impl_->committer->close();
  // What other threads call back from goes now, while the io_context they
  // post to is sure to exist; sessions that outlive the handle see neither.
  impl_->shared_status.reset();
  impl_->feed.reset();
}

result<std::unique_ptr<buddy_server>> buddy_server::bind(asio::io_context& io,
                                                         buddy_config config) {
  net::tcp_server_options options;
  // The buddy protocol has no "busy" answer: over the limit a newcomer is
  // closed without one (see docs/protocols.md).
  options.log = config.log;
  auto server = net::tcp_server::bind(io, config.host, config.tcp_port, config.stream, options);
  if (!server) return tl::unexpected(server.error());
  auto udp = net::udp_socket::bind(io, config.host, config.udp_port, config.datagram);
  if (!udp) return tl::unexpected(udp.error());
  auto st = config.store_url.empty()
                ? store_type::open(config.data_dir / "buddy.sqlite3", config.store)
                : store_type::connect(config.store_url, config.store);
  if (!st) return tl::unexpected(st.error());
  auto state =
      std::make_shared<impl>(io, std::move(config), std::move(*server), std::move(*udp));
  state->store_location = st->location();
  state->shared = st->shared();
  if (auto loaded = state->load(*st); !loaded) return tl::unexpected(loaded.error());
  if (state->shared) {
    // Events come on the feed's thread; the copy lives on the io thread.
    std::weak_ptr<char> alive = state->alive;
    auto* raw = state.get();
    store::buddy_feed::callbacks cb;
    cb.on_event = [&io, alive, raw](store::buddy_feed::event e) {
      asio::post(io, [alive, raw, e = std::move(e)]() mutable {
        if (alive.lock()) raw->on_feed(std::move(e));
      });
    };
    cb.log = [&io, alive, raw](std::string line) {
      asio::post(io, [alive, raw, line = std::move(line)] {
        if (alive.lock()) raw->log(line);
      });
    };
    auto feed = store::buddy_feed::start(state->config.store_url, std::move(cb),
                                         state->config.store);
    if (!feed) return tl::unexpected(feed.error());
    state->feed = std::move(*feed);
  }
  state->committer = std::make_unique<group_committer<store_type>>(io, std::move(*st));
  return std::unique_ptr<buddy_server>(new buddy_server(std::move(state)));
}

asio::ip::tcp::endpoint buddy_server::tcp_endpoint() const {
  return impl_->tcp.local_endpoint();
}

asio::ip::udp::endpoint buddy_server::udp_endpoint() const { return impl_->udp.local_endpoint(); }

void buddy_server::share_status(std::unique_ptr<buddy_status_store> status) {
  impl_->shared_status = std::move(status);
}

void buddy_server::start() {
  if (impl_->shared_status) impl_->shared_status->start(*impl_);
  impl_->log("listening on " + net::to_string(tcp_endpoint()));
  impl_->log("listening on " + net::to_string(udp_endpoint()));
  impl_->log("data " + impl_->store_location + ": " + std::to_string(impl_->users.size()) +
             " users; status TTL " +
             std::to_string(
                 std::chrono::duration_cast<std::chrono::seconds>(impl_->config.status_ttl)
                     .count()) +
             " s");
  impl_->tcp.start(impl_, &impl::run_session, [](std::shared_ptr<net::tcp_connection> c) {
    return std::make_shared<session>(std::move(c));
  });
  asio::co_spawn(impl_->io, impl::serve_datagrams(impl_), asio::detached);
}

void buddy_server::stop() {
  if (impl_->tcp.stopping()) return;
  if (impl_->shared_status) impl_->shared_status->stop();
  impl_->tcp.stop();
  impl_->udp.close();
  if (auto dropped = dropped_datagrams(); dropped > 0) {
    impl_->log("dropped " + std::to_string(impl_->udp.dropped_rate()) +
               " datagrams over the per-source rate and " +
               std::to_string(impl_->udp.dropped_oversized()) + " oversized ones");
  }
}

std::size_t buddy_server::user_count() const { return impl_->users.size(); }
std::size_t buddy_server::connection_count() const { return impl_->tcp.session_count(); }
std::uint64_t buddy_server::dropped_datagrams() const {
  return impl_->udp.dropped_rate() + impl_->udp.dropped_oversized();
}

}  // namespace improto::server

#include "improto/client/relay_client.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <deque>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "improto/net/tcp.hpp"
#include "improto/net/transfer.hpp"
#include "improto/transfer/file.hpp"
#include "improto/relay/codes.hpp"
#include "improto/relay/decoder.hpp"
#include "improto/relay/messages.hpp"

namespace improto::client {
namespace {

// One socket with its decoder and the requests awaiting replies on it, in
// order (the server answers in request order).
struct channel {
  struct waiter {
    explicit waiter(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    std::optional<result<relay::message>> reply;
  };

  channel(std::shared_ptr<net::tcp_connection> c, const wire::limits& lim)
      : conn(std::move(c)), decoder(relay::direction::to_client, lim) {}

  std::shared_ptr<net::tcp_connection> conn;
  relay::decoder decoder;
  std::deque<std::shared_ptr<waiter>> waiters;

  void resolve_next(result<relay::message> reply) {
    if (waiters.empty()) return;
    auto w = std::move(waiters.front());
    waiters.pop_front();
    w->reply = std::move(reply);
    w->timer.cancel();
  }
  void fail_all(const error& why) {
    while (!waiters.empty()) resolve_next(tl::unexpected(why));
  }
};

bool is_notice(const relay::message& m) {
  return std::holds_alternative<relay::forward>(m) || std::holds_alternative<relay::joined>(m) ||
         std::holds_alternative<relay::left>(m);
}

struct part_meta {
  std::uint64_t size = 0;
  std::string sha256;
};

// NAME.part.sha256: "<size> <sha256>\n", the server's file the part belongs to.
std::optional<part_meta> read_meta(const std::filesystem::path& p) {
  std::ifstream in(p);
  part_meta m;
  if (!(in >> m.size >> m.sha256) || m.sha256.size() != 64) return std::nullopt;
  return m;
}

bool write_meta(const std::filesystem::path& p, std::uint64_t size, const std::string& sha) {
  std::ofstream out(p, std::ios::trunc);
  out << size << ' ' << sha << '\n';
  return static_cast<bool>(out.flush());
}

struct active_download {
  download_progress progress;
  // Weak: the link's progress callback holds this entry.
  std::weak_ptr<net::transfer_link> link;
  std::optional<error> stop_reason;  // the connection to the server ended
  bool cancelled = false;            // by the user: the .part goes too
};

struct completion {
  explicit completion(const asio::any_io_executor& ex) : timer(ex) {
    timer.expires_at(asio::steady_timer::time_point::max());
  }
  asio::steady_timer timer;
  std::optional<result<void>> outcome;
};

net::stream_limits client_limits() {
  net::stream_limits s;
  s.idle_timeout = std::chrono::milliseconds(0);  // a chat client may be quiet for hours
  return s;
}

}  // namespace

struct relay_client::impl {
  impl(std::string name, relay_events ev, relay_options opt,
       std::shared_ptr<net::tcp_connection> send_conn,
       std::shared_ptr<net::tcp_connection> recv_conn)
      : user(std::move(name)),
        events(std::move(ev)),
        options(std::move(opt)),
        sending(std::move(send_conn), options.wire),
        receiving(std::move(recv_conn), options.wire) {}

  std::string user;
  relay_events events;
  relay_options options;
  channel sending, receiving;
  bool closed = false;
  std::map<std::uint32_t, std::shared_ptr<active_download>> active;
  std::set<std::filesystem::path> targets;  // NAME paths being downloaded

  asio::awaitable<result<relay::message>> request(channel& ch, const relay::message& m) {
    if (closed) co_return fail(errc::connection_closed, "the client is closed");
    auto w = std::make_shared<channel::waiter>(co_await asio::this_coro::executor);
    w->timer.expires_after(options.reply_timeout);
    // Checked: a field the server would read differently (a recipient with a
    // line break, say) fails here, before a byte is written.
    std::string bytes;
    if (auto ok = relay::serialize(m, bytes, options.wire); !ok) {
      co_return tl::unexpected(ok.error());
    }
    if (!ch.conn->send(std::move(bytes))) {
      co_return fail(errc::overloaded, "too much unsent data queued for the server");
    }
    ch.waiters.push_back(w);
    co_await w->timer.async_wait(net::use_nothrow);
    // On a timeout the waiter stays queued, so a late reply still lines up.
    if (!w->reply) co_return fail(errc::timeout, "no reply from the server in time");
    co_return std::move(*w->reply);
  }

  void shut(const error& why) {
    bool first = !closed;
    closed = true;
    sending.conn->close();
    receiving.conn->close();
    sending.fail_all(why);
    receiving.fail_all(why);
    // Downloads cannot be paused, resumed or cancelled any more; they end
    // (their .part files stay for a later resume).
    auto downloads = std::move(active);
    active.clear();
    for (auto& [id, d] : downloads) {
      d->stop_reason = error(errc::connection_closed,
                             "the connection to the server was lost: " + why.message());
      if (auto l = d->link.lock()) l->close();
    }
    if (first && events.on_closed) events.on_closed(why);
  }

  void on_notice(relay::message& m) {
    if (auto* f = std::get_if<relay::forward>(&m)) {
      // Acknowledge before showing it: the sender waits for our RECEIVED.
      // The server's own FORWARD line, read back: writable as it is.
      receiving.conn->send(relay::serialize_unchecked(relay::received{f->from}));
      if (events.on_message) events.on_message(f->from, f->body);
    } else if (auto* j = std::get_if<relay::joined>(&m)) {
      if (events.on_presence) events.on_presence(j->user, true);
    } else if (auto* l = std::get_if<relay::left>(&m)) {
      if (events.on_presence) events.on_presence(l->user, false);
    }
  }

  asio::awaitable<void> read_loop(channel& ch) {
    while (true) {
      auto data = co_await ch.conn->read();
      if (!data) {
        shut(closed ? error(errc::connection_closed, "closed") : data.error());
        co_return;
      }
      std::string_view in = *data;
      while (!in.empty()) {
        auto r = ch.decoder.next(in);
        if (!r) {
          if (ch.decoder.failed()) {
            shut(error(r.error().code(), "bad data from the server: " + r.error().message()));
            co_return;
          }
          ch.resolve_next(tl::unexpected(r.error()));
          continue;
        }
        if (!*r) break;
        if (is_notice(**r)) {
          on_notice(**r);
        } else {
          ch.resolve_next(std::move(**r));
        }
      }
    }
  }

  // A reply that is not `Expected` becomes an error for the caller.
  template <class Expected>
  static result<Expected> expect(result<relay::message> reply) {
    if (!reply) return tl::unexpected(reply.error());
    if (auto* ok = std::get_if<Expected>(&*reply)) return std::move(*ok);
    if (auto* err = std::get_if<relay::error_reply>(&*reply)) {
      return tl::unexpected(relay::from_wire(*err));
    }
    return fail(errc::rejected, "unexpected reply: " + relay::describe(*reply));
  }
};

relay_client::relay_client(std::unique_ptr<impl> state) : impl_(std::move(state)) {}
relay_client::~relay_client() = default;

asio::awaitable<result<std::shared_ptr<relay_client>>> relay_client::connect(
    std::string host, std::uint16_t port, std::string user, relay_events events,
    relay_options options) {
  static const net::stream_limits limits = client_limits();
  auto first = co_await net::connect(host, port, options.connect_timeout);
  if (!first) co_return tl::unexpected(first.error());
  auto second = co_await net::connect(host, port, options.connect_timeout);
  if (!second) co_return tl::unexpected(second.error());
  auto send_conn = std::make_shared<net::tcp_connection>(std::move(*first), limits);
  auto recv_conn = std::make_shared<net::tcp_connection>(std::move(*second), limits);
  send_conn->start();
  recv_conn->start();
  auto client = std::make_shared<relay_client>(std::make_unique<impl>(
      std::move(user), std::move(events), std::move(options), send_conn, recv_conn));
  auto executor = co_await asio::this_coro::executor;
  auto* state = client->impl_.get();
  asio::co_spawn(executor, [client, state]() { return state->read_loop(state->sending); },
                 asio::detached);
  asio::co_spawn(executor, [client, state]() { return state->read_loop(state->receiving); },
                 asio::detached);

  for (auto role : {relay::role::to_send, relay::role::to_recv}) {
    auto& ch = role == relay::role::to_send ? state->sending : state->receiving;
    relay::message request = relay::register_request{role, state->user};
    auto answer = co_await state->request(ch, request);
    auto reply = impl::expect<relay::registered>(std::move(answer));
    if (!reply) {
      client->close();
      co_return tl::unexpected(reply.error());
    }
  }
  co_return client;
}

asio::awaitable<result<void>> relay_client::send(std::string_view to, std::string_view body) {
  relay::message request = relay::send{std::string(to), std::string(body)};
  auto answer = co_await impl_->request(impl_->sending, request);
  auto reply = impl::expect<relay::sent>(std::move(answer));
  if (!reply) co_return tl::unexpected(reply.error());
  co_return result<void>{};
}

asio::awaitable<result<std::vector<std::string>>> relay_client::users() {
  std::vector<std::string> all;
  std::string after;
  while (true) {
    relay::message request = relay::list_users{after};
    auto answer = co_await impl_->request(impl_->sending, request);
    auto page = impl::expect<relay::user_list>(std::move(answer));
    if (!page) co_return tl::unexpected(page.error());
    for (auto& u : page->users) all.push_back(std::move(u));
    if (!page->more || all.empty()) break;
    after = all.back();
  }
  co_return all;
}

asio::awaitable<result<std::vector<std::pair<std::uint64_t, std::string>>>> relay_client::files() {
  std::vector<std::pair<std::uint64_t, std::string>> all;
  std::string after;
  while (true) {
    relay::message request = relay::list_files{after};
    auto answer = co_await impl_->request(impl_->sending, request);
    auto page = impl::expect<relay::file_list>(std::move(answer));
    if (!page) co_return tl::unexpected(page.error());
    for (auto& f : page->files) all.emplace_back(f.size, std::move(f.name));
    if (!page->more || all.empty()) break;
    after = all.back().second;
  }
  co_return all;
}

asio::awaitable<result<void>> relay_client::subscribe_presence() {
  relay::message request = relay::subscribe{};
  auto answer = co_await impl_->request(impl_->sending, request);
  auto reply = impl::expect<relay::subscribed>(std::move(answer));
  if (!reply) co_return tl::unexpected(reply.error());
  co_return result<void>{};
}

asio::awaitable<result<download_result>> relay_client::download(
    std::string file, std::filesystem::path dir,
    std::function<void(const download_progress&)> progress, download_options options) {
  namespace fs = std::filesystem;
  auto self = shared_from_this();  // lives until the download ends
  auto* st = impl_.get();
  if (!relay::valid_file_name(file)) {
    co_return fail(errc::invalid_argument, "'" + file + "' is not a valid file name");
  }
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    co_return fail(errc::not_found, dir.string() + " is not a directory");
  }
  fs::path final_path = dir / file;
  fs::path part_path = final_path;
  part_path += ".part";
  fs::path meta_path = final_path;
  meta_path += ".part.sha256";
  auto ex = co_await asio::this_coro::executor;
  // Two downloads into one NAME.part would interleave their bytes.
  auto target = fs::absolute(final_path, ec).lexically_normal();
  if (!st->targets.insert(target).second) {
    co_return fail(errc::invalid_argument, final_path.string() + " is being downloaded already");
  }
  struct release {
    impl* state;
    fs::path path;
    ~release() { state->targets.erase(path); }
  } guard{st, target};

  for (int attempt = 0; attempt < 2; ++attempt) {
    if (st->closed) co_return fail(errc::connection_closed, "the client is closed");
    std::uint64_t offset = 0;
    auto meta = read_meta(meta_path);
    if (meta && attempt == 0) {
      auto have = fs::file_size(part_path, ec);
      if (!ec && have <= meta->size) offset = have;
    }
    net::transfer_link_options link_options;
    link_options.rate_limit = options.rate_limit;
    auto opened = net::transfer_link::open(ex, st->sending.conn->local().address(), link_options);
    if (!opened) co_return tl::unexpected(opened.error());
    auto link = *opened;
    relay::message request = relay::download{file, link->local_port(), offset};
    auto answer = co_await st->request(st->sending, request);
    auto tr = impl::expect<relay::transfer>(std::move(answer));
    if (!tr) {
      link->close();
      if (tr.error() == errc::not_found) {
        co_return fail(errc::not_found, "the server has no file named '" + file + "'");
      }
      co_return tl::unexpected(tr.error());
    }
    bool same = meta && meta->size == tr->size && meta->sha256 == tr->sha256;
    auto give_up = [&](std::uint32_t id) -> asio::awaitable<void> {
      link->close();
      relay::message c = relay::cancel{id};
      (void)co_await st->request(st->sending, c);
    };
    if (offset > 0 && !same) {
      // The file changed on the server since the .part was written.
      co_await give_up(tr->id);
      fs::remove(part_path, ec);
      fs::remove(meta_path, ec);
      continue;
    }
    // A .part without the server's hash beside it cannot be trusted.
    if (!same) fs::remove(part_path, ec);
    if (!write_meta(meta_path, tr->size, tr->sha256)) {
      co_await give_up(tr->id);
      co_return fail(errc::io_error, "cannot write " + meta_path.string());
    }
    auto part = transfer::part_file::open(final_path, tr->size);
    if (!part) {
      co_await give_up(tr->id);
      co_return tl::unexpected(part.error());
    }
    if (part->offset() != tr->offset) {
      co_await give_up(tr->id);
      fs::remove(part_path, ec);
      continue;
    }
    auto pf = std::make_shared<transfer::part_file>(std::move(*part));
    auto entry = std::make_shared<active_download>();
    entry->progress = {tr->id, file, tr->size, tr->offset, tr->offset};
    entry->link = link;
    st->active[tr->id] = entry;
    auto done = std::make_shared<completion>(ex);

    transfer::receiver_config rc;
    rc.id = tr->id;
    std::random_device rd;
    do {
      rc.key = (static_cast<std::uint64_t>(rd()) << 32) | rd();
    } while (rc.key == 0);
    rc.size = tr->size;
    rc.offset = tr->offset;
    asio::ip::udp::endpoint server(st->sending.conn->remote().address(), tr->udp_port);
    auto started = link->start_receiver(
        server, rc, [pf](std::span<const char> bytes) { return pf->write(bytes); },
        [entry, pf, progress] {
          entry->progress.received = pf->offset();
          if (progress) progress(entry->progress);
        },
        [done](result<void> r) {
          done->outcome = std::move(r);
          done->timer.cancel();
        });
    if (!started) {
      st->active.erase(tr->id);
      co_await give_up(tr->id);
      co_return tl::unexpected(started.error());
    }
    if (progress) progress(entry->progress);
    while (!done->outcome) co_await done->timer.async_wait(net::use_nothrow);
    if (auto it = st->active.find(tr->id); it != st->active.end() && it->second == entry) {
      st->active.erase(it);
    }
    if (entry->stop_reason) co_return tl::unexpected(*entry->stop_reason);
    if (!*done->outcome) {
      if (entry->cancelled) {
        pf->remove();
        fs::remove(meta_path, ec);
        co_return fail(errc::cancelled, "at the user's request");
      }
      co_return tl::unexpected(done->outcome->error());
    }
    auto digest = pf->finish(tr->sha256);
    fs::remove(meta_path, ec);
    if (!digest) co_return tl::unexpected(digest.error());
    download_result out;
    out.file = file;
    out.path = final_path;
    out.size = tr->size;
    out.sha256 = transfer::to_hex(*digest);
    out.resumed_from = tr->offset;
    if (tr->size > 0) {
      out.last_offset = tr->size - 1;
      out.last_byte = link->receiver()->last_byte();
    }
    co_return out;
  }
  co_return fail(errc::io_error, "the file kept changing on the server; try again");
}

asio::awaitable<result<void>> relay_client::pause(std::uint32_t id) {
  auto self = shared_from_this();
  auto it = impl_->active.find(id);
  if (it != impl_->active.end()) {
    if (auto l = it->second->link.lock()) l->pause();
  }
  relay::message request = relay::pause{id};
  auto answer = co_await impl_->request(impl_->sending, request);
  auto reply = impl::expect<relay::paused>(std::move(answer));
  if (!reply) co_return tl::unexpected(reply.error());
  co_return result<void>{};
}

asio::awaitable<result<void>> relay_client::resume(std::uint32_t id) {
  auto self = shared_from_this();
  relay::message request = relay::resume{id};
  auto answer = co_await impl_->request(impl_->sending, request);
  auto reply = impl::expect<relay::resumed>(std::move(answer));
  if (!reply) co_return tl::unexpected(reply.error());
  auto it = impl_->active.find(id);
  if (it != impl_->active.end()) {
    if (auto l = it->second->link.lock()) l->resume();
  }
  co_return result<void>{};
}

asio::awaitable<result<void>> relay_client::cancel(std::uint32_t id) {
  auto self = shared_from_this();
  bool local = false;
  if (auto it = impl_->active.find(id); it != impl_->active.end()) {
    it->second->cancelled = true;
    if (auto l = it->second->link.lock()) l->cancel();
    local = true;
  }
  relay::message request = relay::cancel{id};
  auto answer = co_await impl_->request(impl_->sending, request);
  auto reply = impl::expect<relay::cancelled>(std::move(answer));
  // The ABORT may have ended it on the server first (107): cancelled all the same.
  if (!reply && !local) co_return tl::unexpected(reply.error());
  co_return result<void>{};
}

std::vector<download_progress> relay_client::downloads() const {
  std::vector<download_progress> out;
  for (auto& [id, d] : impl_->active) out.push_back(d->progress);
  return out;
}

const std::string& relay_client::user() const noexcept { return impl_->user; }

void relay_client::close() {
  impl_->closed = true;  // our own close is not news for on_closed
  impl_->shut(error(errc::connection_closed, "closed by the client"));
}

}  // namespace improto::client

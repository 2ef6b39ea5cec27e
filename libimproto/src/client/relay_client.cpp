#include "improto/client/relay_client.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <deque>
#include <optional>

#include "improto/net/tcp.hpp"
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

const std::string& relay_client::user() const noexcept { return impl_->user; }

void relay_client::close() {
  impl_->closed = true;  // our own close is not news for on_closed
  impl_->shut(error(errc::connection_closed, "closed by the client"));
}

}  // namespace improto::client

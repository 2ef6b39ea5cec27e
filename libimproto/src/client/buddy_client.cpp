#include "improto/client/buddy_client.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <limits>
#include <optional>
#include <variant>

#include "improto/net/common.hpp"
#include "improto/net/tcp.hpp"
#include "improto/buddy/codes.hpp"
#include "improto/buddy/decoder.hpp"
#include "improto/wire/text.hpp"

namespace improto::client {
namespace {

// The codec's userid rule; a caller's bad userid is a bad argument.
result<void> check_userid(std::string_view id, std::string_view what) {
  auto ok = buddy::check_user(id, what);
  if (!ok) return fail(errc::invalid_argument, ok.error().detail());
  return ok;
}

// Connections of this file: the per-connection idle timeout is set where
// each is made; these must outlive every connection, hence static.
const net::stream_limits& stream_limits() {
  static const net::stream_limits limits = [] {
    net::stream_limits s;
    s.message_timeout = std::chrono::seconds(60);
    s.idle_timeout = std::chrono::milliseconds(0);
    s.max_queued_bytes = 1u << 20;
    s.read_chunk = 16 * 1024;
    return s;
  }();
  return limits;
}

std::string udp_where(const buddy_options& o) {
  return "the buddy server at UDP " + o.host + ":" + std::to_string(o.udp_port);
}

bool refused(const std::error_code& ec) {
  return ec == asio::error::connection_refused || ec == asio::error::host_unreachable ||
         ec == asio::error::network_unreachable;
}

}  // namespace

// --------------------------------------------------------------- buddy_client

buddy_client::buddy_client(asio::any_io_executor executor, buddy_options options)
    : executor_(std::move(executor)), options_(std::move(options)) {}

buddy_client::~buddy_client() = default;

asio::awaitable<result<void>> buddy_client::request(const buddy::request& req) {
  std::string bytes;
  if (auto ok = buddy::serialize(req, bytes); !ok) co_return tl::unexpected(ok.error());
  auto socket = co_await net::connect(options_.host, options_.tcp_port, options_.connect_timeout);
  if (!socket) co_return tl::unexpected(socket.error());
  auto conn = std::make_shared<net::tcp_connection>(std::move(*socket), stream_limits());
  conn->set_idle_timeout(options_.reply_timeout);
  conn->start();
  conn->send(std::move(bytes));
  buddy::response_decoder decoder;
  std::optional<result<buddy::response>> answer;
  while (!answer) {
    auto data = co_await conn->read();
    if (!data) {
      if (data.error() == errc::timeout) {
        answer = fail(errc::timeout, "no answer from the buddy server in time");
      } else {
        answer = fail(errc::connection_closed,
                      "the buddy server closed the connection without an answer");
      }
      break;
    }
    std::string_view in = *data;
    auto r = decoder.next(in);
    if (!r) {
      answer = fail(errc::rejected, "the buddy server's answer is malformed: " + r.error().message());
    } else if (*r) {
      answer = std::move(**r);
    }
  }
  conn->close();
  if (!*answer) co_return tl::unexpected(answer->error());
  co_return buddy::from_wire(**answer);
}

asio::awaitable<result<void>> buddy_client::register_user(std::string_view user) {
  if (auto ok = check_userid(user, "userid"); !ok) co_return ok;
  const buddy::request req = buddy::register_request{std::string(user)};
  co_return co_await request(req);
}

asio::awaitable<result<void>> buddy_client::add_buddy(std::string_view user,
                                                      std::string_view buddy_id) {
  if (auto ok = check_userid(user, "userid"); !ok) co_return ok;
  if (auto ok = check_userid(buddy_id, "buddyid"); !ok) co_return ok;
  const buddy::request req = buddy::add_request{std::string(user), std::string(buddy_id)};
  co_return co_await request(req);
}

asio::awaitable<result<void>> buddy_client::delete_buddy(std::string_view user,
                                                         std::string_view buddy_id) {
  if (auto ok = check_userid(user, "userid"); !ok) co_return ok;
  if (auto ok = check_userid(buddy_id, "buddyid"); !ok) co_return ok;
  const buddy::request req = buddy::delete_request{std::string(user), std::string(buddy_id)};
  co_return co_await request(req);
}

result<asio::ip::udp::socket*> buddy_client::status_socket() {
  if (status_socket_) return status_socket_.get();
  auto address = net::parse_address(options_.host);
  if (!address) return tl::unexpected(address.error());
  asio::ip::udp::endpoint server(*address, options_.udp_port);
  auto sock = std::make_unique<asio::ip::udp::socket>(executor_);
  std::error_code ec;
  sock->open(server.protocol(), ec);
  // Connected: the kernel picks the source address the server will see.
  if (!ec) sock->connect(server, ec);
  if (ec) return tl::unexpected(net::from_system(ec, "UDP to " + net::to_string(server)));
  status_socket_ = std::move(sock);
  return status_socket_.get();
}

result<void> buddy_client::set_status(std::string_view user, buddy::presence status,
                                      std::uint16_t msgport) {
  if (auto ok = check_userid(user, "userid"); !ok) return ok;
  std::string datagram;
  if (auto ok = buddy::serialize(buddy::set_request{std::string(user), status, msgport}, datagram);
      !ok) {
    return ok;
  }
  auto sock = status_socket();
  if (!sock) return tl::unexpected(sock.error());
  std::error_code ec;
  (*sock)->send(asio::buffer(datagram), 0, ec);
  // A refusal reported here belongs to an earlier datagram; this one is sent
  // again below so that a server that came back gets it.
  if (ec && refused(ec)) (*sock)->send(asio::buffer(datagram), 0, ec);
  if (ec && !refused(ec)) return tl::unexpected(net::from_system(ec, "SET to " + udp_where(options_)));
  return {};
}

result<asio::ip::address> buddy_client::local_address() {
  auto sock = status_socket();
  if (!sock) return tl::unexpected(sock.error());
  std::error_code ec;
  auto ep = (*sock)->local_endpoint(ec);
  if (ec) return tl::unexpected(net::from_system(ec, "local address"));
  return ep.address();
}

asio::awaitable<result<std::vector<buddy::buddy_entry>>> buddy_client::get_buddies(
    std::string_view user) {
  using namespace asio::experimental::awaitable_operators;
  if (auto ok = check_userid(user, "userid"); !ok) co_return tl::unexpected(ok.error());
  auto address = net::parse_address(options_.host);
  if (!address) co_return tl::unexpected(address.error());
  asio::ip::udp::endpoint server(*address, options_.udp_port);
  // A socket per call: a late answer to an earlier GET (for another user,
  // perhaps) can never be taken for this one's.
  asio::ip::udp::socket sock(executor_);
  std::error_code ec;
  sock.open(server.protocol(), ec);
  if (!ec) sock.connect(server, ec);
  if (ec) co_return tl::unexpected(net::from_system(ec, "UDP to " + net::to_string(server)));
  std::string datagram;
  if (auto ok = buddy::serialize(buddy::get_request{std::string(user)}, datagram); !ok) {
    co_return tl::unexpected(ok.error());
  }
  std::vector<char> buffer(buddy::max_datagram + 1);
  asio::steady_timer timer(executor_);
  for (int attempt = 0; attempt < std::max(options_.get_attempts, 1); ++attempt) {
    sock.send(asio::buffer(datagram), 0, ec);
    if (ec) {
      if (refused(ec)) break;
      co_return tl::unexpected(net::from_system(ec, "GET to " + udp_where(options_)));
    }
    timer.expires_after(options_.get_timeout);
    auto got = co_await (sock.async_receive(asio::buffer(buffer), net::use_nothrow) ||
                         timer.async_wait(net::use_nothrow));
    if (got.index() == 1) continue;  // lost on the way, one way or the other: ask again
    auto [rec, n] = std::get<0>(got);
    if (rec) {
      if (refused(rec)) {
        ec = rec;
        break;
      }
      co_return tl::unexpected(net::from_system(rec, "GET from " + udp_where(options_)));
    }
    auto reply = buddy::parse_status_reply(std::string_view(buffer.data(), n));
    if (!reply) {
      co_return fail(errc::io_error,
                     udp_where(options_) + " sent a malformed answer: " + reply.error().message());
    }
    if (auto* list = std::get_if<buddy::buddy_list>(&*reply)) co_return std::move(list->buddies);
    auto failed = buddy::from_wire(std::get<buddy::response>(*reply));
    if (!failed) co_return tl::unexpected(failed.error());
    co_return fail(errc::rejected, "the server answered GET with '200 OK'");
  }
  if (ec) {
    co_return fail(errc::connection_refused,
                   "nothing answers at " + udp_where(options_) + " (is the server running?)");
  }
  co_return fail(errc::timeout, "no answer from " + udp_where(options_) + " after " +
                                    std::to_string(std::max(options_.get_attempts, 1)) + " tries");
}

// ----------------------------------------------------------------------- chat

struct chat::impl {
  std::shared_ptr<net::tcp_connection> conn;
  buddy::chat_decoder decoder;
  chat_events events;
  std::string buddy;
  bool incoming = false;
  bool opened = false;  // incoming: the caller's first line has arrived
  bool ended = false;
};

chat::chat(std::unique_ptr<impl> state) : impl_(std::move(state)) {}
chat::~chat() = default;

bool chat::is_open() const noexcept { return !impl_->ended; }
bool chat::incoming() const noexcept { return impl_->incoming; }
const std::string& chat::buddy() const noexcept { return impl_->buddy; }

asio::awaitable<result<std::shared_ptr<chat>>> chat::call(std::string_view host,
                                                          std::uint16_t port, std::string_view me,
                                                          std::string_view buddy_id,
                                                          chat_events events,
                                                          std::chrono::milliseconds connect_timeout) {
  if (auto ok = check_userid(me, "userid"); !ok) co_return tl::unexpected(ok.error());
  std::string hello;
  if (auto ok = buddy::serialize(buddy::chat_hello{std::string(me)}, hello); !ok) {
    co_return tl::unexpected(ok.error());
  }
  auto socket = co_await net::connect(host, port, connect_timeout);
  if (!socket) co_return tl::unexpected(socket.error());
  auto state = std::make_unique<impl>();
  state->conn = std::make_shared<net::tcp_connection>(std::move(*socket), stream_limits());
  state->buddy = std::string(buddy_id);
  state->events = std::move(events);
  state->opened = true;
  auto c = std::make_shared<chat>(std::move(state));
  c->impl_->conn->start();
  c->impl_->conn->send(hello);
  auto executor = co_await asio::this_coro::executor;
  asio::co_spawn(executor, [c]() { return c->read_loop(); }, asio::detached);
  co_return c;
}

result<void> chat::send(std::string_view text) {
  if (impl_->ended) return fail(errc::connection_closed, "the chat is over");
  if (text.size() > max_line) {
    return fail(errc::invalid_argument,
                "a line of more than " + std::to_string(max_line) + " bytes");
  }
  std::string line;
  if (auto ok = buddy::serialize(buddy::chat_text{std::string(text)}, line); !ok) return ok;
  if (!impl_->conn->send(line)) {
    return fail(errc::overloaded, "the buddy is not reading; too much unsent text");
  }
  return {};
}

void chat::quit() {
  if (impl_->ended) return;
  impl_->conn->send("q\n");
  end("you ended the chat");
}

void chat::end(std::string why) {
  if (impl_->ended) return;
  impl_->ended = true;
  impl_->conn->close_after_flush();
  if (impl_->events.on_end) impl_->events.on_end(impl_->buddy, why);
}

asio::awaitable<void> chat::read_loop() {
  auto self = shared_from_this();  // the loop keeps its chat alive
  auto& s = *impl_;
  while (!s.ended) {
    auto data = co_await s.conn->read();
    if (s.ended) break;
    if (!data) {
      end(data.error() == errc::timeout && !s.opened
              ? "the caller said nothing in time"
              : "the connection closed");
      break;
    }
    std::string_view in = *data;
    bool partial = false;
    while (!in.empty() && !s.ended) {
      auto r = s.decoder.next(in);
      if (!r) {
        if (s.decoder.failed()) {
          end("bad data from " + s.buddy + ": " + r.error().message());
          s.conn->close();
        }
        continue;  // a line with control characters is dropped
      }
      if (!*r) {
        partial = true;
        break;
      }
      auto& m = **r;
      if (!s.opened) {
        s.opened = true;
        // Answered: from now on the chat may be as quiet as the people in it.
        s.conn->set_idle_timeout(std::chrono::milliseconds(0));
        if (auto* hello = std::get_if<buddy::chat_hello>(&m)) {
          s.buddy = hello->user;
          if (s.events.on_open) s.events.on_open(s.buddy);
          continue;
        }
        if (s.events.on_open) s.events.on_open(s.buddy);
      }
      if (auto* text = std::get_if<buddy::chat_text>(&m)) {
        if (s.events.on_line) s.events.on_line(s.buddy, text->line);
      } else if (auto* hello = std::get_if<buddy::chat_hello>(&m)) {
        // The callee's first line happened to read "CHAT x": it is text.
        if (s.events.on_line) s.events.on_line(s.buddy, "CHAT " + hello->user);
      } else if (std::holds_alternative<buddy::chat_busy>(m)) {
        end(s.buddy + " is busy");
      } else {
        end(s.buddy + " ended the chat");
      }
    }
    if (!s.ended) s.conn->set_mid_message(partial);
  }
}

// -------------------------------------------------------------- chat_listener

struct chat_listener::impl {
  impl(asio::io_context& io_context, net::tcp_listener l, chat_events ev,
       std::chrono::milliseconds hello)
      : io(io_context), listener(std::move(l)), events(std::move(ev)), hello_timeout(hello) {}

  asio::io_context& io;
  net::tcp_listener listener;
  chat_events events;
  std::chrono::milliseconds hello_timeout;
  std::shared_ptr<chat> current;
  bool closed = false;

  bool busy() const { return current && current->is_open(); }
};

chat_listener::chat_listener(std::unique_ptr<impl> state) : impl_(std::move(state)) {}
chat_listener::~chat_listener() = default;

result<std::shared_ptr<chat_listener>> chat_listener::listen(
    asio::io_context& io, std::string_view host, std::uint16_t port, chat_events events,
    std::chrono::milliseconds hello_timeout) {
  auto l = net::tcp_listener::bind(io, host, port, 64);
  if (!l) return tl::unexpected(l.error());
  auto listener = std::make_shared<chat_listener>(
      std::make_unique<impl>(io, std::move(*l), std::move(events), hello_timeout));
  asio::co_spawn(io, [listener]() { return listener->accept_loop(); }, asio::detached);
  return listener;
}

asio::awaitable<void> chat_listener::accept_loop() {
  auto self = shared_from_this();
  auto& s = *impl_;
  while (!s.closed) {
    // Named, not a temporary: see net/common.hpp on g++ 12.
    std::function<std::size_t()> live = [] { return std::size_t{0}; };
    auto socket = co_await s.listener.accept(live, std::numeric_limits<std::size_t>::max());
    if (!socket || s.closed) break;
    auto conn = std::make_shared<net::tcp_connection>(std::move(*socket), stream_limits());
    conn->start();
    if (s.busy()) {
      std::string busy = buddy::serialize(buddy::chat_message{buddy::chat_busy{}}).value();
      conn->set_idle_timeout(s.hello_timeout);  // bounds the flush to a peer that never reads
      conn->send(busy);
      conn->close_after_flush();
      continue;
    }
    conn->set_idle_timeout(s.hello_timeout);
    auto state = std::make_unique<chat::impl>();
    state->conn = conn;
    state->buddy = net::to_string(conn->remote());
    state->events = s.events;
    state->incoming = true;
    auto c = std::make_shared<chat>(std::move(state));
    s.current = c;
    asio::co_spawn(s.io, [c]() { return c->read_loop(); }, asio::detached);
  }
}

asio::ip::tcp::endpoint chat_listener::local_endpoint() const {
  return impl_->listener.local_endpoint();
}

std::shared_ptr<chat> chat_listener::current() const {
  return impl_->busy() ? impl_->current : nullptr;
}

bool chat_listener::occupy(const std::shared_ptr<chat>& outgoing) {
  if (impl_->busy()) return impl_->current == outgoing;
  impl_->current = outgoing;
  return true;
}

void chat_listener::close() {
  impl_->closed = true;
  impl_->listener.close();
  if (impl_->current) impl_->current->quit();
}

}  // namespace improto::client

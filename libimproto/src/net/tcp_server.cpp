#include "improto/net/tcp_server.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <unistd.h>

#include <unordered_set>
#include <vector>

namespace improto::net {

struct tcp_server::state : tcp_connection::parking, std::enable_shared_from_this<state> {
  state(asio::io_context& io_context, tcp_listener l, const stream_limits& lim,
        tcp_server_options opts)
      : io(io_context), listener(std::move(l)), limits(lim), options(std::move(opts)) {}

  asio::io_context& io;
  tcp_listener listener;
  stream_limits limits;  // every connection keeps a reference to it
  tcp_server_options options;
  // Keyed by the session's address too, so that a parked connection's
  // cookie finds its session.
  struct by_address {
    using is_transparent = void;
    std::size_t operator()(const tcp_session* s) const noexcept {
      return std::hash<const tcp_session*>()(s);
    }
    std::size_t operator()(const std::shared_ptr<tcp_session>& s) const noexcept {
      return (*this)(s.get());
    }
    bool operator()(const auto& a, const auto& b) const noexcept { return get(a) == get(b); }
    static const tcp_session* get(const tcp_session* s) noexcept { return s; }
    static const tcp_session* get(const std::shared_ptr<tcp_session>& s) noexcept {
      return s.get();
    }
  };
  std::unordered_set<std::shared_ptr<tcp_session>, by_address, by_address> sessions;
  session_factory make;
  session_runner run;
  bool stopping = false;

  void log(std::string_view line) const {
    if (options.log) options.log(line);
  }

  void stop() {
    if (stopping) return;
    stopping = true;
    listener.close();
    // on_stop() may end a session, which leaves the set: walk a copy.
    std::vector<std::shared_ptr<tcp_session>> live(sessions.begin(), sessions.end());
    for (auto& s : live) s->on_stop();
  }

  // Static, the state a parameter: the frame owns it, so a completion queued
  // when the handle went (the accept cancelled by stop()) resumes on live
  // memory. It ends once the listener is closed.
  static asio::awaitable<void> accept_loop(std::shared_ptr<state> self) {
    auto& s = *self;
    if (!s.options.refusal.empty()) s.listener.set_refusal(s.options.refusal);
    s.listener.set_logger([&s](std::string_view line) { s.log(line); });
    while (!s.stopping) {
      // Named, not a temporary: see net/common.hpp on g++ 12.
      std::function<std::size_t()> live = [&s] { return s.sessions.size(); };
      auto socket = co_await s.listener.accept_native(live, s.limits.max_connections);
      // Accepted just as stop() ran (its completion was already queued):
      // stop() did not see this session, so it must not start; the socket
      // closes here.
      if (s.stopping) {
        if (socket) ::close(*socket);
        break;
      }
      if (!socket && socket.error() == errc::overloaded) continue;
      if (!socket) break;
      auto conn =
          std::make_shared<tcp_connection>(s.io, s.listener.protocol(), *socket, s.limits);
      conn->start();
      auto session = s.make(conn);
      if (!session) {
        conn->close();
        continue;
      }
      conn->set_parking(self, session.get());
      s.sessions.insert(session);
      asio::co_spawn(s.io, serve(self, std::move(session)), asio::detached);
    }
    // What the accept loop's closures referred to goes with it.
    s.listener.set_logger({});
  }

  // Counts the session as live until its runner returns; owns the state for
  // as long (the connections refer to its limits).
  // A runner that parked its connection (read(true)) has returned without
  // ending the session: wake() serves it again when bytes arrive.
  static asio::awaitable<void> serve(std::shared_ptr<state> self,
                                     std::shared_ptr<tcp_session> session) {
    auto served = self->run(session);
    co_await std::move(served);
    if (!session->conn->parked()) self->sessions.erase(session);
  }

  void wake(tcp_connection& /*c*/, void* cookie) override {
    auto it = sessions.find(static_cast<const tcp_session*>(cookie));
    if (it == sessions.end()) return;
    asio::co_spawn(io, serve(shared_from_this(), *it), asio::detached);
  }

  // Parked sessions are owned by the set alone: closing their connections
  // ends their waits (which hold the connection, not the state).
  ~state() {
    for (auto& s : sessions) s->conn->close();
  }
};

tcp_server::tcp_server(tcp_server&&) noexcept = default;

tcp_server& tcp_server::operator=(tcp_server&& other) noexcept {
  if (this != &other) {
    if (state_) state_->stop();
    state_ = std::move(other.state_);
  }
  return *this;
}

// Stops; the accept loop and the sessions end on the io_context's next turns
// and release the state (or it is freed with an io_context destroyed unrun).
tcp_server::~tcp_server() {
  if (state_) state_->stop();
}

result<tcp_server> tcp_server::bind(asio::io_context& io, std::string_view host,
                                    std::uint16_t port, const stream_limits& limits,
                                    tcp_server_options options) {
  auto listener = tcp_listener::bind(io, host, port);
  if (!listener) return tl::unexpected(listener.error());
  if (options.defer_accept.count() > 0) listener->set_defer_accept(options.defer_accept);
  return tcp_server(
      std::make_shared<state>(io, std::move(*listener), limits, std::move(options)));
}

void tcp_server::start(session_factory make, session_runner run) {
  state_->make = std::move(make);
  state_->run = std::move(run);
  asio::co_spawn(state_->io, state::accept_loop(state_), asio::detached);
}

void tcp_server::stop() { state_->stop(); }

asio::ip::tcp::endpoint tcp_server::local_endpoint() const {
  return state_->listener.local_endpoint();
}
bool tcp_server::stopping() const noexcept { return state_->stopping; }
std::size_t tcp_server::session_count() const noexcept { return state_->sessions.size(); }
const stream_limits& tcp_server::limits() const noexcept { return state_->limits; }
void tcp_server::log(std::string_view line) const { state_->log(line); }

}  // namespace improto::net

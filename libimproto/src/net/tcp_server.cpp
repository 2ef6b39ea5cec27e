#include "improto/net/tcp_server.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <unordered_set>
#include <vector>

namespace improto::net {

struct tcp_server::state {
  state(asio::io_context& io_context, tcp_listener l, const stream_limits& lim,
        tcp_server_options opts)
      : io(io_context), listener(std::move(l)), limits(lim), options(std::move(opts)) {}

  asio::io_context& io;
  tcp_listener listener;
  stream_limits limits;  // every connection keeps a reference to it
  tcp_server_options options;
  std::unordered_set<std::shared_ptr<tcp_session>> sessions;
  session_factory make;
  session_runner run;
  bool stopping = false;

  void log(std::string_view line) const {
    if (options.log) options.log(line);
  }

  asio::awaitable<void> accept_loop() {
    // No reference to the state is kept here: the state goes with the
    // server (its acceptor before the io_context), like a plain member.
    if (!options.refusal.empty()) listener.set_refusal(options.refusal);
    listener.set_logger([this](std::string_view line) { log(line); });
    while (!stopping) {
      // Named, not a temporary: see net/common.hpp on g++ 12.
      std::function<std::size_t()> live = [this] { return sessions.size(); };
      auto socket = co_await listener.accept(live, limits.max_connections);
      // Accepted just as stop() ran (its completion was already queued):
      // stop() did not see this session, so it must not start; the socket
      // closes here.
      if (stopping) break;
      if (!socket && socket.error() == errc::overloaded) continue;
      if (!socket) break;
      auto conn = std::make_shared<tcp_connection>(std::move(*socket), limits);
      conn->start();
      auto session = make(std::move(conn));
      sessions.insert(session);
      asio::co_spawn(io, serve(std::move(session)), asio::detached);
    }
  }

  asio::awaitable<void> serve(std::shared_ptr<tcp_session> session) {
    auto served = run(session);
    co_await std::move(served);
    sessions.erase(session);
  }
};

tcp_server::tcp_server(tcp_server&&) noexcept = default;
tcp_server& tcp_server::operator=(tcp_server&&) noexcept = default;
tcp_server::~tcp_server() = default;

result<tcp_server> tcp_server::bind(asio::io_context& io, std::string_view host,
                                    std::uint16_t port, const stream_limits& limits,
                                    tcp_server_options options) {
  auto listener = tcp_listener::bind(io, host, port);
  if (!listener) return tl::unexpected(listener.error());
  return tcp_server(
      std::make_shared<state>(io, std::move(*listener), limits, std::move(options)));
}

void tcp_server::start(session_factory make, session_runner run) {
  state_->make = std::move(make);
  state_->run = std::move(run);
  asio::co_spawn(state_->io, state_->accept_loop(), asio::detached);
}

void tcp_server::stop() {
  if (state_->stopping) return;
  state_->stopping = true;
  state_->listener.close();
  // on_stop() may end a session, which leaves the set: walk a copy.
  std::vector<std::shared_ptr<tcp_session>> live(state_->sessions.begin(),
                                                 state_->sessions.end());
  for (auto& s : live) s->on_stop();
}

void tcp_server::close() {
  state_->stopping = true;
  state_->listener.close();
}

asio::ip::tcp::endpoint tcp_server::local_endpoint() const {
  return state_->listener.local_endpoint();
}
bool tcp_server::stopping() const noexcept { return state_->stopping; }
std::size_t tcp_server::session_count() const noexcept { return state_->sessions.size(); }
const stream_limits& tcp_server::limits() const noexcept { return state_->limits; }
void tcp_server::log(std::string_view line) const { state_->log(line); }

}  // namespace improto::net

#include "improto/client/registry_client.hpp"

#include <functional>
#include <optional>

#include "improto/net/tcp.hpp"
#include "improto/registry/codes.hpp"
#include "improto/registry/decoder.hpp"
#include "improto/wire/text.hpp"

namespace improto::client {
namespace {

constexpr std::string_view list_target = "/userlist.txt";

// "HTTP 405 Method Not Allowed: <first line of the body>".
std::string describe_status(const registry::response& r) {
  std::string text = "the server answered " + std::to_string(r.status);
  if (!r.reason.empty()) text += " " + r.reason;
  std::string_view body = r.body;
  body = body.substr(0, body.find_first_of("\r\n"));
  if (!body.empty()) text += ": " + wire::escape(body.substr(0, 200));
  return text;
}

// The server's one-line explanation, or `fallback` when it sent none (the
// seed server never does).
std::string reason_or(const registry::response& r, std::string fallback) {
  std::string_view body = r.body;
  body = wire::trim(body.substr(0, body.find_first_of("\r\n")));
  return body.empty() ? fallback : wire::escape(body.substr(0, 200));
}

// "1.2.3.4" / "[::1]" for a Host header.
std::string host_header(std::string_view host, std::uint16_t port) {
  std::string out = host.find(':') != std::string_view::npos ? "[" + std::string(host) + "]"
                                                             : std::string(host);
  return out + ":" + std::to_string(port);
}

}  // namespace

struct registry_client::impl {
  impl(std::string h, std::uint16_t p, registry_options opt)
      : host(std::move(h)), port(p), options(opt) {
    // A request must be answered within reply_timeout (the connection is
    // "mid message" from sending until the answer); a kept connection is
    // idle between requests.
    limits.message_timeout = options.reply_timeout;
    limits.idle_timeout = options.keep_alive;
    limits.max_connections = 1;
  }
  ~impl() { drop_kept(); }

  std::string host;
  std::uint16_t port;
  registry_options options;
  net::stream_limits limits;  // referenced by every connection: outlives them
  std::shared_ptr<net::tcp_connection> kept;

  void drop_kept() {
    if (kept) kept->close();
    kept.reset();
  }

  using request_maker = std::function<result<registry::request>(const asio::ip::tcp::endpoint& local)>;

  // One request, one response. `make` builds the request once the
  // connection (and so its local address) is known.
  asio::awaitable<result<registry::response>> exchange(const request_maker& make) {
    for (int attempt = 0;; ++attempt) {
      std::shared_ptr<net::tcp_connection> conn = std::move(kept);
      kept.reset();
      bool reused = conn && conn->is_open();
      if (!reused) {
        auto socket = co_await net::connect(host, port, options.connect_timeout);
        if (!socket) co_return tl::unexpected(socket.error());
        conn = std::make_shared<net::tcp_connection>(std::move(*socket), limits);
        conn->start();
      }
      auto request = make(conn->local());
      if (!request) {
        keep(conn);
        co_return tl::unexpected(request.error());
      }
      std::string bytes;
      if (auto ok = registry::serialize(*request, bytes); !ok) {
        keep(conn);
        co_return tl::unexpected(ok.error());
      }
      conn->set_mid_message(true);
      if (!conn->send(std::move(bytes))) {
        conn->close();
        co_return fail(errc::overloaded, "the request does not fit the send queue");
      }
      registry::response_decoder decoder(options.wire);
      registry::response response;
      bool answered = false;
      bool received = false;
      std::string_view rest;
      while (!answered) {
        auto data = co_await conn->read();
        if (!data) {
          if (data.error() == errc::timeout) {
            conn->close();
            co_return fail(errc::timeout, "no answer from " + host_header(host, port) + " within " +
                                              std::to_string(options.reply_timeout.count()) + " ms");
          }
          // End of stream: the seed server's answers end there.
          auto last = decoder.finish();
          if (last && *last) {
            response = std::move(**last);
            if (response.status >= 200) {
              answered = true;
              break;
            }
          }
          conn->close();
          // A kept connection the server closed before reading our request:
          // nothing was done, so asking again on a new one is safe.
          if (reused && !received && attempt == 0) break;
          if (!last) co_return fail(errc::connection_closed, "the answer from the server was cut off");
          co_return fail(errc::connection_closed, "the server closed the connection without answering");
        }
        received = true;
        rest = *data;
        while (true) {
          auto got = decoder.next(rest);
          if (!got) {
            conn->close();
            co_return fail(got.error().code(), "bad answer from the server: " + got.error().message());
          }
          if (!*got) break;
          response = std::move(**got);
          if (response.status >= 200) {  // 1xx answers are interim
            answered = true;
            break;
          }
        }
      }
      if (!answered) continue;  // the retry above
      // Reused only when the answer was framed by Content-Length and
      // nothing unexpected followed it.
      if (response.keep_alive() && response.header("Content-Length") && rest.empty() &&
          conn->is_open()) {
        conn->set_mid_message(false);
        keep(conn);
      } else {
        conn->close();
      }
      co_return response;
    }
  }

  void keep(const std::shared_ptr<net::tcp_connection>& conn) {
    if (!conn->is_open() || kept) {
      conn->close();  // another call kept its connection first
      return;
    }
    kept = conn;
  }

  asio::awaitable<result<registry::response>> post(const registry::command& cmd) {
    std::string body;
    if (auto ok = registry::serialize(cmd, body); !ok) co_return tl::unexpected(ok.error());
    request_maker make = [&](const asio::ip::tcp::endpoint&) -> result<registry::request> {
      return registry::make_request("POST", std::string(list_target), host_header(host, port), body);
    };
    auto answer = co_await exchange(make);
    co_return answer;
  }

  // Maps a POST's answer: 200 is success, 406 name_taken, 404 not_found,
  // 400 the server's verdict on the entry.
  static result<void> verdict(const result<registry::response>& answer,
                              const registry::command& cmd) {
    if (!answer) return tl::unexpected(answer.error());
    const auto& r = *answer;
    auto code = registry::from_wire(r.status);
    if (!code) return {};
    bool reg = cmd.kind == registry::command_kind::register_;
    switch (*code) {
      case errc::name_taken:
        return fail(errc::name_taken, "the name '" + cmd.entry.user + "' is already registered");
      case errc::not_found:
        if (reg) break;  // no such resource: the server is not a registry
        return fail(errc::not_found, registry::to_string(cmd.entry) + " is not registered");
      case errc::invalid_argument:
        // For a REGISTER, the server's verdict is on the name.
        return fail(reg ? errc::invalid_name : errc::invalid_argument,
                    reason_or(r, reg ? "the server refused the name '" + cmd.entry.user + "'"
                                     : "the server refused the request"));
      default:
        return fail(*code, describe_status(r));
    }
    return fail(errc::rejected, describe_status(r));
  }
};

registry_client::registry_client(std::string host, std::uint16_t port, registry_options options)
    : impl_(std::make_unique<impl>(std::move(host), port, options)) {}
registry_client::~registry_client() = default;

asio::awaitable<result<void>> registry_client::register_user(std::string_view name,
                                                             std::string_view host,
                                                             std::uint16_t port) {
  registry::command cmd{registry::command_kind::register_,
                        registry::entry{std::string(name), std::string(host), port}};
  auto answer = co_await impl_->post(cmd);
  co_return impl::verdict(answer, cmd);
}

asio::awaitable<result<registry::entry>> registry_client::register_here(std::string_view name) {
  if (auto ok = registry::check_user(name); !ok) co_return tl::unexpected(ok.error());
  registry::command cmd{registry::command_kind::register_, registry::entry{std::string(name), {}, 0}};
  impl::request_maker make = [&](const asio::ip::tcp::endpoint& local) -> result<registry::request> {
    cmd.entry.host = local.address().to_string();
    cmd.entry.port = local.port();
    std::string body;
    if (auto ok = registry::serialize(cmd, body); !ok) return tl::unexpected(ok.error());
    return registry::make_request("POST", std::string(list_target),
                              host_header(impl_->host, impl_->port), body);
  };
  auto answer = co_await impl_->exchange(make);
  auto ok = impl::verdict(answer, cmd);
  if (!ok) co_return tl::unexpected(ok.error());
  co_return cmd.entry;
}

asio::awaitable<result<void>> registry_client::logout(std::string_view name, std::string_view host,
                                                      std::uint16_t port) {
  registry::command cmd{registry::command_kind::logout,
                        registry::entry{std::string(name), std::string(host), port}};
  auto answer = co_await impl_->post(cmd);
  co_return impl::verdict(answer, cmd);
}

asio::awaitable<result<std::vector<registry::entry>>> registry_client::list() {
  impl::request_maker make = [this](const asio::ip::tcp::endpoint&) -> result<registry::request> {
    return registry::make_request("GET", std::string(list_target),
                              host_header(impl_->host, impl_->port));
  };
  auto answer = co_await impl_->exchange(make);
  if (!answer) co_return tl::unexpected(answer.error());
  const auto& r = *answer;
  std::vector<registry::entry> entries;
  if (r.status == 400) co_return entries;  // the seed protocol's "nobody is online"
  if (r.status != 200) co_return fail(errc::rejected, describe_status(r));
  if (auto all = registry::parse_list(r.body)) co_return std::move(all->entries);
  // Keep the good items of a list a laxer server stored.
  std::string_view body = r.body;
  while (!body.empty()) {
    auto comma = body.find(',');
    std::string_view item = wire::trim(body.substr(0, comma));
    while (!item.empty() && (item.back() == '\r' || item.back() == '\n')) item.remove_suffix(1);
    while (!item.empty() && (item.front() == '\r' || item.front() == '\n')) item.remove_prefix(1);
    if (auto e = registry::parse_entry(item)) entries.push_back(std::move(*e));
    if (comma == std::string_view::npos) break;
    body.remove_prefix(comma + 1);
  }
  co_return entries;
}

void registry_client::close() { impl_->drop_kept(); }

const std::string& registry_client::host() const noexcept { return impl_->host; }
std::uint16_t registry_client::port() const noexcept { return impl_->port; }

}  // namespace improto::client

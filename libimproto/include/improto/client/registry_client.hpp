#pragma once

// A registry (protocol 1) client: REGISTER, LOGOUT and the user list over
// HTTP/1.1, as coroutines on the caller's io_context.
//
// Works with our server (Content-Length, keep-alive: one connection is kept
// and reused) and with the seed server (no Content-Length, one request per
// connection, closes after answering). A kept connection the server has
// closed meanwhile is replaced transparently.
//
// Calls may overlap: a call that finds the kept connection busy opens its
// own. Use from the io_context's thread only.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/awaitable.hpp>

#include "improto/error.hpp"
#include "improto/registry/messages.hpp"
#include "improto/wire/framing.hpp"

namespace improto::client {

struct registry_options {
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
  // How long a request waits for its whole answer.
  std::chrono::milliseconds reply_timeout = std::chrono::seconds(10);
  // A kept connection idle this long is closed (servers drop idle ones too).
  std::chrono::milliseconds keep_alive = std::chrono::seconds(60);
  // Response limits: a whole user list is one body.
  wire::limits wire{.max_line = 8 * 1024, .max_headers = 64, .max_body = 16 * 1024 * 1024};
};

class registry_client {
 public:
  registry_client(std::string host, std::uint16_t port, registry_options options = {});
  ~registry_client();
  registry_client(const registry_client&) = delete;
  registry_client& operator=(const registry_client&) = delete;

  // REGISTER name@host:port. Errors: invalid_name / invalid_argument (a bad
  // entry, found before anything is sent, or the server's 400), name_taken
  // (406), rejected (any other status, with it in the detail),
  // connection_refused / timeout / connection_closed.
  asio::awaitable<result<void>> register_user(std::string_view name, std::string_view host,
                                              std::uint16_t port);
  // REGISTER name at the local address of the TCP connection to the server
  // (what the seed's listen mode does: a peer then binds its UDP socket to
  // that same ip:port). Returns the entry registered.
  asio::awaitable<result<registry::entry>> register_here(std::string_view name);
  // LOGOUT name@host:port. Errors as register_user, with not_found (404)
  // for an entry that is not registered.
  asio::awaitable<result<void>> logout(std::string_view name, std::string_view host,
                                       std::uint16_t port);
  // The registered entries in registration order; empty when the server
  // answers 400 (its way of saying "nobody"). Items a seed server stored
  // that are not name@host:port are skipped.
  asio::awaitable<result<std::vector<registry::entry>>> list();

  // Closes the kept connection, if any.
  void close();

  const std::string& host() const noexcept;
  std::uint16_t port() const noexcept;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace improto::client

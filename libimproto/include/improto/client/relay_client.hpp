#pragma once

// A relay (protocol 3) client: two sockets registered under one name, SEND
// with its acknowledgement as a result, FORWARDs delivered to a callback and
// answered with RECEIVED. Runs on one io_context thread; replies to
// pipelined requests come back in order.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/awaitable.hpp>

#include "improto/error.hpp"
#include "improto/wire/framing.hpp"

namespace improto::client {

struct relay_events {
  std::function<void(std::string_view from, std::string_view body)> on_message;
  std::function<void(std::string_view user, bool joined)> on_presence;
  // Either socket closed or broke; the client is unusable afterwards.
  std::function<void(const error& why)> on_closed;
};

struct relay_options {
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
  // How long a request waits for its reply (the server answers a SEND
  // within its receiver timeout, 10 s by default).
  std::chrono::milliseconds reply_timeout = std::chrono::seconds(30);
  wire::limits wire;
};

class relay_client : public std::enable_shared_from_this<relay_client> {
 public:
  // Connects both sockets and registers `user` on each. Errors:
  // connection_refused / timeout, invalid_name (ERROR 100), name_taken (104).
  static asio::awaitable<result<std::shared_ptr<relay_client>>> connect(
      std::string host, std::uint16_t port, std::string user, relay_events events,
      relay_options options = {});

  // Resolves when the server answers SENT (delivered and acknowledged), or
  // fails with `rejected` carrying the server's ERROR line.
  asio::awaitable<result<void>> send(std::string_view to, std::string_view body);
  // Users registered on both sockets, every page.
  asio::awaitable<result<std::vector<std::string>>> users();
  // Files the server offers: "size name" per entry.
  asio::awaitable<result<std::vector<std::pair<std::uint64_t, std::string>>>> files();
  // After this, on_presence hears of users joining and leaving.
  asio::awaitable<result<void>> subscribe_presence();

  const std::string& user() const noexcept;
  void close();

  struct impl;
  explicit relay_client(std::unique_ptr<impl> state);
  ~relay_client();

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace improto::client

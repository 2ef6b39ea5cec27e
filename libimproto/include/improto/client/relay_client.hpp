#pragma once

// A relay (protocol 3) client: two sockets registered under one name, SEND
// with its acknowledgement as a result, FORWARDs delivered to a callback and
// answered with RECEIVED. Runs on one io_context thread; replies to
// pipelined requests come back in order.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
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

// Where a download stands; passed to the progress callback.
struct download_progress {
  std::uint32_t id = 0;        // the server's transfer id (PAUSE/RESUME/CANCEL)
  std::string file;
  std::uint64_t size = 0;      // whole file
  std::uint64_t start = 0;     // resumed from this offset (the .part file's length)
  std::uint64_t received = 0;  // bytes stored in NAME.part, in order
};

// A finished download: NAME in its directory, its SHA-256 checked.
struct download_result {
  std::string file;
  std::filesystem::path path;
  std::uint64_t size = 0;
  std::string sha256;                      // 64 lower-case hex digits
  std::uint64_t resumed_from = 0;          // 0: downloaded whole
  std::optional<std::uint64_t> last_offset;  // the last byte's offset (none: empty file)
  std::uint8_t last_byte = 0;              // its value, from the server's FIN
};

struct download_options {
  double rate_limit = 0;  // bytes per second, 0 = as fast as the link goes
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
  // Downloads `file` into `dir` as NAME.part (with NAME.part.sha256, the
  // server's hash, beside it), renamed to NAME when the SHA-256 matches. A
  // NAME.part left by an earlier attempt is resumed when the server still
  // has the same file (same size and SHA-256), else started over.
  // `progress` runs once the server accepted (id known) and as bytes arrive.
  // Errors: not_found (ERROR 106), overloaded (109), cancelled (cancel() or
  // the server), timeout, connection_closed (the server went away; the
  // .part file stays for a later resume), hash_mismatch, io_error.
  asio::awaitable<result<download_result>> download(
      std::string file, std::filesystem::path dir,
      std::function<void(const download_progress&)> progress = {}, download_options options = {});
  // PAUSE / RESUME / CANCEL of a running download by its id (no_such
  // transfer: `rejected` with the server's ERROR 107). A cancelled
  // download's NAME.part is removed.
  asio::awaitable<result<void>> pause(std::uint32_t id);
  asio::awaitable<result<void>> resume(std::uint32_t id);
  asio::awaitable<result<void>> cancel(std::uint32_t id);
  // Downloads running now.
  std::vector<download_progress> downloads() const;

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

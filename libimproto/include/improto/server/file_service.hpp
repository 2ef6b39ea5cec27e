#pragma once

// The file side of protocol 4 for the relay server: LIST FILES, DOWNLOAD,
// PAUSE, RESUME, CANCEL over one served directory, each download a
// transfer::sender on a UDP socket of its own (net/transfer.hpp).
//
// Confinement: only names that pass relay::valid_file_name() (no '/', not
// '.' or '..'), opened with openat(dirfd, name, O_NOFOLLOW | O_NONBLOCK)
// and checked to be regular files with fstat: `../x`, absolute names,
// symlinks (to anywhere), devices and FIFOs are all "no such file" (106).
// The SHA-256 of a file is computed on a worker thread from the opened
// descriptor (so the bytes hashed are the bytes sent) and cached by inode,
// size and times.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <asio/io_context.hpp>
#include <asio/ip/address.hpp>

#include "improto/error.hpp"
#include "improto/net/common.hpp"
#include "improto/relay/messages.hpp"
#include "improto/transfer/messages.hpp"

namespace improto::server {

struct file_service_config {
  std::string dir;                        // empty: no files served (LIST FILES is empty, DOWNLOAD 106)
  std::size_t max_transfers = 64;         // at once, every user (ERROR 109 past it)
  std::size_t max_transfers_per_user = 4; // at once, one user
  std::chrono::milliseconds paused_timeout = std::chrono::minutes(5);  // then dropped
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(30);  // client silent: dropped
  // DATA datagrams at most; the path MTU makes them smaller (64 KiB on
  // loopback, 1,472 bytes on Ethernet).
  std::size_t datagram_size = transfer::max_datagram;
};

class file_service {
 public:
  using reply_handler = std::function<void(relay::message)>;

  // not_found / io_error when `config.dir` is set but not a directory.
  static result<std::unique_ptr<file_service>> open(asio::io_context& io,
                                                    file_service_config config,
                                                    net::logger log);
  ~file_service();

  relay::message list(const relay::list_files& request) const;
  // Answers through `reply` (at once, or after hashing the file): TRANSFER
  // or ERROR 106/108/109. `client` is the TCP peer's address, `local` the
  // server's address on that connection (the UDP socket binds there).
  void download(const std::string& user, const asio::ip::address& client,
                const asio::ip::address& local, const relay::download& request,
                reply_handler reply);
  relay::message pause(const std::string& user, std::uint32_t id);
  relay::message resume(const std::string& user, std::uint32_t id);
  relay::message cancel(const std::string& user, std::uint32_t id);
  // The user's sockets closed: its transfers are cancelled.
  void user_gone(const std::string& user);
  // Closes every transfer (server shutdown).
  void stop();

  std::size_t transfer_count() const;

  struct state;

 private:
  explicit file_service(std::shared_ptr<state> s);
  std::shared_ptr<state> state_;
};

}  // namespace improto::server

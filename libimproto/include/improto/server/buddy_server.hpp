#pragma once

// The buddy server of protocol 2 (seed 002) as a library type: bind, start,
// stop, on any io_context.
//
//  * TCP, one request per connection: REG / ADD / DEL, answered with one
//    line (`200 OK`, `201 INVALID`, `202 NO SUCH USER`, `203 USER EXISTS`)
//    only after the change is committed to SQLite, then closed.
//  * UDP: SET (no reply) and GET (one datagram: a line per buddy; a list
//    too long for one datagram is cut after the last line that fits).
//
// Users and buddy lists live in `<data_dir>/buddy.sqlite3`; a copy is kept
// in memory (loaded by bind(), updated after each commit), so GET never
// touches SQLite.
//
// With `store_url` (PostgreSQL) several servers ("nodes") may share one
// database: each keeps its copy current from the database's change feed
// (store::buddy_feed: other nodes' commits reach it within milliseconds),
// and ADD/DEL are always decided by the database, never by a copy that
// could be stale. While the database is unreachable, writes are answered
// `503 UNAVAILABLE` (not committed: try again), GETs are answered from the
// copy, and the server reconnects by itself. Statuses are soft state in memory only: an ONLINE that is
// not refreshed within `status_ttl` reads as OFFLINE (with the last address).
// Commits run on a worker thread (group_committer); everything else lives on
// the io_context's thread. Destroying the server stops it; its io_context
// may then run on, run again or be destroyed (docs/design.md, "Lifetimes").

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>

#include "improto/buddy/messages.hpp"
#include "improto/error.hpp"
#include "improto/server/buddy_status.hpp"
#include "improto/net/common.hpp"
#include "improto/net/tcp.hpp"
#include "improto/net/udp.hpp"
#include "improto/store/options.hpp"
#include "improto/wire/framing.hpp"

namespace improto::server {

struct buddy_config {
  std::string host = "127.0.0.1";
  std::uint16_t tcp_port = buddy::default_tcp_port;  // 0 binds a free port
  std::uint16_t udp_port = buddy::default_udp_port;  // 0 binds a free port
  // Holds buddy.sqlite3; must exist.
  std::filesystem::path data_dir = ".";
  // Empty: <data_dir>/buddy.sqlite3. "postgresql://...": that database,
  // shared with any other node using it; data_dir is then unused.
  std::string store_url;
  store::options store;
  // An ONLINE not refreshed this long reads OFFLINE; 0 or less: never.
  std::chrono::milliseconds status_ttl = std::chrono::seconds(300);
  net::stream_limits stream = [] {
    net::stream_limits s;
    // One short request per connection: a socket silent this long is dead.
    s.idle_timeout = std::chrono::minutes(2);
    s.message_timeout = std::chrono::seconds(30);
    s.max_queued_bytes = 4096;
    return s;
  }();
  net::datagram_limits datagram = [] {
    net::datagram_limits d;
    // Requests are a few dozen bytes; longer datagrams are dropped unread.
    d.max_datagram = 1024;
    // A GET answer can be 64 KB: bound what a spoofed source can make us
    // reflect, while leaving room for many users behind one NAT address.
    d.rate_per_source = 200;
    d.burst = 400;
    return d;
  }();
  // The longest request line is ~70 bytes; leave room for liberal blanks.
  wire::limits wire = [] {
    wire::limits w;
    w.max_line = 1024;
    return w;
  }();
  net::logger log;  // one line per event; may be empty
};

class buddy_server {
 public:
  // Binds both sockets (address_in_use, invalid_argument as values), opens
  // the store and loads users and buddy lists (storage_error).
  static result<std::unique_ptr<buddy_server>> bind(asio::io_context& io, buddy_config config);
  // Before start(): statuses are shared through `status` (several nodes
  // behind one address answer GET alike; see server/buddy_status.hpp).
  void share_status(std::unique_ptr<buddy_status_store> status);
  // Stops the server (as stop()); its io_context may then run on, run again
  // or be destroyed without running: the coroutines own what they touch.
  ~buddy_server();

  asio::ip::tcp::endpoint tcp_endpoint() const;
  asio::ip::udp::endpoint udp_endpoint() const;
  // Logs `listening on HOST:PORT` for TCP, then UDP, and starts serving;
  // returns at once (the io_context runs the server).
  void start();
  // Stops accepting and reading datagrams; requests waiting for their
  // commit still get their answer, the other connections are closed. Safe
  // to call twice; call on the io_context's thread.
  void stop();

  std::size_t user_count() const;
  // Open TCP connections, including those waiting for a commit.
  std::size_t connection_count() const;
  // Datagrams dropped over the per-source rate, and oversized ones.
  std::uint64_t dropped_datagrams() const;

  struct impl;

 private:
  explicit buddy_server(std::shared_ptr<impl> impl);
  std::shared_ptr<impl> impl_;  // shared with the coroutines serving it
};

}  // namespace improto::server

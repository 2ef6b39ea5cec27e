#pragma once

// The registry server of protocol 1 (seeds 000, 004) as a library type:
// HTTP/1.1 on TCP, `POST /userlist.txt` with `REGISTER name@ip:port` or
// `LOGOUT name@ip:port`, `GET /userlist.txt` for the list.
//
//  * Durable: the list lives in `<data_dir>/registry.sqlite3`, or in the
//    PostgreSQL database of `store_url` (then a storage failure, e.g. the
//    database server down, is answered 503: try again). Writes go
//    through a group_committer (one fsync per group, off the io thread
//    unless commit_on_io) and a success is answered only once its change is
//    committed.
//  * GET never touches SQLite: it is served from an in-memory copy loaded at
//    bind() and updated after each commit. Each GET answers one immutable
//    snapshot of the list, streamed as the peer reads it, so a list larger
//    than the per-connection queue (stream_limits::max_queued_bytes) is
//    still answered in full and a change while it streams does not mix in.
//  * LOGOUT only from the IP address that registered the entry (the TCP
//    peer, stored with it) unless logout_from_any.
//  * Keep-alive and pipelining: replies leave in request order, and a GET
//    pipelined behind a POST on the same connection sees that POST's effect.
//  * One server per data directory (or database): the in-memory copy
//    assumes nobody else writes the list.
//
// Threading: run the io_context on one thread; all calls on that thread.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include "improto/error.hpp"
#include "improto/net/common.hpp"
#include "improto/net/tcp.hpp"
#include "improto/registry/decoder.hpp"
#include "improto/store/options.hpp"
#include "improto/wire/framing.hpp"

namespace improto::server {

struct registry_config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 65432;  // the seed's sample run; 0 binds a free port
  std::filesystem::path data_dir = ".";  // holds registry.sqlite3
  // Empty: <data_dir>/registry.sqlite3. "postgresql://...": that database
  // (store::registry_store::connect); data_dir is then unused.
  std::string store_url;
  net::stream_limits stream;   // idle 5 min, partial message 30 s, 10,000 connections
  // Request limits: line length, header count, body size. A REGISTER body
  // is under 400 bytes; 4 KiB leaves room for clients that pad.
  wire::limits http = [] {
    wire::limits l = registry::default_request_limits;
    l.max_body = 4 * 1024;
    return l;
  }();
  // HTTP clients speak first: a connection is accepted once its request
  // has arrived (net::tcp_listener::set_defer_accept()), which spares a
  // one-request connection a wake-up and a read in vain. A client that stays
  // silent is accepted about this long after connecting (then counted and
  // idle-timed as usual). 0: accept every connection at once.
  std::chrono::seconds defer_accept{1};
  // Requests one connection may have waiting for replies before the server
  // stops reading from it.
  std::size_t max_pipelined = 256;
  // Entries the list may hold; a REGISTER past it is answered 503 (user
  // limit reached). Bounds the store and every GET's answer.
  std::size_t max_users = 1'000'000;
  // false: a LOGOUT is accepted only from the IP address whose connection
  // registered the entry (others get 403). true: the seed's rule, from any.
  bool logout_from_any = false;
  store::options store;        // synchronous=FULL: acknowledged means on disk
  // SQLite store with synchronous full/extra: commit each group on the io
  // thread, as Redis does with appendfsync always, instead of on a worker
  // thread. A change costs less CPU (no thread hand-off, and the requests
  // that arrive during one fsync are read and committed together), but
  // everything else the server does, GETs included, waits behind each
  // fsync. The file is then locked for this server alone
  // (store::options::exclusive). Without an fsync per commit (normal, off)
  // commits are always on the io thread; a PostgreSQL store always has
  // its worker.
  bool commit_on_io = false;
  net::logger log;             // one line per event; may be empty
  // A line per accepted REGISTER/LOGOUT (off: start, stop, refusals and
  // errors only; a busy server then makes no write(2) for its log).
  bool log_changes = true;
};

class registry_server {
 public:
  static constexpr const char* store_file_name = "registry.sqlite3";

  // Opens (or creates) the store and loads the list, then binds the
  // listening socket. Errors: storage_error (bad data directory or file),
  // address_in_use, invalid_argument.
  static result<std::unique_ptr<registry_server>> bind(asio::io_context& io,
                                                       registry_config config);
  // Stops the server (as stop()); its io_context may then run on, run again
  // or be destroyed without running: the coroutines own what they touch.
  ~registry_server();

  asio::ip::tcp::endpoint local_endpoint() const;
  // Logs `listening on HOST:PORT` and starts accepting; returns at once.
  void start();
  // Stops accepting; each connection is closed once the replies it is owed
  // (commits in flight included) are sent. Safe to call twice.
  void stop();

  std::size_t user_count() const;
  std::size_t connection_count() const;
  // Writes queued or being committed.
  std::size_t pending_writes() const;

  struct impl;

 private:
  explicit registry_server(std::shared_ptr<impl> impl);
  std::shared_ptr<impl> impl_;  // shared with the coroutines serving it
};

}  // namespace improto::server

#pragma once

// A NATS connection (libnats) for servers running on one asio io_context.
//
// Messages use a libnats connection in event-loop mode driven by the io
// thread: the io thread reads and parses the socket and hands each message
// to its handler, with no libnats thread in between; it is also the only
// thread that writes that socket (a publish from another thread is written
// by the io thread once libnats' write callback has posted it). Requests
// use inbox subscriptions and asio timers, so waiting never blocks the io
// thread. JetStream key-value calls block, so they use a second, threaded
// connection and run, in the order they were given, on one worker thread;
// their results are posted back. Publishing is safe from any thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <asio/io_context.hpp>

#include "improto/error.hpp"
#include "improto/net/common.hpp"

namespace improto::cluster {

// "nats://h:p[,nats://h:p...]" -> the URLs (nats:// and tls:// schemes).
result<std::vector<std::string>> parse_servers(std::string_view list);

struct nats_options {
  std::vector<std::string> servers;
  std::string name;  // the connection's name, shown by the server's monitoring
  // Between attempts at one server (the others in the list are tried first).
  std::chrono::milliseconds reconnect_wait = std::chrono::milliseconds(250);
  // Bound of a JetStream call (KV get/create/delete, bucket lookup).
  std::chrono::milliseconds jetstream_timeout = std::chrono::seconds(2);
  net::logger log;
};

struct nats_message {
  std::string subject, reply, data;
};

// One entry of a KV bucket.
struct kv_entry {
  std::string key, value;
  std::uint64_t revision = 0;
  std::chrono::system_clock::time_point created;
};

class kv_bucket;

class nats_connection {
 public:
  using handler = std::function<void(nats_message&&)>;

  // Connects (blocking: call before the io_context runs); connection_refused
  // with the servers' error when none answers.
  static result<std::unique_ptr<nats_connection>> connect(asio::io_context& io,
                                                          nats_options options);
  ~nats_connection();
  nats_connection(const nats_connection&) = delete;
  nats_connection& operator=(const nats_connection&) = delete;

  // Subscriptions are numbered; `handler` runs on the io thread until
  // unsubscribe(id) or the connection's end.
  result<std::uint64_t> subscribe(const std::string& subject, handler h);
  void unsubscribe(std::uint64_t id);

  // Any thread. Fails (io_error) when the connection is closed or its
  // reconnect buffer is full.
  result<void> publish(const std::string& subject, std::string_view data,
                       const std::string& reply = {});

  // A request with one answer: `done` gets it, or `timeout` / `not_found`
  // (no responders: nobody subscribes to `subject`) / `io_error`.
  void request(const std::string& subject, std::string_view data,
               std::chrono::milliseconds timeout, std::function<void(result<nats_message>)> done);
  // Scatter-gather: every answer goes to `each`; `done` runs once, when
  // `each` returns false (it has all it wants) or at the timeout.
  void gather(const std::string& subject, std::string_view data, std::chrono::milliseconds timeout,
              std::function<bool(nats_message&&)> each, std::function<void()> done);

  // Binds to a KV bucket, creating it (with `replicas`, and `ttl`: the
  // age at which a value goes; 0: never) when missing. Blocking.
  result<std::shared_ptr<kv_bucket>> key_value(const std::string& bucket, int replicas,
                                               std::chrono::milliseconds ttl = {});

  // Blocking, for run_blocking jobs only (the io thread reads the answer):
  // returns once the server has processed everything sent before,
  // subscriptions included.
  result<void> flush();

  // Runs `job` on the KV worker thread (FIFO), then `then` on the io thread.
  void run_blocking(std::function<void()> job, std::function<void()> then = {});

  bool connected() const;
  asio::io_context& io() const noexcept;

  struct state;

 private:
  explicit nats_connection(std::shared_ptr<state> s);
  std::shared_ptr<state> state_;
};

// Blocking KV calls: use them from nats_connection::run_blocking jobs.
class kv_bucket {
 public:
  virtual ~kv_bucket() = default;
  // The new revision; name_taken when the key exists.
  virtual result<std::uint64_t> create(const std::string& key, std::string_view value) = 0;
  // not_found when missing or deleted.
  virtual result<kv_entry> get(const std::string& key) = 0;
  // Deletes only while `revision` is the key's last: rejected otherwise.
  virtual result<void> erase(const std::string& key, std::uint64_t revision) = 0;
  // Every key present (deleted ones excluded).
  virtual result<std::vector<std::string>> keys() = 0;
  // Sets the key's value whatever it was: the new revision.
  virtual result<std::uint64_t> put(const std::string& key, std::string_view value) = 0;
  // Every present value, then every new one, go to `each` on the io thread
  // (a thread of the watch waits for them) until the returned handle goes.
  virtual result<std::shared_ptr<void>> watch(std::function<void(kv_entry&&)> each) = 0;
};

}  // namespace improto::cluster

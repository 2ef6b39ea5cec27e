// The server cores in-process. Each Python server object owns an
// io_context, a thread running it and the server; Python threads never
// touch the server directly: they post to the io thread and wait, with the
// GIL released, so a server keeps serving while Python code runs.

// A standard header before Asio's: Asio picks its aligned allocator from
// libstdc++'s config macros, and every file must pick the same one.
#include <cmath>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "errors.hpp"
#include "improto/net/common.hpp"
#include "improto/server/buddy_server.hpp"
#include "improto/server/registry_server.hpp"
#include "improto/server/relay_server.hpp"
#include "improto/store/options.hpp"
#include "servers.hpp"
#if IMPROTO_HAS_NATS
#include "improto/cluster/buddy_status.hpp"
#include "improto/cluster/relay_node.hpp"
#endif

namespace py = pybind11;
using namespace std::chrono_literals;

namespace improto::python {
namespace {

// --- arguments: the tools' flags, checked the same way -----------------------

std::chrono::milliseconds seconds_arg(const char* what, double seconds) {
  if (!std::isfinite(seconds) || seconds <= 0 || seconds > 1e9) {
    raise(errc::invalid_config, std::string(what) + ": expected a number of seconds above 0");
  }
  return std::chrono::milliseconds(std::max<long long>(1, std::llround(seconds * 1000.0)));
}

std::size_t count_arg(const char* what, long long value, long long max, long long min = 1) {
  if (value < min || value > max) {
    raise(errc::invalid_config, std::string(what) + ": expected a whole number from " +
                                    std::to_string(min) + " to " + std::to_string(max));
  }
  return static_cast<std::size_t>(value);
}

std::uint16_t port_arg(const char* what, long long value) {
  if (value < 0 || value > 65535) {
    raise(errc::invalid_config, std::string(what) + ": expected 0 (any free port) to 65535");
  }
  return static_cast<std::uint16_t>(value);
}

std::string host_arg(const std::string& host) {
  if (auto a = net::parse_address(host); !a) raise(errc::invalid_config, "host: " + a.error().detail());
  return host;
}

std::filesystem::path data_dir_arg(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    raise(errc::invalid_config,
          "data_dir: '" + dir.string() + "' does not exist or is not a directory");
  }
  return dir;
}

store::sync_level sync_arg(const std::string& sync) {
  if (sync == "full") return store::sync_level::full;
  if (sync == "normal") return store::sync_level::normal;
  if (sync == "off") return store::sync_level::off;
  if (sync == "extra") return store::sync_level::extra;
  raise(errc::invalid_config, "sync: expected 'full', 'normal', 'extra' or 'off', not '" + sync + "'");
}

// store="postgresql://..." (imregistryd/imbuddyd --store); "" keeps SQLite.
std::string store_arg(const std::string& url) {
  if (url.empty()) return url;
  if (!store::is_postgresql_url(url)) {
    raise(errc::invalid_config, "store: expected a postgresql:// URL, not '" + store::redact(url) +
                                    "' (a SQLite file goes in data_dir)");
  }
  if (!store::have_postgresql()) {
    raise(errc::invalid_config,
          "store: this build has no PostgreSQL support (built without libpq; install "
          "libpq-dev and rebuild)");
  }
  return url;
}

int replicas_arg(long long replicas) {
  return static_cast<int>(count_arg("kv_replicas", replicas, 5));
}

#if IMPROTO_HAS_NATS
std::vector<std::string> nats_servers_arg(const char* what, const std::string& list) {
  auto urls = cluster::parse_servers(list);
  if (!urls) raise(errc::invalid_config, std::string(what) + ": " + urls.error().detail());
  return std::move(*urls);
}
#else
[[noreturn]] void no_cluster_support(const char* what) {
  raise(errc::invalid_config,
        std::string(what) +
            ": this build has no cluster support (built without libnats; install libnats-dev "
            "and rebuild)");
}
#endif

// A failure to reach NATS keeps its errc (connection_refused, ...) with
// what was being done in front, as the tools word it.
template <class T>
T joined_or_raise(result<T>&& r, const char* doing) {
  if (!r) throw raised(error(r.error().code(), std::string(doing) + ": " + r.error().message()));
  return std::move(*r);
}

// bind() reports a bad address as invalid_argument; for a caller of a
// constructor that is a bad option, not a bad message.
template <class T>
T bound_or_raise(result<T>&& r) {
  if (!r && r.error() == errc::invalid_argument) {
    throw raised(error(errc::invalid_config, r.error().detail()));
  }
  return value_or_raise(std::move(r));
}

// --- log lines for Python ----------------------------------------------------

// The server thread never runs Python code: it queues its log lines here and
// a Python thread (improto/servers.py) takes them with next_log_line() and
// calls the user's callback. So a callback may do anything (stop the server,
// drop the last reference to it) without deadlocking the server's thread.
class log_queue {
 public:
  static constexpr std::size_t max_lines = 10'000;  // past this, lines are counted, not kept

  void push(std::string_view line) {
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      if (lines_.size() >= max_lines) {
        ++dropped_;
        return;
      }
      if (dropped_ > 0) {
        lines_.push_back(std::to_string(dropped_) + " log lines dropped (the log callback is slow)");
        dropped_ = 0;
      }
      lines_.emplace_back(line);
    }
    ready_.notify_one();
  }

  // Ends the stream once what is queued has been taken.
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    ready_.notify_all();
  }

  // The next line; nullopt once closed and empty. Blocks: call without the GIL.
  std::optional<std::string> pop() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [this] { return closed_ || !lines_.empty(); });
    if (lines_.empty()) return std::nullopt;
    auto line = std::move(lines_.front());
    lines_.pop_front();
    return line;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::string> lines_;
  std::uint64_t dropped_ = 0;
  bool closed_ = false;
};

// --- one server on its own thread --------------------------------------------

template <class Server>
class runner {
 public:
  using drained_fn = std::function<bool(const Server&)>;

  runner() = default;
  runner(const runner&) = delete;
  runner& operator=(const runner&) = delete;
  ~runner() { stop(2000ms); }

  asio::io_context& io() { return loop_->io; }

  void launch(std::unique_ptr<Server> server, drained_fn drained) {
    server_ = std::move(server);
    drained_ = std::move(drained);
    server_->start();  // before the thread exists, so no race with it
    thread_ = std::thread([this] { loop_->io.run(); });
  }

  bool running() const {
    std::lock_guard lock(mutex_);
    return !stopping_;
  }

  // Runs f(server) on the io thread and returns its result, or nullopt
  // once the server is stopping. Call without the GIL.
  template <class F>
  auto call(F f) -> std::optional<std::invoke_result_t<F&, const Server&>> {
    using R = std::invoke_result_t<F&, const Server&>;
    std::promise<R> promise;
    auto future = promise.get_future();
    {
      // Posted before stop()'s handler, so it runs before the loop ends.
      std::lock_guard lock(mutex_);
      if (stopping_) return std::nullopt;
      asio::post(loop_->io, [&] { promise.set_value(f(*server_)); });
    }
    return future.get();
  }

  // Stops the server, lets connections drain for up to `grace`, then stops
  // the thread and destroys the server. Idempotent and safe from several
  // threads at once. Call without the GIL.
  void stop(std::chrono::milliseconds grace) {
    std::lock_guard stopping(stop_mutex_);
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
      if (!thread_.joinable()) return;  // never launched
      auto deadline = net::clock::now() + grace;
      asio::post(loop_->io, [this, deadline] {
        server_->stop();
        poll_drained(deadline);
      });
    }
    thread_.join();
    // The server, then its io_context without running it again (the
    // server's coroutines own what they touch): the completions still queued
    // (an accept that finished as stop() closed the listener, reads aborted
    // by a close) are freed with it, closing their sockets now, so no client
    // is left connected to a stopped server until garbage collection.
    server_.reset();
    loop_.reset();
  }

 private:
  void poll_drained(net::clock::time_point deadline) {
    if (drained_(*server_) || net::clock::now() >= deadline) {
      loop_->work.reset();
      loop_->io.stop();
      return;
    }
    loop_->timer.expires_after(2ms);
    loop_->timer.async_wait([this, deadline](std::error_code) { poll_drained(deadline); });
  }

  // The io_context and what belongs to it; stop() destroys it after the server.
  struct loop {
    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
    asio::steady_timer timer{io};
  };
  std::unique_ptr<loop> loop_ = std::make_unique<loop>();
  std::unique_ptr<Server> server_;
  drained_fn drained_;
  std::thread thread_;
  std::mutex stop_mutex_;     // one stop() at a time; held until the thread is joined
  mutable std::mutex mutex_;  // guards stopping_ and posting against it
  bool stopping_ = false;
};

// What every Python-facing server has: the runner, the log queue (shared
// with the server's logger, so it outlives both) and the address.
template <class Server>
struct handle {
  explicit handle(bool log) : logs(log ? std::make_shared<log_queue>() : nullptr) {}
  ~handle() {
    // pybind11 destroys us with the GIL held; stopping may wait for the thread.
    py::gil_scoped_release nogil;
    run.stop(2000ms);
    if (logs) logs->close();
  }
  net::logger logger() {
    if (!logs) return {};
    return [queue = logs](std::string_view line) { queue->push(line); };
  }
  void stop(double grace) {
    auto ms = grace <= 0 ? 0ms : seconds_arg("timeout", grace);
    py::gil_scoped_release nogil;
    run.stop(ms);
    if (logs) logs->close();  // after the join: every line the server wrote is queued
  }
  py::object next_log_line() {
    if (!logs) return py::none();
    std::optional<std::string> line;
    {
      py::gil_scoped_release nogil;
      line = logs->pop();
    }
    if (!line) return py::none();
    PyObject* text = PyUnicode_DecodeUTF8(line->data(), static_cast<Py_ssize_t>(line->size()), "replace");
    if (!text) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(text);
  }
  template <class F>
  auto call(F f) {
    auto value = [&] {
      py::gil_scoped_release nogil;
      return run.call(std::move(f));
    }();
    if (!value) throw py::value_error("the server is stopped");
    return *value;
  }

  std::shared_ptr<log_queue> logs;
  runner<Server> run;
  std::string host;
  std::uint16_t port = 0;
  std::uint16_t udp_port = 0;
};

using registry_handle = handle<server::registry_server>;
using buddy_handle = handle<server::buddy_server>;
using relay_handle = handle<server::relay_server>;

std::unique_ptr<registry_handle> make_registry(const std::string& host, long long port,
                                               const std::filesystem::path& data_dir,
                                               double idle_timeout, double message_timeout,
                                               long long max_connections, long long max_body,
                                               long long max_line, long long max_headers,
                                               long long max_pipelined, long long max_users,
                                               bool logout_from_any, const std::string& sync,
                                               const std::string& store_url, bool commit_on_io,
                                               long long defer_accept, bool log) {
  server::registry_config config;
  config.host = host_arg(host);
  config.port = port_arg("port", port);
  config.data_dir = data_dir_arg(data_dir);
  config.stream.idle_timeout = seconds_arg("idle_timeout", idle_timeout);
  config.stream.message_timeout = seconds_arg("message_timeout", message_timeout);
  config.stream.max_connections = count_arg("max_connections", max_connections, 1'000'000);
  config.http.max_body = count_arg("max_body", max_body, 1LL << 30);
  config.http.max_line = count_arg("max_line", max_line, 1LL << 20);
  config.http.max_headers = count_arg("max_headers", max_headers, 10'000);
  config.max_pipelined = count_arg("max_pipelined", max_pipelined, 1'000'000);
  config.max_users = count_arg("max_users", max_users, 1LL << 40);
  config.logout_from_any = logout_from_any;
  config.store.synchronous = sync_arg(sync);
  if (commit_on_io && !store_url.empty()) {
    raise(errc::invalid_config, "commit_on_io: only for the SQLite store in data_dir, not with store=");
  }
  config.store_url = store_arg(store_url);
  config.commit_on_io = commit_on_io;
  config.defer_accept = std::chrono::seconds(
      static_cast<std::int64_t>(count_arg("defer_accept", defer_accept, 3600, 0)));

  auto h = std::make_unique<registry_handle>(log);
  config.log = h->logger();
  py::gil_scoped_release nogil;  // opening SQLite and loading the list take a while
  auto server = bound_or_raise(server::registry_server::bind(h->run.io(), std::move(config)));
  auto ep = server->local_endpoint();
  h->host = ep.address().to_string();
  h->port = ep.port();
  h->run.launch(std::move(server), [](const server::registry_server& s) {
    return s.connection_count() == 0 && s.pending_writes() == 0;
  });
  return h;
}

std::unique_ptr<buddy_handle> make_buddy(const std::string& host, long long tcp_port,
                                         long long udp_port, const std::filesystem::path& data_dir,
                                         double ttl, double idle_timeout, double message_timeout,
                                         long long max_connections, double udp_rate,
                                         const std::string& sync, const std::string& store_url,
                                         const std::string& status, long long kv_replicas,
                                         bool log) {
  server::buddy_config config;
  config.host = host_arg(host);
  config.tcp_port = port_arg("port", tcp_port);
  config.udp_port = port_arg("udp_port", udp_port);
  config.data_dir = data_dir_arg(data_dir);
  config.status_ttl = seconds_arg("ttl", ttl);
  config.stream.idle_timeout = seconds_arg("idle_timeout", idle_timeout);
  config.stream.message_timeout = seconds_arg("message_timeout", message_timeout);
  config.stream.max_connections = count_arg("max_connections", max_connections, 1'000'000);
  if (!std::isfinite(udp_rate) || udp_rate < 0) {
    raise(errc::invalid_config, "udp_rate: expected datagrams per second, 0 for no limit");
  }
  config.datagram.rate_per_source = udp_rate;
  config.datagram.burst = udp_rate * 2;
  config.store.synchronous = sync_arg(sync);
  config.store_url = store_arg(store_url);
  int replicas = replicas_arg(kv_replicas);
#if IMPROTO_HAS_NATS
  std::optional<cluster::buddy_status_options> shared;
  if (!status.empty()) {
    shared.emplace();
    shared->nats.servers = nats_servers_arg("status", status);
    shared->replicas = replicas;
    shared->ttl = config.status_ttl;
  }
#else
  (void)replicas;
  if (!status.empty()) no_cluster_support("status");
#endif

  auto h = std::make_unique<buddy_handle>(log);
  config.log = h->logger();
  py::gil_scoped_release nogil;
  auto logger = config.log;
  auto server = bound_or_raise(server::buddy_server::bind(h->run.io(), std::move(config)));
#if IMPROTO_HAS_NATS
  if (shared) {
    shared->log = logger;
    // Blocking (connects, binds the bucket): before the io thread runs.
    server->share_status(joined_or_raise(
        cluster::open_buddy_status(h->run.io(), std::move(*shared)), "cannot share statuses"));
  }
#endif
  auto tcp = server->tcp_endpoint();
  h->host = tcp.address().to_string();
  h->port = tcp.port();
  h->udp_port = server->udp_endpoint().port();
  h->run.launch(std::move(server),
                [](const server::buddy_server& s) { return s.connection_count() == 0; });
  return h;
}

std::unique_ptr<relay_handle> make_relay(const std::string& host, long long port,
                                         double receiver_timeout, double idle_timeout,
                                         double message_timeout, long long max_body,
                                         long long max_connections, long long max_in_flight,
                                         long long max_unanswered, double pairing_timeout,
                                         const std::optional<std::filesystem::path>& files,
                                         long long max_transfers, long long max_user_transfers,
                                         double paused_timeout, double transfer_timeout,
                                         const std::string& cluster_servers,
                                         const std::string& node, double heartbeat,
                                         double node_timeout, long long kv_replicas, bool log) {
  server::relay_config config;
  config.host = host_arg(host);
  config.port = port_arg("port", port);
  config.receiver_timeout = seconds_arg("receiver_timeout", receiver_timeout);
  config.stream.idle_timeout = seconds_arg("idle_timeout", idle_timeout);
  config.stream.message_timeout = seconds_arg("message_timeout", message_timeout);
  config.wire.max_body = count_arg("max_body", max_body, 1LL << 30);
  config.stream.max_connections = count_arg("max_connections", max_connections, 1'000'000);
  config.max_in_flight = count_arg("max_in_flight", max_in_flight, 1'000'000);
  config.max_unanswered = count_arg("max_unanswered", max_unanswered, 1'000'000);
  config.pairing_timeout = seconds_arg("pairing_timeout", pairing_timeout);
  // The same bounds as imrelayd's flags.
  if (files) {
    std::error_code ec;
    if (!std::filesystem::is_directory(*files, ec)) {
      raise(errc::invalid_config,
            "files: '" + files->string() + "' does not exist or is not a directory");
    }
    config.files.dir = files->string();
  }
  config.files.max_transfers = count_arg("max_transfers", max_transfers, 100'000);
  config.files.max_transfers_per_user = count_arg("max_user_transfers", max_user_transfers, 100'000);
  if (!(paused_timeout > 0 && paused_timeout <= 86400)) {
    raise(errc::invalid_config, "paused_timeout: expected more than 0, at most 86400 seconds");
  }
  config.files.paused_timeout = seconds_arg("paused_timeout", paused_timeout);
  if (!(transfer_timeout > 0 && transfer_timeout <= 3600)) {
    raise(errc::invalid_config, "transfer_timeout: expected more than 0, at most 3600 seconds");
  }
  config.files.idle_timeout = seconds_arg("transfer_timeout", transfer_timeout);

  // The same rules as imrelayd's --cluster, --node, --heartbeat, --node-timeout, --kv-replicas.
  bool clustered = !cluster_servers.empty() || !node.empty();
  int replicas = replicas_arg(kv_replicas);
#if IMPROTO_HAS_NATS
  cluster::relay_node_options node_options;
  if (clustered) {
    if (cluster_servers.empty() || node.empty()) {
      raise(errc::invalid_config, "cluster and node go together");
    }
    node_options.nats.servers = nats_servers_arg("cluster", cluster_servers);
    node_options.node = node;
    node_options.replicas = replicas;
    if (!(heartbeat > 0 && heartbeat <= 60)) {
      raise(errc::invalid_config, "heartbeat: expected more than 0, at most 60 seconds");
    }
    if (!(node_timeout >= 3 * heartbeat && node_timeout <= 600)) {
      raise(errc::invalid_config, "node_timeout: expected 3 heartbeats to 600 seconds");
    }
    node_options.heartbeat = seconds_arg("heartbeat", heartbeat);
    node_options.node_timeout = seconds_arg("node_timeout", node_timeout);
    node_options.forward_timeout = config.receiver_timeout;
  }
#else
  (void)replicas;
  (void)heartbeat;
  (void)node_timeout;
  if (clustered) no_cluster_support("cluster");
#endif

  auto h = std::make_unique<relay_handle>(log);
  config.log = h->logger();
  py::gil_scoped_release nogil;
  std::unique_ptr<server::relay_cluster> node_core;
#if IMPROTO_HAS_NATS
  if (clustered) {
    node_options.log = config.log;
    // Blocking (connects, binds the names bucket): before the io thread runs.
    node_core = joined_or_raise(cluster::open_relay_node(h->run.io(), std::move(node_options)),
                                "cannot join the cluster");
  }
#endif
  auto server = bound_or_raise(
      server::relay_server::bind(h->run.io(), std::move(config), std::move(node_core)));
  auto ep = server->local_endpoint();
  h->host = ep.address().to_string();
  h->port = ep.port();
  h->run.launch(std::move(server),
                [](const server::relay_server& s) { return s.connection_count() == 0; });
  return h;
}

// The members every server class shares.
template <class H, class Cls>
void add_common(Cls& cls) {
  cls.def_property_readonly("host", [](const H& h) { return h.host; },
                            "The address the server listens on, e.g. '127.0.0.1'.")
      .def_property_readonly("port", [](const H& h) { return h.port; },
                             "The TCP port the server listens on (the one bound when 0 was asked).")
      .def_property_readonly("running", [](const H& h) { return h.run.running(); },
                             "True until stop().")
      .def("stop", &H::stop, py::arg("timeout") = 2.0,
           "Stops accepting, closes the connections once what they are owed is sent "
           "(waiting up to `timeout` seconds), then stops the server's thread. "
           "Idempotent.")
      .def("next_log_line", &H::next_log_line,
           "The next log line of the server, waiting for it (without the GIL); None once the "
           "server is stopped and every line was taken, or when it was made with log=False.")
      .def(
          "connection_count",
          [](H& h) { return h.call([](const auto& s) { return s.connection_count(); }); },
          "Open TCP connections. Raises ValueError once stopped.")
      .def(
          "user_count", [](H& h) { return h.call([](const auto& s) { return s.user_count(); }); },
          "Registered users. Raises ValueError once stopped.");
}

}  // namespace

void register_servers(py::module_& m) {
#if IMPROTO_HAS_NATS
  m.attr("HAS_NATS") = true;
#else
  m.attr("HAS_NATS") = false;
#endif
  m.attr("HAS_POSTGRESQL") = store::have_postgresql();

  auto registry = py::class_<registry_handle>(
      m, "_RegistryServer",
      "The registry server core (protocol 1) on its own thread; see improto.RegistryServer.");
  registry.def(py::init(&make_registry), py::arg("host"), py::arg("port"), py::arg("data_dir"),
               py::arg("idle_timeout"), py::arg("message_timeout"), py::arg("max_connections"),
               py::arg("max_body"), py::arg("max_line"), py::arg("max_headers"),
               py::arg("max_pipelined"), py::arg("max_users"), py::arg("logout_from_any"),
               py::arg("sync"), py::arg("store"), py::arg("commit_on_io"),
               py::arg("defer_accept"), py::arg("log"),
               "Binds and starts the server; improto.RegistryServer documents the options.");
  add_common<registry_handle>(registry);
  registry.def(
      "pending_writes",
      [](registry_handle& h) { return h.call([](const auto& s) { return s.pending_writes(); }); },
      "Writes queued or being committed to SQLite. Raises ValueError once stopped.");

  auto buddy = py::class_<buddy_handle>(
      m, "_BuddyServer",
      "The buddy server core (protocol 2) on its own thread; see improto.BuddyServer.");
  buddy.def(py::init(&make_buddy), py::arg("host"), py::arg("port"), py::arg("udp_port"),
            py::arg("data_dir"), py::arg("ttl"), py::arg("idle_timeout"),
            py::arg("message_timeout"), py::arg("max_connections"), py::arg("udp_rate"),
            py::arg("sync"), py::arg("store"), py::arg("status"), py::arg("kv_replicas"),
            py::arg("log"),
            "Binds and starts the server; improto.BuddyServer documents the options.");
  add_common<buddy_handle>(buddy);
  buddy.def_property_readonly("udp_port", [](const buddy_handle& h) { return h.udp_port; },
                              "The UDP port of SET/GET (the one bound when 0 was asked).");
  buddy.def(
      "dropped_datagrams",
      [](buddy_handle& h) { return h.call([](const auto& s) { return s.dropped_datagrams(); }); },
      "Datagrams dropped over the per-source rate, and oversized ones.");

  auto relay = py::class_<relay_handle>(
      m, "_RelayServer",
      "The relay server core (protocols 3 and 4) on its own thread; see improto.RelayServer.");
  relay.def(py::init(&make_relay), py::arg("host"), py::arg("port"), py::arg("receiver_timeout"),
            py::arg("idle_timeout"), py::arg("message_timeout"), py::arg("max_body"),
            py::arg("max_connections"), py::arg("max_in_flight"), py::arg("max_unanswered"),
            py::arg("pairing_timeout"), py::arg("files"), py::arg("max_transfers"),
            py::arg("max_user_transfers"), py::arg("paused_timeout"), py::arg("transfer_timeout"),
            py::arg("cluster"), py::arg("node"), py::arg("heartbeat"), py::arg("node_timeout"),
            py::arg("kv_replicas"), py::arg("log"),
            "Binds and starts the server; improto.RelayServer documents the options.");
  add_common<relay_handle>(relay);
}

}  // namespace improto::python

// The UDP half of a protocol-4 download for the Python relay clients. The
// pure-Python clients speak the TCP half (DOWNLOAD, TRANSFER, PAUSE, ...);
// the transfer_link and the NAME.part file run here, on one io thread
// shared by every download of the process. That thread never runs Python
// code: Python threads post to it and wait (without the GIL), and read a
// download's progress from a mutex-guarded snapshot.

// A standard header before Asio's (see servers.cpp).
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <tuple>
#include <utility>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "errors.hpp"
#include "improto/net/common.hpp"
#include "improto/net/transfer.hpp"
#include "improto/transfer/file.hpp"
#include "servers.hpp"

namespace py = pybind11;

namespace improto::python {
namespace {

// The process's download thread. Created on first use and never destroyed:
// a transfer that just finished keeps answering the server's FINs for a few
// seconds after Python let go of it, and the thread may still run at
// interpreter exit (it touches no Python object, so that is harmless).
class io_thread {
 public:
  static io_thread& get() {
    static io_thread* t = new io_thread;
    return *t;
  }

  asio::io_context& io() { return io_; }

  // Runs f() on the io thread and returns its result. Call without the GIL.
  template <class F>
  auto call(F f) -> std::invoke_result_t<F&> {
    using R = std::invoke_result_t<F&>;
    std::packaged_task<R()> task(std::move(f));
    auto future = task.get_future();
    {
      std::lock_guard lock(mutex_);
      if (stopped_) throw raised(error(errc::connection_closed, "downloads are shut down (the interpreter is exiting)"));
      asio::post(io_, [&task] { task(); });
    }
    return future.get();
  }

  // Runs f() on the io thread later; dropped after shutdown().
  template <class F>
  void post(F f) {
    std::lock_guard lock(mutex_);
    if (!stopped_) asio::post(io_, std::move(f));
  }

  // At interpreter exit (improto/_downloads.py registers it with atexit):
  // running transfers stop where they are (their NAME.part files stay) and
  // the thread ends before the C runtime's exit handlers run.
  void shutdown() {
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;
      stopped_ = true;
    }
    io_.stop();
    thread_.join();
  }

 private:
  io_thread() : thread_([this] { io_.run(); }) {}
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::mutex mutex_;  // guards stopped_ and posting against it
  bool stopped_ = false;
  std::thread thread_;
};

struct download_state {
  // io thread only
  std::shared_ptr<net::transfer_link> link;
  std::shared_ptr<transfer::part_file> part;
  std::string expected_sha256;
  bool cancel_requested = false;
  std::optional<error> stop_reason;

  // shared: guarded by mutex
  std::mutex mutex;
  std::condition_variable changed;
  std::uint64_t version = 0;
  std::uint64_t received = 0;
  bool done = false;
  std::optional<error> failure;
  std::string sha256;
  std::uint8_t last_byte = 0;

  void set_received(std::uint64_t n) {
    {
      std::lock_guard lock(mutex);
      if (n == received) return;
      received = n;
      ++version;
    }
    changed.notify_all();
  }

  void finish(std::optional<error> why, std::string digest, std::uint8_t last) {
    {
      std::lock_guard lock(mutex);
      failure = std::move(why);
      sha256 = std::move(digest);
      last_byte = last;
      done = true;
      ++version;
    }
    changed.notify_all();
  }
};

class download_handle {
 public:
  download_handle(const std::string& local_host, double rate_limit)
      : state_(std::make_shared<download_state>()) {
    auto address = net::parse_address(local_host);
    if (!address) raise(errc::invalid_argument, "local address: " + address.error().detail());
    if (!(rate_limit >= 0) || rate_limit > 1e15) {
      raise(errc::invalid_config, "rate_limit: expected bytes per second, 0 for no limit");
    }
    net::transfer_link_options options;
    options.rate_limit = rate_limit;
    auto& t = io_thread::get();
    auto opened = [&] {
      py::gil_scoped_release nogil;
      return t.call([&] { return net::transfer_link::open(t.io().get_executor(), *address, options); });
    }();
    state_->link = value_or_raise(std::move(opened));
    port_ = state_->link->local_port();
  }

  ~download_handle() {
    // Dropped while running (say the program forgot the handle): stop it
    // rather than let it run unobserved. The io thread owns what is left.
    auto st = state_;
    io_thread::get().post([st] {
      if (!st->link) return;
      bool finished;
      {
        std::lock_guard lock(st->mutex);
        finished = st->done;
      }
      if (!finished) {
        if (!st->stop_reason) st->stop_reason = error(errc::cancelled, "the download was dropped");
        st->link->close();
      }
    });
  }

  std::uint16_t udp_port() const { return port_; }

  // Opens (or creates) NAME.part for a file of `size` bytes, hashing what it
  // holds; returns its length: the offset the transfer must start at.
  std::uint64_t open_part(const std::filesystem::path& final_path, std::uint64_t size) {
    auto st = state_;
    auto r = [&]() -> result<std::uint64_t> {
      py::gil_scoped_release nogil;
      // Hashing a long part file takes a while: here, not on the io thread
      // the other downloads share.
      auto part = transfer::part_file::open(final_path, size);
      if (!part) return tl::unexpected(part.error());
      auto shared = std::make_shared<transfer::part_file>(std::move(*part));
      io_thread::get().call([&] { st->part = shared; });
      st->set_received(shared->offset());
      return shared->offset();
    }();
    return value_or_raise(std::move(r));
  }

  void start(const std::string& server_host, long long server_port, long long id,
             std::uint64_t size, std::uint64_t offset, const std::string& sha256) {
    auto server = net::parse_address(server_host);
    if (!server) raise(errc::invalid_argument, "server address: " + server.error().detail());
    if (server_port < 1 || server_port > 65535) raise(errc::invalid_argument, "server UDP port out of range");
    if (id < 1 || id > 0xffffffffLL) raise(errc::invalid_argument, "transfer id out of range");
    auto st = state_;
    auto r = [&] {
      py::gil_scoped_release nogil;
      return io_thread::get().call([&]() -> result<void> {
        if (!st->part) return fail(errc::invalid_argument, "open_part() first");
        if (st->part->offset() != offset) {
          return fail(errc::invalid_argument, "the part file holds " + std::to_string(st->part->offset()) +
                                                  " bytes, the transfer starts at " + std::to_string(offset));
        }
        transfer::receiver_config rc;
        rc.id = static_cast<std::uint32_t>(id);
        std::random_device rd;
        do {
          rc.key = (static_cast<std::uint64_t>(rd()) << 32) | rd();
        } while (rc.key == 0);
        rc.size = size;
        rc.offset = offset;
        st->expected_sha256 = sha256;
        auto part = st->part;
        std::weak_ptr<download_state> weak = st;
        auto started = st->link->start_receiver(
            asio::ip::udp::endpoint(*server, static_cast<std::uint16_t>(server_port)), rc,
            [part](std::span<const char> bytes) { return part->write(bytes); },
            [weak, part] {
              if (auto s = weak.lock()) s->set_received(part->offset());
            },
            [st](result<void> outcome) { ended(*st, std::move(outcome)); });
        return started;
      });
    }();
    if (!r) throw raised(std::move(r.error()));
  }

  void pause() {
    post([](download_state& st) { st.link->pause(); });
  }
  void resume() {
    post([](download_state& st) { st.link->resume(); });
  }
  // Sends ABORT; the download ends `cancelled` and its NAME.part is removed.
  void cancel() {
    post([](download_state& st) {
      st.cancel_requested = true;
      st.link->cancel();
    });
  }
  // Stops without a word to the server (its connection is gone, or the
  // client closed): the download ends with `reason` and NAME.part stays.
  void close(const std::string& errc_name, const std::string& reason) {
    errc code = errc_name == "timeout" ? errc::timeout : errc::connection_closed;
    post([code, reason](download_state& st) {
      if (!st.stop_reason) st.stop_reason = error(code, reason);
      st.link->close();
    });
  }

  // Waits (without the GIL) until the state changed since `seen`, the
  // download ended, or `timeout` seconds passed (< 0: no limit). After a
  // change it waits up to `min_gap` seconds more for the end, so a caller
  // polling in a loop wakes at most once per `min_gap` while bytes flow.
  // Returns (version, received bytes, done).
  std::tuple<std::uint64_t, std::uint64_t, bool> wait(std::uint64_t seen, double timeout,
                                                       double min_gap) {
    auto st = state_;
    py::gil_scoped_release nogil;
    std::unique_lock lock(st->mutex);
    auto ready = [&] { return st->done || st->version != seen; };
    if (timeout < 0) {
      st->changed.wait(lock, ready);
    } else {
      st->changed.wait_for(lock, std::chrono::duration<double>(std::min(timeout, 1e6)), ready);
    }
    if (!st->done && st->version != seen && min_gap > 0) {
      st->changed.wait_for(lock, std::chrono::duration<double>(std::min(min_gap, 1e6)),
                           [&] { return st->done; });
    }
    return {st->version, st->received, st->done};
  }

  // After the end: (sha256 hex, last byte value), or the error raised.
  std::tuple<std::string, int> outcome() {
    std::lock_guard lock(state_->mutex);
    if (!state_->done) raise(errc::invalid_argument, "the download is still running");
    if (state_->failure) throw raised(*state_->failure);
    return {state_->sha256, state_->last_byte};
  }

 private:
  // On the io thread, once: the part file's fate and the outcome.
  static void ended(download_state& st, result<void> r) {
    std::uint8_t last = st.link && st.link->receiver() ? st.link->receiver()->last_byte() : 0;
    if (r) {
      auto digest = st.part->finish(st.expected_sha256);
      if (!digest) {
        st.finish(digest.error(), {}, 0);
      } else {
        st.finish(std::nullopt, transfer::to_hex(*digest), last);
      }
      return;
    }
    if (st.stop_reason) {
      st.finish(*st.stop_reason, {}, 0);
      return;
    }
    if (st.cancel_requested) {
      st.part->remove();
      st.finish(error(errc::cancelled, "at the user's request"), {}, 0);
      return;
    }
    st.finish(r.error(), {}, 0);
  }

  template <class F>
  void post(F f) {
    auto st = state_;
    py::gil_scoped_release nogil;
    io_thread::get().call([&] {
      if (st->link) f(*st);
    });
  }

  std::shared_ptr<download_state> state_;
  std::uint16_t port_ = 0;
};

}  // namespace

void register_downloads(py::module_& m) {
  m.def(
      "_downloads_shutdown",
      [] {
        py::gil_scoped_release nogil;
        io_thread::get().shutdown();
      },
      "Stops the download thread (at interpreter exit); downloads fail afterwards.");
  py::class_<download_handle>(
      m, "_Download",
      "The UDP side of one download (transfer_link + NAME.part) on the package's download "
      "thread; see improto/_downloads.py.")
      .def(py::init<const std::string&, double>(), py::arg("local_host"), py::arg("rate_limit") = 0.0,
           "Binds a UDP socket on local_host (the TCP connection's local address), port 0.")
      .def_property_readonly("udp_port", &download_handle::udp_port, "The bound UDP port (DOWNLOAD's Udp-port).")
      .def("open_part", &download_handle::open_part, py::arg("final_path"), py::arg("size"),
           "Opens FINAL.part for a file of `size` bytes; returns its length.")
      .def("start", &download_handle::start, py::arg("server_host"), py::arg("server_port"),
           py::arg("id"), py::arg("size"), py::arg("offset"), py::arg("sha256"),
           "Starts receiving the TRANSFER's bytes into the part file.")
      .def("pause", &download_handle::pause)
      .def("resume", &download_handle::resume)
      .def("cancel", &download_handle::cancel)
      .def("close", &download_handle::close, py::arg("errc"), py::arg("reason"))
      .def("wait", &download_handle::wait, py::arg("seen"), py::arg("timeout"),
           py::arg("min_gap") = 0.0,
           "(version, received, done) once something changed, it ended or timeout passed "
           "(timeout < 0: no limit); after a change, up to min_gap seconds more for the end.")
      .def("outcome", &download_handle::outcome,
           "(sha256, last_byte) of a finished download, or its error raised.");
}

}  // namespace improto::python

#include "improto/server/file_service.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "improto/net/transfer.hpp"
#include "improto/relay/codes.hpp"
#include "improto/transfer/file.hpp"

namespace improto::server {
namespace {

struct file_key {
  dev_t dev;
  ino_t ino;
  auto operator<=>(const file_key&) const = default;
};

struct file_stamp {
  std::uint64_t size;
  std::int64_t mtime_ns, ctime_ns;
  bool operator==(const file_stamp&) const = default;
};

file_stamp stamp_of(const struct stat& st) {
  return {static_cast<std::uint64_t>(st.st_size),
          static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
          static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec};
}

// SHA-256 of the first `size` bytes of an open file.
result<std::string> hash_fd(int fd, std::uint64_t size) {
  transfer::sha256 h;
  std::vector<char> buf(1 << 20);
  std::uint64_t at = 0;
  while (at < size) {
    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - at));
    ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(errc::io_error, "the file shrank or could not be read");
    h.update(std::span<const char>(buf.data(), static_cast<std::size_t>(n)));
    at += static_cast<std::uint64_t>(n);
  }
  return transfer::to_hex(h.finish());
}

// The sender's counters, for the log line that ends a transfer: what an
// operator needs to tell a lossy or slow path from a slow server.
std::string describe(const transfer::sender& s) {
  const auto& st = s.stats();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(s.rtt().srtt()).count();
  return std::to_string(st.datagrams_sent) + " datagrams, " +
         std::to_string(st.bytes_retransmitted) + " bytes resent, " + std::to_string(st.losses) +
         " lost, " + std::to_string(st.timeouts) + " timeouts, " + std::to_string(st.probes) +
         " probes, srtt " + std::to_string(us) + " us, window " +
         std::to_string(s.congestion_window()) + " bytes";
}

struct live_transfer {
  std::uint32_t id;
  std::string user;
  std::string file;
  std::shared_ptr<net::transfer_link> link;
  std::unique_ptr<asio::steady_timer> paused_timer;
};

}  // namespace

struct file_service::state : std::enable_shared_from_this<file_service::state> {
  state(asio::io_context& i, file_service_config c, net::logger l)
      : io(i), config(std::move(c)), log(std::move(l)), rng(std::random_device{}()) {}

  asio::io_context& io;
  file_service_config config;
  net::logger log;
  int dirfd = -1;
  asio::thread_pool hashers{1};
  std::map<std::uint32_t, live_transfer> transfers;
  std::map<std::string, std::size_t, std::less<>> per_user;  // live and being prepared
  std::size_t total = 0;                                     // likewise
  std::map<file_key, std::pair<file_stamp, std::string>> hashes;
  std::mt19937_64 rng;
  bool stopped = false;

  void say(const std::string& line) const {
    if (log) log(line);
  }

  std::uint32_t new_id() {
    for (;;) {
      auto id = static_cast<std::uint32_t>(rng());
      if (id != 0 && transfers.find(id) == transfers.end()) return id;
    }
  }

  void release(const std::string& user) {
    --total;
    auto it = per_user.find(user);
    if (it != per_user.end() && --it->second == 0) per_user.erase(it);
  }

  void forget(std::uint32_t id) {
    auto it = transfers.find(id);
    if (it == transfers.end()) return;
    std::string user = it->second.user;
    transfers.erase(it);
    release(user);
  }

  void start(const std::string& user, int fd, std::uint64_t size, const std::string& sha,
             const std::string& file, const asio::ip::address& client,
             const asio::ip::address& local, const relay::download& request,
             const reply_handler& reply) {
    auto fail_with = [&](int code, const std::string& why) {
      ::close(fd);
      release(user);
      say("DOWNLOAD " + file + " by " + user + ": " + why);
      reply(relay::error_for(code));
    };
    if (stopped) return fail_with(relay::codes::server_busy, "server stopping");
    net::transfer_link_options options;
    auto link = net::transfer_link::open(io.get_executor(), local, options);
    if (!link) return fail_with(relay::codes::server_busy, link.error().message());
    auto source = transfer::file_source::adopt(fd);
    if (!source) return fail_with(relay::codes::no_such_file, source.error().message());
    transfer::sender_config sc;
    sc.id = new_id();
    sc.size = size;
    sc.offset = request.offset;
    sc.datagram_size = config.datagram_size;
    sc.idle_timeout = config.idle_timeout;
    std::uint32_t id = sc.id;
    auto weak = weak_from_this();
    auto started = (*link)->start_sender(
        asio::ip::udp::endpoint(client, request.udp_port), sc,
        std::make_unique<transfer::file_source>(std::move(*source)),
        [weak, id, file, user](result<void> r) {
          auto self = weak.lock();
          if (!self) return;
          // A cancelled transfer was forgotten already; its id may be reused.
          auto it = self->transfers.find(id);
          std::string how;
          if (it != self->transfers.end() && it->second.user == user) {
            if (const auto* snd = it->second.link->sender()) how = " (" + describe(*snd) + ")";
          }
          self->say("transfer " + std::to_string(id) + " of " + file + " to " + user + ": " +
                    (r ? std::string("complete") : r.error().message()) + how);
          if (it != self->transfers.end() && it->second.user == user) self->forget(id);
        });
    if (!started) {
      release(user);
      say("DOWNLOAD " + file + " by " + user + ": " + started.error().message());
      reply(relay::error_for(relay::codes::server_busy));
      return;
    }
    auto port = (*link)->local_port();
    transfers.emplace(id, live_transfer{id, user, file, *link, nullptr});
    say("transfer " + std::to_string(id) + " of " + file + " to " + user + " from offset " +
        std::to_string(request.offset) + " (" + std::to_string(size) + " bytes)");
    reply(relay::transfer{id, size, request.offset, sha, port});
  }
};

file_service::file_service(std::shared_ptr<state> s) : state_(std::move(s)) {}

file_service::~file_service() { stop(); }

result<std::unique_ptr<file_service>> file_service::open(asio::io_context& io,
                                                         file_service_config config,
                                                         net::logger log) {
  auto s = std::make_shared<state>(io, std::move(config), std::move(log));
  if (!s->config.dir.empty()) {
    s->dirfd = ::open(s->config.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
      int e = errno;
      return fail(e == ENOENT ? errc::not_found : errc::io_error,
                  "cannot open the files directory " + s->config.dir + ": " + std::strerror(e));
    }
  }
  return std::unique_ptr<file_service>(new file_service(std::move(s)));
}

relay::message file_service::list(const relay::list_files& request) const {
  relay::file_list out;
  if (state_->dirfd < 0) return out;
  int fd = ::dup(state_->dirfd);
  DIR* d = fd >= 0 ? ::fdopendir(fd) : nullptr;
  if (!d) {
    if (fd >= 0) ::close(fd);
    return out;
  }
  ::rewinddir(d);
  std::map<std::string, std::uint64_t> names;
  while (auto* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (!relay::valid_file_name(name) || name <= request.after) continue;
    struct stat st{};
    if (::fstatat(state_->dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (!S_ISREG(st.st_mode)) continue;
    names.emplace(std::move(name), static_cast<std::uint64_t>(st.st_size));
  }
  ::closedir(d);
  std::size_t body = 0;
  for (auto& [name, size] : names) {
    std::size_t line = std::to_string(size).size() + 1 + name.size() + 1;
    if (body + line > relay::max_list_body) {
      out.more = true;
      break;
    }
    body += line;
    out.files.push_back({name, size});
  }
  return out;
}

void file_service::download(const std::string& user, const asio::ip::address& client,
                            const asio::ip::address& local, const relay::download& request,
                            reply_handler reply) {
  auto& s = *state_;
  const std::string& name = request.file;
  if (s.dirfd < 0 || !relay::valid_file_name(name)) {
    s.say("DOWNLOAD '" + name + "' by " + user + ": not a servable name");
    return reply(relay::error_for(relay::codes::no_such_file));
  }
  if (request.udp_port == 0) return reply(relay::error_for(relay::codes::bad_request));
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  int fd = ::openat(s.dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  struct stat st{};
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0) ::close(fd);
    s.say("DOWNLOAD '" + name + "' by " + user + ": not a regular file in the directory");
    return reply(relay::error_for(relay::codes::no_such_file));
  }
  auto size = static_cast<std::uint64_t>(st.st_size);
  if (request.offset > size) {
    ::close(fd);
    return reply(relay::error_for(relay::codes::bad_request));
  }
  auto mine = s.per_user.find(user);
  if (s.total >= s.config.max_transfers ||
      (mine != s.per_user.end() && mine->second >= s.config.max_transfers_per_user)) {
    ::close(fd);
    s.say("DOWNLOAD " + name + " by " + user + ": transfer limit reached");
    return reply(relay::error_for(relay::codes::server_busy));
  }
  ++s.total;
  ++s.per_user[user];
  file_key key{st.st_dev, st.st_ino};
  auto stamp = stamp_of(st);
  if (auto it = s.hashes.find(key); it != s.hashes.end() && it->second.first == stamp) {
    return s.start(user, fd, size, it->second.second, name, client, local, request, reply);
  }
  // Hash off the io thread: a large file takes seconds.
  auto weak = std::weak_ptr<state>(state_);
  asio::post(s.hashers, [weak, fd, size, key, stamp, user, client, local, request,
                         reply = std::move(reply), &io = s.io]() mutable {
    auto sha = hash_fd(fd, size);
    asio::post(io, [weak, fd, size, key, stamp, user, client, local, request,
                    reply = std::move(reply), sha = std::move(sha)]() {
      auto self = weak.lock();
      if (!self) {
        ::close(fd);
        return;
      }
      if (!sha) {
        ::close(fd);
        self->release(user);
        self->say("DOWNLOAD " + request.file + " by " + user + ": " + sha.error().message());
        return reply(relay::error_for(relay::codes::no_such_file));
      }
      if (self->hashes.size() >= 4096) self->hashes.clear();
      self->hashes[key] = {stamp, *sha};
      self->start(user, fd, size, *sha, request.file, client, local, request, reply);
    });
  });
}

relay::message file_service::pause(const std::string& user, std::uint32_t id) {
  auto& s = *state_;
  auto it = s.transfers.find(id);
  if (it == s.transfers.end() || it->second.user != user) {
    return relay::error_for(relay::codes::no_such_transfer);
  }
  auto& t = it->second;
  t.link->pause();
  if (!t.paused_timer) {
    t.paused_timer = std::make_unique<asio::steady_timer>(s.io);
    t.paused_timer->expires_after(s.config.paused_timeout);
    auto weak = std::weak_ptr<state>(state_);
    auto link = std::weak_ptr<net::transfer_link>(t.link);
    t.paused_timer->async_wait([weak, link, id](std::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      auto found = self->transfers.find(id);
      if (found == self->transfers.end() || found->second.link != link.lock()) return;
      self->say("transfer " + std::to_string(id) + " paused too long: dropped");
      found->second.link->cancel();
      self->forget(id);
    });
  }
  return relay::paused{id};
}

relay::message file_service::resume(const std::string& user, std::uint32_t id) {
  auto& s = *state_;
  auto it = s.transfers.find(id);
  if (it == s.transfers.end() || it->second.user != user) {
    return relay::error_for(relay::codes::no_such_transfer);
  }
  it->second.paused_timer.reset();  // cancels the wait
  it->second.link->resume();
  return relay::resumed{id};
}

relay::message file_service::cancel(const std::string& user, std::uint32_t id) {
  auto& s = *state_;
  auto it = s.transfers.find(id);
  if (it == s.transfers.end() || it->second.user != user) {
    return relay::error_for(relay::codes::no_such_transfer);
  }
  it->second.link->cancel();  // one ABORT, then the link ends
  s.say("transfer " + std::to_string(id) + " cancelled by " + user);
  s.forget(id);
  return relay::cancelled{id};
}

void file_service::user_gone(const std::string& user) {
  auto& s = *state_;
  std::vector<std::uint32_t> ids;
  for (auto& [id, t] : s.transfers) {
    if (t.user == user) ids.push_back(id);
  }
  for (auto id : ids) {
    s.transfers.find(id)->second.link->cancel();
    s.forget(id);
  }
}

void file_service::stop() {
  auto& s = *state_;
  if (s.stopped) return;
  s.stopped = true;
  for (auto& [id, t] : s.transfers) t.link->close();
  s.transfers.clear();
  s.hashers.stop();
  s.hashers.join();
  if (s.dirfd >= 0) ::close(s.dirfd);
  s.dirfd = -1;
}

std::size_t file_service::transfer_count() const { return state_->transfers.size(); }

}  // namespace improto::server

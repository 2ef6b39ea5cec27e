#include "improto/store/buddy_feed.hpp"

#ifdef IMPROTO_HAVE_POSTGRESQL

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "postgres.hpp"

namespace improto::store {

namespace {

// Every user with its list, in registration then addition order; with a
// userid, that user alone. One statement: one snapshot.
constexpr const char* all_lists =
    "SELECT u.userid, b.userid FROM improto_buddy_users AS u"
    " LEFT JOIN improto_buddy_lists AS x ON x.user_id = u.id"
    " LEFT JOIN improto_buddy_users AS b ON b.id = x.buddy_id"
    " ORDER BY u.id, x.seq";
constexpr const char* one_list =
    "SELECT u.userid, b.userid FROM improto_buddy_users AS u"
    " LEFT JOIN improto_buddy_lists AS x ON x.user_id = u.id"
    " LEFT JOIN improto_buddy_users AS b ON b.id = x.buddy_id"
    " WHERE u.userid = $1 ORDER BY x.seq";

std::vector<buddy_feed::user_state> states_of(const PGresult* r, std::uint64_t seen) {
  std::vector<buddy_feed::user_state> out;
  const int rows = PQntuples(r);
  for (int i = 0; i < rows; ++i) {
    std::string user = detail::pg_text(r, i, 0);
    if (out.empty() || out.back().userid != user) out.push_back({std::move(user), {}, seen});
    if (!PQgetisnull(r, i, 1)) out.back().buddies.push_back(detail::pg_text(r, i, 1));
  }
  return out;
}

}  // namespace

struct buddy_feed::impl {
  impl(std::string url, callbacks c, const options& opts, std::chrono::milliseconds r)
      : db(std::move(url), opts), cb(std::move(c)), retry(r) {}
  ~impl() {
    if (wake_fd >= 0) ::close(wake_fd);
  }

  detail::pg_connection db;
  callbacks cb;
  std::chrono::milliseconds retry;
  int wake_fd = -1;
  std::mutex mutex;
  std::deque<std::string> refreshes;  // guarded by mutex
  std::uint64_t requested = 0;        // refresh() calls; guarded by mutex
  std::uint64_t taken = 0;            // of those, taken up by the thread; guarded by mutex
  bool stopping = false;              // guarded by mutex
  bool lost = false;                  // the thread's own
  std::thread thread;

  void log(std::string line) const {
    if (cb.log) cb.log(std::move(line));
  }

  void wake() const noexcept {
    std::uint64_t one = 1;
    // A full counter still wakes the thread; nothing to do on failure.
    [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
  }

  bool should_stop() {
    std::lock_guard lock(mutex);
    return stopping;
  }

  // LISTEN, then the snapshot: nothing committed in between is missed.
  result<void> connect() {
    if (auto c = db.ensure(); !c) return c;
    if (auto l = db.exec("cannot listen for changes", "LISTEN improto_buddy"); !l) {
      return tl::unexpected(l.error());
    }
    std::uint64_t seen;
    {
      std::lock_guard lock(mutex);
      seen = taken;
    }
    auto r = db.exec("cannot read the buddy lists", all_lists);
    if (!r) return tl::unexpected(r.error());
    cb.on_event(snapshot{states_of(r->get(), seen)});
    return {};
  }

  // Waits for the socket (when connected), a wake-up, or the timeout.
  void wait(int socket, int timeout_ms) {
    pollfd fds[2] = {{wake_fd, POLLIN, 0}, {socket, POLLIN, 0}};
    int n = ::poll(fds, socket >= 0 ? 2 : 1, timeout_ms);
    if (n > 0 && (fds[0].revents & POLLIN) != 0) {
      std::uint64_t count = 0;
      [[maybe_unused]] auto r = ::read(wake_fd, &count, sizeof count);
    }
  }

  void disconnected(const error& e) {
    db.drop();
    if (!lost) log("buddy feed: " + e.message() + "; retrying every " +
                   std::to_string(retry.count()) + " ms");
    lost = true;
  }

  // Handles what has arrived, until nothing is left (reading a list may
  // buffer more notifications); false when the connection broke.
  bool drain() {
    if (PQconsumeInput(db.raw()) == 0) {
      disconnected(error(errc::storage_error, db.where() + ": connection lost: " +
                                                  PQerrorMessage(db.raw())));
      return false;
    }
    while (true) {
      std::vector<std::string> todo;
      std::uint64_t seen;
      {
        std::lock_guard lock(mutex);
        todo.assign(refreshes.begin(), refreshes.end());
        refreshes.clear();
        taken = seen = requested;
      }
      while (PGnotify* n = PQnotifies(db.raw())) {
        std::string_view payload(n->extra);
        // "u alice" (registered) or "b alice" (list changed): read alice.
        if (payload.size() > 2) {
          std::string user(payload.substr(2));
          if (std::find(todo.begin(), todo.end(), user) == todo.end()) todo.push_back(user);
        }
        PQfreemem(n);
      }
      if (todo.empty()) return true;
      for (const auto& user : todo) {
        auto r = db.exec("cannot read a buddy list", one_list, {user});
        if (!r) {
          disconnected(r.error());
          return false;
        }
        auto states = states_of(r->get(), seen);
        for (auto& s : states) cb.on_event(std::move(s));
      }
    }
  }

  void run() {
    while (!should_stop()) {
      if (!db.connected()) {
        if (auto c = connect(); !c) {
          disconnected(c.error());
          wait(-1, static_cast<int>(retry.count()));
          continue;
        }
        if (lost) log("buddy feed: reconnected to " + db.where() + "; lists reloaded");
        lost = false;
      }
      if (!drain()) continue;
      wait(PQsocket(db.raw()), 1000);
    }
  }
};

result<std::unique_ptr<buddy_feed>> buddy_feed::start(std::string_view url, callbacks cb,
                                                      options opts,
                                                      std::chrono::milliseconds retry) {
  if (!is_postgresql_url(url)) {
    return fail(errc::invalid_config,
                "a buddy feed needs a PostgreSQL store, not " + std::string(url));
  }
  if (!cb.on_event) return fail(errc::invalid_config, "a buddy feed needs an event handler");
  if (retry.count() <= 0) return fail(errc::invalid_config, "retry must be positive");
  auto p = std::make_unique<impl>(std::string(url), std::move(cb), opts, retry);
  p->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (p->wake_fd < 0) {
    return fail(errc::io_error, std::string("eventfd: ") + std::strerror(errno));
  }
  // The first connection is the caller's to see fail.
  if (auto c = p->connect(); !c) return tl::unexpected(c.error());
  auto* raw = p.get();
  p->thread = std::thread([raw] { raw->run(); });
  return std::unique_ptr<buddy_feed>(new buddy_feed(std::move(p)));
}

buddy_feed::buddy_feed(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

buddy_feed::~buddy_feed() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake();
  impl_->thread.join();
}

std::uint64_t buddy_feed::refresh(std::string userid) {
  std::uint64_t n;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->refreshes.push_back(std::move(userid));
    n = ++impl_->requested;
  }
  impl_->wake();
  return n;
}

}  // namespace improto::store

#else  // no libpq

namespace improto::store {

struct buddy_feed::impl {};

result<std::unique_ptr<buddy_feed>> buddy_feed::start(std::string_view url, callbacks,
                                                      options, std::chrono::milliseconds) {
  return fail(errc::invalid_config,
              redact(url) + ": this build of improto has no PostgreSQL support (libpq was not "
                            "found when it was built; install libpq-dev and rebuild)");
}

buddy_feed::buddy_feed(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
buddy_feed::~buddy_feed() = default;
std::uint64_t buddy_feed::refresh(std::string) { return 0; }

}  // namespace improto::store

#endif

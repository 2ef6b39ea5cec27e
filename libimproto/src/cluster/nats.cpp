#include "improto/cluster/nats.hpp"

#include <nats/nats.h>

#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

namespace improto::cluster {
namespace {

// libnats' last error, with its detail when there is one.
std::string nats_text(natsStatus s) {
  const char* detail = nats_GetLastError(nullptr);
  std::string out = natsStatus_GetText(s);
  if (detail != nullptr && *detail != '\0' && out != detail) out += std::string(": ") + detail;
  return out;
}

error nats_error(errc code, std::string_view what, natsStatus s) {
  return error(code, std::string(what) + ": " + nats_text(s));
}

// Counts what libnats may still call back into, so that the destructor
// returns only once no libnats thread can touch the io_context or us.
struct tracker {
  std::mutex m;
  std::condition_variable cv;
  int pending = 0;
  void add() {
    std::lock_guard lock(m);
    ++pending;
  }
  void done() {
    std::lock_guard lock(m);
    --pending;
    cv.notify_all();
  }
  bool wait_all(std::chrono::milliseconds bound) {
    std::unique_lock lock(m);
    return cv.wait_for(lock, bound, [&] { return pending == 0; });
  }
};

struct in_message {
  nats_message msg;
  bool no_responders = false;
};

in_message copy_message(natsMsg* m) {
  in_message out;
  if (const char* s = natsMsg_GetSubject(m)) out.msg.subject = s;
  if (const char* r = natsMsg_GetReply(m)) out.msg.reply = r;
  if (const char* d = natsMsg_GetData(m)) {
    out.msg.data.assign(d, static_cast<std::size_t>(natsMsg_GetDataLength(m)));
  }
  out.no_responders = natsMsg_IsNoResponders(m);
  return out;
}

// libnats' external event loop, driven by the io thread: the message
// connection's socket is watched by the io_context itself, so a message goes
// from the socket to its handler on the io thread with no libnats reader or
// delivery thread (and no wake-up of one) in between.
class evloop : public std::enable_shared_from_this<evloop> {
 public:
  explicit evloop(asio::io_context& io) : io_(io), sd_(io), retry_(io) {}
  evloop(const evloop&) = delete;
  evloop& operator=(const evloop&) = delete;

  // Runs on the io thread after each read pass: drains the subscriptions.
  std::function<void()> on_input;

  static natsStatus attach(void** user, void* loop, natsConnection* nc, natsSock fd) {
    auto* el = static_cast<evloop*>(loop);
    *user = el;
    // Our own descriptor of the socket: libnats closes its fd on a
    // disconnect from its own threads, and an fd number the io_context still
    // watched could meanwhile be reused by another socket of the process.
    int mine = ::dup(fd);
    if (mine < 0) return NATS_SYS_ERROR;
    asio::post(el->io_, [self = el->shared_from_this(), nc, mine] { self->adopt(nc, mine); });
    return NATS_OK;
  }
  // Added right after attach, removed when libnats stops polling (the
  // socket is going: a disconnect or the close); then our descriptor goes
  // too, and the next attach brings the new socket.
  static natsStatus read(void* user, bool add) {
    auto* el = static_cast<evloop*>(user);
    if (!add) asio::post(el->io_, [self = el->shared_from_this()] { self->close_socket(); });
    return NATS_OK;
  }
  // Called with libnats' lock held, from any thread (a publish of the KV
  // worker, libnats' ping timer): the write is posted to the io thread.
  static natsStatus write(void* user, bool add) {
    auto* el = static_cast<evloop*>(user);
    el->want_write_.store(add);
    if (add && !el->write_posted_.exchange(true)) {
      asio::post(el->io_, [self = el->shared_from_this()] {
        self->write_posted_.store(false);
        self->flush_on_io();
      });
    }
    return NATS_OK;
  }
  static natsStatus detach(void* user) {
    auto* el = static_cast<evloop*>(user);
    asio::post(el->io_, [self = el->shared_from_this()] { self->close_socket(); });
    return NATS_OK;
  }

  // Writes what libnats buffered. Only one thread may write: the io thread
  // while it runs, the destructor's once it no longer does. Two writers
  // raced before: one saw work to do, the other sent it meanwhile, and
  // libnats read the first one's zero-byte send as a closed socket and
  // dropped the connection (LEFTs lost in bench/cluster's dead phase). What
  // is buffered is asked under libnats' lock (-1 while reconnecting), and
  // only this thread takes from the buffer, so it cannot empty in between.
  void write_now() {
    natsConnection* nc = nc_.load();
    if (nc != nullptr && natsConnection_Buffered(nc) > 0) natsConnection_ProcessWriteEvent(nc);
  }

  // On the io thread, or once no thread runs it: nothing of ours touches
  // the connection after this.
  void shutdown() {
    closed_ = true;
    nc_.store(nullptr);
    retry_.cancel();
    close_socket();
  }

 private:
  void adopt(natsConnection* nc, int fd) {
    if (closed_) {
      ::close(fd);
      return;
    }
    close_socket();
    std::error_code ec;
    sd_.assign(fd, ec);
    if (ec) {
      ::close(fd);
      return;
    }
    nc_.store(nc);
    pump();  // what arrived before the descriptor was watched
  }

  void close_socket() {
    ++generation_;
    armed_ = false;
    std::error_code ec;
    if (sd_.is_open()) sd_.close(ec);
  }

  void arm() {
    if (armed_ || closed_ || !sd_.is_open()) return;
    armed_ = true;
    sd_.async_wait(asio::posix::stream_descriptor::wait_read,
                   [self = shared_from_this(), g = generation_](std::error_code ec) {
                     if (g != self->generation_) return;
                     self->armed_ = false;
                     if (!ec) self->pump();
                   });
  }

  // libnats reads once per call; the descriptor is edge-triggered, so we
  // read until the socket is empty (bounded, then the rest later: other
  // sockets on this io thread get their turn).
  void pump() {
    bool more = false;
    for (int i = 0; i < 32; ++i) {
      natsConnection* nc = nc_.load();
      if (nc == nullptr || closed_ || !sd_.is_open()) return;
      natsConnection_ProcessReadEvent(nc);
      int n = 0;
      more = sd_.is_open() && ::ioctl(sd_.native_handle(), FIONREAD, &n) == 0 && n > 0;
      if (!more) break;
    }
    if (on_input) on_input();
    if (closed_) return;
    if (more) {
      asio::post(io_, [self = shared_from_this(), g = generation_] {
        if (g == self->generation_) self->pump();
      });
    } else {
      arm();
    }
  }

  void flush_on_io() {
    if (closed_) return;
    write_now();
    // A partial write (the socket's buffer is full): try again shortly
    // rather than wait for an edge that may already have passed.
    natsConnection* nc = nc_.load();
    if (want_write_.load() && !closed_ && nc != nullptr && natsConnection_Buffered(nc) > 0) {
      retry_.expires_after(std::chrono::milliseconds(1));
      retry_.async_wait([self = shared_from_this()](std::error_code ec) {
        if (!ec) self->flush_on_io();
      });
    }
  }

  asio::io_context& io_;
  asio::posix::stream_descriptor sd_;
  asio::steady_timer retry_;
  std::atomic<natsConnection*> nc_{nullptr};
  std::atomic<bool> want_write_{false};
  std::atomic<bool> write_posted_{false};
  // io thread only.
  bool closed_ = false;
  bool armed_ = false;
  std::uint64_t generation_ = 0;
};

// This process's threads (ids from /proc/self/task).
std::vector<long> thread_ids() {
  std::vector<long> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    out.push_back(std::strtol(e.path().filename().c_str(), nullptr, 10));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Starts libnats with its garbage collector at the lowest priority. It frees
// every consumed message; woken by a message's destroy at normal priority,
// it preempted the io thread on its core, freed that one message and slept
// again, so each message cost a thread switch although we destroy them in
// batches (perf: ~1 context switch per message on each node). At nice 19 it
// runs after the batch, once. nats_Open starts the timer, the
// connection-events and then the collector thread: the last new one.
void open_libnats() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto before = thread_ids();
    if (nats_Open(-1) != NATS_OK) return;  // connect() reports libnats' error
    auto after = thread_ids();
    std::vector<long> started;
    std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                        std::back_inserter(started));
    // Best effort: at normal priority it only costs the switches.
    if (started.size() == 3) (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(started.back()), 19);
  });
}

class worker {
 public:
  worker() : thread_([this] { run(); }) {}
  ~worker() { drain(); }
  void push(std::function<void()> job) {
    std::lock_guard lock(m_);
    jobs_.push_back(std::move(job));
    cv_.notify_one();
  }
  // Runs what is queued, then ends the thread.
  void drain() {
    {
      std::lock_guard lock(m_);
      stopping_ = true;
      cv_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(m_);
        cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

kv_entry copy_entry(kvEntry* e) {
  kv_entry out;
  out.key = kvEntry_Key(e);
  out.value.assign(static_cast<const char*>(kvEntry_Value(e)),
                   static_cast<std::size_t>(kvEntry_ValueLen(e)));
  out.revision = kvEntry_Revision(e);
  out.created = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(kvEntry_Created(e))));
  return out;
}

// A watcher's thread: kvWatcher_Next blocks.
class kv_watch {
 public:
  kv_watch(asio::io_context& io, kvWatcher* w, std::function<void(kv_entry&&)> each)
      : io_(io), w_(w), each_(std::make_shared<std::function<void(kv_entry&&)>>(std::move(each))) {
    thread_ = std::thread([this] { run(); });
  }
  ~kv_watch() {
    kvWatcher_Stop(w_);  // wakes kvWatcher_Next
    thread_.join();
    kvWatcher_Destroy(w_);
  }

 private:
  void run() {
    std::weak_ptr<std::function<void(kv_entry&&)>> each = each_;
    for (;;) {
      kvEntry* e = nullptr;
      natsStatus s = kvWatcher_Next(&e, w_, 1000);
      if (s == NATS_TIMEOUT) continue;
      if (s != NATS_OK) return;  // stopped
      if (e == nullptr) continue;  // the end of the values present at the start
      if (kvEntry_Operation(e) == kvOp_Put) {
        asio::post(io_, [each, entry = copy_entry(e)]() mutable {
          if (auto f = each.lock()) (*f)(std::move(entry));
        });
      }
      kvEntry_Destroy(e);
    }
  }
  asio::io_context& io_;
  kvWatcher* w_;
  std::shared_ptr<std::function<void(kv_entry&&)>> each_;  // weakly held by posted entries
  std::thread thread_;
};

class nats_kv final : public kv_bucket {
 public:
  nats_kv(asio::io_context& io, jsCtx* js, kvStore* kv, std::string bucket,
          std::chrono::milliseconds timeout)
      : io_(io), js_(js), kv_(kv), bucket_(std::move(bucket)), timeout_(timeout) {}

  result<std::uint64_t> put(const std::string& key, std::string_view value) override {
    uint64_t rev = 0;
    natsStatus s = kvStore_Put(&rev, kv_, key.c_str(), value.data(), static_cast<int>(value.size()));
    if (s != NATS_OK) return tl::unexpected(nats_error(errc::storage_error, "KV put " + key, s));
    return rev;
  }

  result<std::shared_ptr<void>> watch(std::function<void(kv_entry&&)> each) override {
    kvWatcher* w = nullptr;
    natsStatus s = kvStore_WatchAll(&w, kv_, nullptr);
    if (s != NATS_OK) return tl::unexpected(nats_error(errc::storage_error, "KV watch", s));
    return std::shared_ptr<void>(std::make_shared<kv_watch>(io_, w, std::move(each)));
  }
  ~nats_kv() override { kvStore_Destroy(kv_); }

  result<std::uint64_t> create(const std::string& key, std::string_view value) override {
    std::string why;
    // A create that meets a live key fails; when the key is gone by the time
    // we read it, its owner or the sweeper deleted it in between (a dead
    // node's names being freed while their users register again): the name
    // is free, so create again. Bounded: each lap needs another delete.
    for (int attempt = 0; attempt < 3; ++attempt) {
      uint64_t rev = 0;
      natsStatus s = kvStore_Create(&rev, kv_, key.c_str(), value.data(), static_cast<int>(value.size()));
      if (s == NATS_OK) return rev;
      why = nats_text(s);
      // Taken, or the cluster failed: only a read tells them apart.
      auto e = get(key);
      if (e) return tl::unexpected(error(errc::name_taken, key + " is taken"));
      // Retried only for that race: the stream said the key had a newer
      // revision (JetStream's "wrong last sequence"), not a timeout.
      if (e.error().code() != errc::not_found || why.find("wrong last sequence") == std::string::npos) break;
    }
    return tl::unexpected(error(errc::storage_error, "KV create " + key + ": " + why));
  }

  result<kv_entry> get(const std::string& key) override {
    kvEntry* e = nullptr;
    natsStatus s = kvStore_Get(&e, kv_, key.c_str());
    if (s == NATS_NOT_FOUND) return tl::unexpected(error(errc::not_found, key));
    if (s != NATS_OK) return tl::unexpected(nats_error(errc::storage_error, "KV get " + key, s));
    kv_entry out = copy_entry(e);
    kvEntry_Destroy(e);
    return out;
  }

  // A KV delete is a marker published on the key's subject; the stream
  // refuses it unless the key's last sequence is `revision`.
  result<void> erase(const std::string& key, std::uint64_t revision) override {
    natsMsg* msg = nullptr;
    std::string subject = "$KV." + bucket_ + "." + key;
    natsStatus s = natsMsg_Create(&msg, subject.c_str(), nullptr, nullptr, 0);
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "KV-Operation", "DEL");
    if (s != NATS_OK) {
      natsMsg_Destroy(msg);
      return tl::unexpected(nats_error(errc::storage_error, "KV delete " + key, s));
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.ExpectLastSubjectSeq = revision;
    po.MaxWait = timeout_.count();
    jsPubAck* ack = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    s = js_PublishMsg(&ack, js_, msg, &po, &jerr);
    natsMsg_Destroy(msg);
    jsPubAck_Destroy(ack);
    if (s == NATS_OK) return {};
    if (jerr == JSStreamWrongLastSequenceErr) {
      return tl::unexpected(error(errc::rejected, key + " is no longer at revision " +
                                                      std::to_string(revision)));
    }
    return tl::unexpected(nats_error(errc::storage_error, "KV delete " + key, s));
  }

  result<std::vector<std::string>> keys() override {
    kvKeysList list{};
    natsStatus s = kvStore_Keys(&list, kv_, nullptr);
    if (s == NATS_NOT_FOUND) return std::vector<std::string>{};
    if (s != NATS_OK) return tl::unexpected(nats_error(errc::storage_error, "KV keys", s));
    std::vector<std::string> out;
    out.reserve(static_cast<std::size_t>(list.Count));
    for (int i = 0; i < list.Count; ++i) out.emplace_back(list.Keys[i]);
    kvKeysList_Destroy(&list);
    return out;
  }

 private:
  asio::io_context& io_;
  jsCtx* js_;
  kvStore* kv_;
  std::string bucket_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

result<std::vector<std::string>> parse_servers(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    auto comma = list.find(',');
    auto url = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    if (!(url.starts_with("nats://") || url.starts_with("tls://")) || url.size() <= 7 ||
        url.find_first_of(" \t\r\n") != std::string_view::npos) {
      return tl::unexpected(error(errc::invalid_argument,
                                  "expected nats://HOST:PORT[,nats://HOST:PORT...], got '" +
                                      std::string(url) + "'"));
    }
    out.emplace_back(url);
  }
  if (out.empty()) return tl::unexpected(error(errc::invalid_argument, "no NATS server given"));
  return out;
}

struct nats_connection::state : std::enable_shared_from_this<state> {
  asio::io_context& io;
  nats_options options;
  std::shared_ptr<tracker> callbacks = std::make_shared<tracker>();
  // Two connections: `nc` for JetStream and KV, whose calls block waiting
  // for their answers (on the worker, at start-up, before the io thread
  // runs), and `mc` for messages, in event-loop mode on the io thread.
  natsConnection* nc = nullptr;
  natsConnection* mc = nullptr;
  std::shared_ptr<evloop> loop;
  jsCtx* js = nullptr;
  std::unique_ptr<worker> kv_worker = std::make_unique<worker>();
  // Set by the destructor: the io thread no longer runs, so nobody would
  // write a flush's PING or read its PONG.
  std::atomic<bool> closing{false};
  std::vector<std::shared_ptr<kv_bucket>> buckets;

  // io thread only from here. Subscriptions are synchronous ones on `mc`,
  // drained by the io thread after each read of its socket.
  struct sub {
    natsSubscription* s = nullptr;
    handler h;
  };
  std::map<std::uint64_t, sub> subs;
  std::uint64_t next_sub = 1;

  struct sub_closer {
    void operator()(natsSubscription* s) const {
      natsSubscription_Unsubscribe(s);  // an error only says it is gone already
      natsSubscription_Destroy(s);
    }
  };
  using sub_ptr = std::unique_ptr<natsSubscription, sub_closer>;

  struct pending {
    std::unique_ptr<asio::steady_timer> timer;
    // A request's own inbox: a sync subscription returns "no responders"
    // without the message, so only its subscription tells whose it was.
    sub_ptr own;
    std::function<bool(in_message&&)> each;  // false: finished
    std::function<void()> expired;
  };
  std::string inbox;  // "_INBOX.<nuid>"; gathers' answers go to inbox.g.<n>, a request's to inbox.r.<n>
  sub_ptr gathers;
  std::map<std::uint64_t, pending> requests;
  std::uint64_t next_request = 1;

  // Consumed messages, destroyed in batches: libnats hands a destroyed
  // message to its garbage-collector thread and wakes it when it sleeps, so
  // one destroy per message would put a thread wake-up back on the path.
  std::vector<natsMsg*> graveyard;
  std::size_t graveyard_bytes = 0;
  asio::steady_timer sweeper;
  bool sweeper_armed = false;

  state(asio::io_context& i, nats_options o) : io(i), options(std::move(o)), sweeper(i) {}

  void bury(natsMsg* m) {
    graveyard_bytes += static_cast<std::size_t>(natsMsg_GetDataLength(m)) + 64;
    graveyard.push_back(m);
  }
  void sweep() {
    for (natsMsg* m : graveyard) natsMsg_Destroy(m);
    graveyard.clear();
    graveyard_bytes = 0;
  }
  // After a drain: at most 64 messages or 256 KiB wait, for at most 100 ms.
  void sweep_later() {
    if (graveyard.size() >= 64 || graveyard_bytes >= 256 * 1024) sweep();
    if (graveyard.empty() || sweeper_armed) return;
    sweeper_armed = true;
    sweeper.expires_after(std::chrono::milliseconds(100));
    sweeper.async_wait([weak = weak_from_this()](std::error_code ec) {
      auto s = weak.lock();
      if (ec || !s) return;
      s->sweeper_armed = false;
      s->sweep();
    });
  }

  // Files a request's answers under `id` until `p.each` says it is finished
  // or `timeout` passes (then `p.expired` runs, once).
  static void track(const std::shared_ptr<state>& st, std::uint64_t id, pending p,
                    std::chrono::milliseconds timeout) {
    p.timer = std::make_unique<asio::steady_timer>(st->io, timeout);
    p.timer->async_wait([weak = std::weak_ptr<state>(st), id](std::error_code ec) {
      auto s = weak.lock();
      if (ec || !s) return;
      auto it = s->requests.find(id);
      if (it == s->requests.end()) return;
      auto expired = std::move(it->second.expired);
      s->requests.erase(it);
      expired();
    });
    st->requests.emplace(id, std::move(p));
  }

  void log(const std::string& line) const {
    if (options.log) options.log(line);
  }

  // The next message of a sync subscription, if one is queued.
  enum class next_result { message, no_responders, none };
  next_result next(natsSubscription* s, in_message& out) {
    // Most subscriptions hold nothing after a read: asked cheaply first (an
    // empty NextMsg records a timeout in libnats' per-thread error state).
    int queued = 0;
    if (natsSubscription_GetPending(s, &queued, nullptr) != NATS_OK || queued == 0) {
      return next_result::none;
    }
    for (;;) {
      natsMsg* m = nullptr;
      natsStatus r = natsSubscription_NextMsg(&m, s, 0);
      if (r == NATS_OK) {
        out = copy_message(m);
        bury(m);
        return next_result::message;
      }
      if (r == NATS_NO_RESPONDERS) return next_result::no_responders;
      // Messages were dropped (pending limits): said once, the rest follows.
      if (r != NATS_SLOW_CONSUMER) return next_result::none;
    }
  }

  // After a read of `mc`: every queued message to its handler. Handlers may
  // subscribe, unsubscribe and finish requests, so each lookup starts again
  // from the id.
  void drain() {
    in_message m;
    for (auto it = subs.begin(); it != subs.end();) {
      auto id = it->first;
      if (next(it->second.s, m) == next_result::message && it->second.h) {
        auto h = it->second.h;  // a handler may unsubscribe itself
        h(std::move(m.msg));
        it = subs.lower_bound(id);
        continue;
      }
      it = subs.upper_bound(id);
    }
    for (auto it = requests.begin(); it != requests.end();) {
      auto id = it->first;
      auto got = it->second.own ? next(it->second.own.get(), m) : next_result::none;
      if (got == next_result::none) {
        it = requests.upper_bound(id);
        continue;
      }
      m.no_responders = got == next_result::no_responders;
      if (!it->second.each(std::move(m))) {
        // Erased by id: `each` may have started other requests.
        requests.erase(id);
      }
      it = requests.upper_bound(id);
    }
    while (gathers) {
      auto got = next(gathers.get(), m);
      if (got == next_result::none) break;
      if (got == next_result::message) on_gathered(std::move(m));
    }
    sweep_later();
  }

  void on_gathered(in_message&& m) {
    auto dot = m.msg.subject.rfind('.');
    if (dot == std::string::npos) return;
    std::uint64_t id = 0;
    for (char c : std::string_view(m.msg.subject).substr(dot + 1)) {
      if (c < '0' || c > '9') return;
      id = id * 10 + static_cast<std::uint64_t>(c - '0');
    }
    auto it = requests.find(id);
    if (it == requests.end()) return;  // late: it timed out or has all it wanted
    if (!it->second.each(std::move(m))) requests.erase(id);
  }

  result<natsSubscription*> subscribe_sync(const std::string& subject) {
    natsSubscription* handle = nullptr;
    natsStatus s = natsConnection_SubscribeSync(&handle, mc, subject.c_str());
    if (s != NATS_OK) {
      if (handle != nullptr) natsSubscription_Destroy(handle);
      return tl::unexpected(nats_error(errc::io_error, "subscribe " + subject, s));
    }
    // No limits: the io thread drains after every read, and a dropped
    // message would be a lost SEND.
    natsSubscription_SetPendingLimits(handle, -1, -1);
    return handle;
  }

  // Protocol written by a call on the io thread leaves now, as SendAsap
  // did; from another thread the write callback has posted it to the io
  // thread (the only writer).
  void write_now() const {
    if (loop && io.get_executor().running_in_this_thread()) loop->write_now();
  }
};

namespace {

struct conn_closure {
  std::weak_ptr<nats_connection::state> owner;
  asio::io_context* io;
  std::shared_ptr<tracker> callbacks;
  const char* which;
};

void post_log(conn_closure* c, std::string line) {
  asio::post(*c->io, [owner = c->owner, line = std::move(line)] {
    if (auto s = owner.lock()) s->log(line);
  });
}

void on_disconnected(natsConnection*, void* closure) {
  auto* c = static_cast<conn_closure*>(closure);
  post_log(c, std::string("NATS: disconnected, reconnecting (") + c->which + " connection)");
}

void on_reconnected(natsConnection* nc, void* closure) {
  auto* c = static_cast<conn_closure*>(closure);
  char url[256] = {0};
  natsConnection_GetConnectedUrl(nc, url, sizeof url);
  post_log(c, std::string("NATS: reconnected to ") + url + " (" + c->which + " connection)");
}

void on_closed(natsConnection*, void* closure) {
  auto* c = static_cast<conn_closure*>(closure);
  auto callbacks = c->callbacks;
  delete c;
  callbacks->done();
}

// One connection with our options; `loop` puts it in event-loop mode.
natsStatus open_connection(natsConnection** out, const std::shared_ptr<nats_connection::state>& st,
                           const char* which, evloop* loop) {
  natsOptions* opts = nullptr;
  std::vector<const char*> urls;
  for (auto& u : st->options.servers) urls.push_back(u.c_str());
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetServers(opts, urls.data(), static_cast<int>(urls.size()));
  if (s == NATS_OK && !st->options.name.empty()) {
    std::string name = st->options.name + " (" + which + ")";
    s = natsOptions_SetName(opts, name.c_str());
  }
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);  // a cluster node never gives up
  // The list's order is the operator's: the first server is preferred.
  if (s == NATS_OK) s = natsOptions_SetNoRandomize(opts, true);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, st->options.reconnect_wait.count());
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, 2000);
  if (s == NATS_OK) s = natsOptions_SetPingInterval(opts, 2000);
  if (s == NATS_OK) s = natsOptions_SetMaxPingsOut(opts, 2);
  // A publish is handed over at once: buffered, it waits for libnats'
  // flusher thread to wake (in event-loop mode too), which cost a cross-node
  // SEND two thread wake-ups per hop. In event-loop mode "at once" is our
  // write callback, and nats_connection writes right after the call.
  if (s == NATS_OK) s = natsOptions_SetSendAsap(opts, true);
  if (loop != nullptr) {
    if (s == NATS_OK) {
      s = natsOptions_SetEventLoop(opts, loop, evloop::attach, evloop::read, evloop::write,
                                   evloop::detach);
    }
  } else {
    if (s == NATS_OK) s = natsOptions_UseGlobalMessageDelivery(opts, true);
  }
  auto* closure = new conn_closure{st, &st->io, st->callbacks, which};
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts, on_disconnected, closure);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts, on_reconnected, closure);
  if (s == NATS_OK) s = natsOptions_SetClosedCB(opts, on_closed, closure);
  if (s == NATS_OK) s = natsConnection_Connect(out, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) {
    delete closure;
    *out = nullptr;
    return s;
  }
  st->callbacks->add();  // the closed callback
  return s;
}

}  // namespace

nats_connection::nats_connection(std::shared_ptr<state> s) : state_(std::move(s)) {}

result<std::unique_ptr<nats_connection>> nats_connection::connect(asio::io_context& io,
                                                                  nats_options options) {
  // One delivery thread for every subscription (libnats would start one
  // each): the KV watchers' and JetStream's own, on `nc`.
  open_libnats();
  nats_SetMessageDeliveryPoolSize(1);
  auto st = std::make_shared<state>(io, std::move(options));
  st->loop = std::make_shared<evloop>(io);
  // Once `st` owns the connections (its destructor closes them).
  std::unique_ptr<nats_connection> conn(new nats_connection(st));
  auto failed = [&](const char* which, natsStatus s) -> result<std::unique_ptr<nats_connection>> {
    std::string list;
    for (auto& u : st->options.servers) list += (list.empty() ? "" : ",") + u;
    return tl::unexpected(nats_error(errc::connection_refused,
                                     std::string("NATS ") + list + " (" + which + ")", s));
  };
  if (natsStatus s = open_connection(&st->nc, st, "kv", nullptr); s != NATS_OK) return failed("kv", s);
  if (natsStatus s = open_connection(&st->mc, st, "messages", st->loop.get()); s != NATS_OK) {
    return failed("messages", s);
  }
  st->loop->on_input = [weak = std::weak_ptr<state>(st)] {
    if (auto s = weak.lock()) s->drain();
  };
  natsInbox* inbox = nullptr;
  natsInbox_Create(&inbox);
  st->inbox = inbox;
  natsInbox_Destroy(inbox);
  auto gathers = st->subscribe_sync(st->inbox + ".g.*");
  if (!gathers) return tl::unexpected(gathers.error());
  st->gathers.reset(*gathers);
  st->write_now();
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = st->options.jetstream_timeout.count();
  if (natsStatus j = natsConnection_JetStream(&st->js, st->nc, &jo); j != NATS_OK) {
    return tl::unexpected(nats_error(errc::io_error, "JetStream", j));
  }
  return conn;
}

nats_connection::~nats_connection() {
  auto& s = *state_;
  // Queued KV work (names given back on shutdown) first, while connected.
  s.closing.store(true);
  s.kv_worker->drain();
  s.buckets.clear();
  s.requests.clear();
  s.gathers.reset();
  s.sweeper.cancel();
  s.sweep();
  for (auto& entry : s.subs) natsSubscription_Unsubscribe(entry.second.s);
  // What is still buffered (a last "bye", the unsubscriptions, LEFTs of
  // the drained worker) leaves before the close: the io thread no longer
  // runs (the servers destroy their cluster after it stopped, or on it), so
  // this thread is the only writer now.
  if (s.loop) s.loop->write_now();
  if (s.mc != nullptr) natsConnection_Close(s.mc);
  if (s.nc != nullptr) natsConnection_Close(s.nc);
  // The closed callbacks: nothing of libnats may call into us or the
  // io_context after this.
  s.callbacks->wait_all(std::chrono::seconds(10));
  s.loop->shutdown();
  for (auto& entry : s.subs) natsSubscription_Destroy(entry.second.s);
  s.subs.clear();
  jsCtx_Destroy(s.js);
  natsConnection_Destroy(s.mc);
  natsConnection_Destroy(s.nc);
}

result<std::uint64_t> nats_connection::subscribe(const std::string& subject, handler h) {
  auto handle = state_->subscribe_sync(subject);
  if (!handle) return tl::unexpected(handle.error());
  auto id = state_->next_sub++;
  state_->subs[id] = state::sub{*handle, std::move(h)};
  state_->write_now();
  return id;
}

void nats_connection::unsubscribe(std::uint64_t id) {
  auto it = state_->subs.find(id);
  if (it == state_->subs.end()) return;
  natsSubscription_Unsubscribe(it->second.s);
  natsSubscription_Destroy(it->second.s);
  state_->subs.erase(it);
  state_->write_now();
}

result<void> nats_connection::publish(const std::string& subject, std::string_view data,
                                      const std::string& reply) {
  natsStatus s = reply.empty()
                     ? natsConnection_Publish(state_->mc, subject.c_str(), data.data(),
                                              static_cast<int>(data.size()))
                     : natsConnection_PublishRequest(state_->mc, subject.c_str(), reply.c_str(),
                                                     data.data(), static_cast<int>(data.size()));
  if (s != NATS_OK) return tl::unexpected(nats_error(errc::io_error, "publish " + subject, s));
  state_->write_now();
  return {};
}

void nats_connection::request(const std::string& subject, std::string_view data,
                              std::chrono::milliseconds timeout,
                              std::function<void(result<nats_message>)> done) {
  auto shared_done = std::make_shared<std::function<void(result<nats_message>)>>(std::move(done));
  auto st = state_;
  auto id = st->next_request++;
  auto fail = [&](error e) {
    // Never inside the call: the caller may still be setting up.
    asio::post(st->io, [shared_done, e = std::move(e)] { (*shared_done)(tl::unexpected(e)); });
  };
  std::string reply = st->inbox + ".r." + std::to_string(id);
  auto own = st->subscribe_sync(reply);
  if (!own) return fail(own.error());
  natsSubscription_AutoUnsubscribe(*own, 1);
  state::pending p;
  p.own.reset(*own);
  p.each = [shared_done, subject](in_message&& m) {
    if (m.no_responders) {
      (*shared_done)(tl::unexpected(error(errc::not_found, "no responders on " + subject)));
    } else {
      (*shared_done)(std::move(m.msg));
    }
    return false;
  };
  p.expired = [shared_done, subject] {
    (*shared_done)(tl::unexpected(error(errc::timeout, "no reply on " + subject)));
  };
  state::track(st, id, std::move(p), timeout);
  if (auto r = publish(subject, data, reply); !r) {
    st->requests.erase(id);
    fail(r.error());
  }
}

void nats_connection::gather(const std::string& subject, std::string_view data,
                             std::chrono::milliseconds timeout,
                             std::function<bool(nats_message&&)> each,
                             std::function<void()> done) {
  auto st = state_;
  auto id = st->next_request++;
  auto shared_done = std::make_shared<std::function<void()>>(std::move(done));
  state::pending p;
  p.each = [each = std::move(each), shared_done](in_message&& m) {
    if (each(std::move(m.msg))) return true;
    (*shared_done)();
    return false;
  };
  p.expired = [shared_done] { (*shared_done)(); };
  state::track(st, id, std::move(p), timeout);
  if (auto r = publish(subject, data, st->inbox + ".g." + std::to_string(id)); !r) {
    st->log(r.error().message());  // the timer ends it: the answers that never come
  }
}

result<std::shared_ptr<kv_bucket>> nats_connection::key_value(const std::string& bucket,
                                                              int replicas,
                                                              std::chrono::milliseconds ttl) {
  auto& s = *state_;
  kvStore* kv = nullptr;
  // A NATS cluster starting with us may not place a replicated stream yet
  // (no meta leader, peers unknown): retried for a while, at startup only.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  natsStatus st = NATS_OK;
  std::string why;
  for (;;) {
    st = js_KeyValue(&kv, s.js, bucket.c_str());
    if (st == NATS_OK) break;
    why = nats_text(st);
    if (st == NATS_NOT_FOUND) {
      kvConfig cfg;
      kvConfig_Init(&cfg);
      cfg.Bucket = bucket.c_str();
      cfg.History = 1;
      cfg.Replicas = replicas;
      cfg.StorageType = js_FileStorage;
      cfg.TTL = std::chrono::duration_cast<std::chrono::nanoseconds>(ttl).count();  // MaxAge: ns
      st = js_CreateKeyValue(&kv, s.js, &cfg);
      if (st == NATS_OK) break;
      why = "create: " + nats_text(st);  // or another node created it meanwhile: looked up again
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  if (st != NATS_OK) {
    return tl::unexpected(error(errc::storage_error, "KV bucket " + bucket + " (is JetStream "
                                                     "enabled, with enough servers for " +
                                                     std::to_string(replicas) + " replicas?): " + why));
  }
  auto b = std::make_shared<nats_kv>(s.io, s.js, kv, bucket, s.options.jetstream_timeout);
  s.buckets.push_back(b);
  return std::shared_ptr<kv_bucket>(b);
}

void nats_connection::run_blocking(std::function<void()> job, std::function<void()> then) {
  state_->kv_worker->push([weak = std::weak_ptr<state>(state_), io = &state_->io,
                           job = std::move(job), then = std::move(then)]() mutable {
    job();
    if (!then) return;
    asio::post(*io, [weak, then = std::move(then)] {
      if (weak.lock()) then();
    });
  });
}

result<void> nats_connection::flush() {
  // The message connection's: what matters is that its subscriptions are
  // in place. Blocking, and the io thread reads the answer: never on it,
  // and not once it has stopped (a claim still queued at shutdown would
  // wait out the timeout for nothing).
  if (state_->closing.load()) {
    return tl::unexpected(error(errc::io_error, "NATS flush: the connection is closing"));
  }
  natsStatus s = natsConnection_FlushTimeout(state_->mc, state_->options.jetstream_timeout.count());
  if (s != NATS_OK) return tl::unexpected(nats_error(errc::io_error, "NATS flush", s));
  return {};
}

bool nats_connection::connected() const {
  return state_->nc != nullptr && state_->mc != nullptr &&
         natsConnection_Status(state_->nc) == NATS_CONN_STATUS_CONNECTED &&
         natsConnection_Status(state_->mc) == NATS_CONN_STATUS_CONNECTED;
}

asio::io_context& nats_connection::io() const noexcept { return state_->io; }

}  // namespace improto::cluster

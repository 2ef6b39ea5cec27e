#include "improto/cluster/nats.hpp"

#include <nats/nats.h>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
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
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  std::unique_ptr<worker> kv_worker = std::make_unique<worker>();
  std::vector<std::shared_ptr<kv_bucket>> buckets;

  // io thread only from here.
  struct sub {
    natsSubscription* s = nullptr;
    handler h;
  };
  std::map<std::uint64_t, sub> subs;
  std::uint64_t next_sub = 1;

  struct pending {
    std::unique_ptr<asio::steady_timer> timer;
    std::function<bool(in_message&&)> each;  // false: finished
    std::function<void()> expired;
  };
  std::string inbox;  // "_INBOX.<nuid>"; replies go to inbox.<n>
  std::map<std::uint64_t, pending> requests;
  std::uint64_t next_request = 1;

  state(asio::io_context& i, nats_options o) : io(i), options(std::move(o)) {}

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

  // Routed by subscription number, on the io thread.
  void dispatch(std::uint64_t id, in_message&& m) {
    if (id == 0) {
      on_reply(std::move(m));
      return;
    }
    auto it = subs.find(id);
    if (it == subs.end() || !it->second.h) return;
    auto h = it->second.h;  // a handler may unsubscribe itself
    h(std::move(m.msg));
  }

  void on_reply(in_message&& m) {
    auto dot = m.msg.subject.rfind('.');
    if (dot == std::string::npos) return;
    std::uint64_t id = 0;
    for (char c : std::string_view(m.msg.subject).substr(dot + 1)) {
      if (c < '0' || c > '9') return;
      id = id * 10 + static_cast<std::uint64_t>(c - '0');
    }
    auto it = requests.find(id);
    if (it == requests.end()) return;  // late: it timed out or has all it wanted
    if (!it->second.each(std::move(m))) requests.erase(it);
  }

  result<std::uint64_t> add_subscription(const std::string& subject, std::uint64_t id);
};

namespace {

struct sub_closure {
  std::weak_ptr<nats_connection::state> owner;
  asio::io_context* io;
  std::shared_ptr<tracker> callbacks;
  std::uint64_t id;
};

void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* c = static_cast<sub_closure*>(closure);
  auto m = copy_message(msg);
  natsMsg_Destroy(msg);
  asio::post(*c->io, [owner = c->owner, id = c->id, m = std::move(m)]() mutable {
    if (auto s = owner.lock()) s->dispatch(id, std::move(m));
  });
}

void on_sub_complete(void* closure) {
  auto* c = static_cast<sub_closure*>(closure);
  auto callbacks = c->callbacks;
  delete c;
  callbacks->done();
}

struct conn_closure {
  std::weak_ptr<nats_connection::state> owner;
  asio::io_context* io;
  std::shared_ptr<tracker> callbacks;
};

void post_log(conn_closure* c, std::string line) {
  asio::post(*c->io, [owner = c->owner, line = std::move(line)] {
    if (auto s = owner.lock()) s->log(line);
  });
}

void on_disconnected(natsConnection*, void* closure) {
  post_log(static_cast<conn_closure*>(closure), "NATS: disconnected, reconnecting");
}

void on_reconnected(natsConnection* nc, void* closure) {
  char url[256] = {0};
  natsConnection_GetConnectedUrl(nc, url, sizeof url);
  post_log(static_cast<conn_closure*>(closure), std::string("NATS: reconnected to ") + url);
}

void on_closed(natsConnection*, void* closure) {
  auto* c = static_cast<conn_closure*>(closure);
  auto callbacks = c->callbacks;
  delete c;
  callbacks->done();
}

}  // namespace

result<std::uint64_t> nats_connection::state::add_subscription(const std::string& subject,
                                                               std::uint64_t id) {
  auto* closure = new sub_closure{weak_from_this(), &io, callbacks, id};
  natsSubscription* handle = nullptr;
  callbacks->add();
  natsStatus s = natsConnection_Subscribe(&handle, nc, subject.c_str(), on_message, closure);
  if (s == NATS_OK) s = natsSubscription_SetOnCompleteCB(handle, on_sub_complete, closure);
  if (s != NATS_OK) {
    if (handle != nullptr) natsSubscription_Destroy(handle);
    delete closure;
    callbacks->done();
    return tl::unexpected(nats_error(errc::io_error, "subscribe " + subject, s));
  }
  subs[id].s = handle;
  return id;
}

nats_connection::nats_connection(std::shared_ptr<state> s) : state_(std::move(s)) {}

result<std::unique_ptr<nats_connection>> nats_connection::connect(asio::io_context& io,
                                                                  nats_options options) {
  // One delivery thread for every subscription (libnats would start one each).
  nats_SetMessageDeliveryPoolSize(1);
  auto st = std::make_shared<state>(io, std::move(options));
  natsOptions* opts = nullptr;
  std::vector<const char*> urls;
  for (auto& u : st->options.servers) urls.push_back(u.c_str());
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetServers(opts, urls.data(), static_cast<int>(urls.size()));
  if (s == NATS_OK && !st->options.name.empty()) s = natsOptions_SetName(opts, st->options.name.c_str());
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);  // a cluster node never gives up
  // The list's order is the operator's: the first server is preferred.
  if (s == NATS_OK) s = natsOptions_SetNoRandomize(opts, true);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, st->options.reconnect_wait.count());
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, 2000);
  if (s == NATS_OK) s = natsOptions_SetPingInterval(opts, 2000);
  if (s == NATS_OK) s = natsOptions_SetMaxPingsOut(opts, 2);
  if (s == NATS_OK) s = natsOptions_UseGlobalMessageDelivery(opts, true);
  // Each publish leaves at once from the calling thread: a buffered one
  // waits for libnats' flusher thread to wake, which cost a cross-node SEND
  // two thread wake-ups per hop (bench/cluster: p50 and CPU per message).
  if (s == NATS_OK) s = natsOptions_SetSendAsap(opts, true);
  auto* closure = new conn_closure{st, &io, st->callbacks};
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts, on_disconnected, closure);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts, on_reconnected, closure);
  if (s == NATS_OK) s = natsOptions_SetClosedCB(opts, on_closed, closure);
  if (s == NATS_OK) s = natsConnection_Connect(&st->nc, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) {
    delete closure;
    st->nc = nullptr;
    std::string list;
    for (auto& u : st->options.servers) list += (list.empty() ? "" : ",") + u;
    return tl::unexpected(nats_error(errc::connection_refused, "NATS " + list, s));
  }
  st->callbacks->add();  // the closed callback
  natsInbox* inbox = nullptr;
  natsInbox_Create(&inbox);
  st->inbox = inbox;
  natsInbox_Destroy(inbox);
  auto replies = st->add_subscription(st->inbox + ".*", 0);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = st->options.jetstream_timeout.count();
  if (replies) {
    if (natsStatus j = natsConnection_JetStream(&st->js, st->nc, &jo); j != NATS_OK) {
      replies = tl::unexpected(nats_error(errc::io_error, "JetStream", j));
    }
  }
  std::unique_ptr<nats_connection> conn(new nats_connection(std::move(st)));
  if (!replies) return tl::unexpected(replies.error());
  return conn;
}

nats_connection::~nats_connection() {
  auto& s = *state_;
  // Queued KV work (names given back on shutdown) first, while connected.
  s.kv_worker->drain();
  s.buckets.clear();
  s.requests.clear();
  if (s.nc != nullptr) {
    for (auto& entry : s.subs) natsSubscription_Unsubscribe(entry.second.s);
    natsConnection_Close(s.nc);
    // Subscriptions' completions and the closed callback: nothing of libnats
    // may call into us or the io_context after this.
    s.callbacks->wait_all(std::chrono::seconds(10));
    for (auto& entry : s.subs) natsSubscription_Destroy(entry.second.s);
    s.subs.clear();
    jsCtx_Destroy(s.js);
    natsConnection_Destroy(s.nc);
  }
}

result<std::uint64_t> nats_connection::subscribe(const std::string& subject, handler h) {
  auto id = state_->next_sub++;
  auto r = state_->add_subscription(subject, id);
  if (!r) return r;
  state_->subs[id].h = std::move(h);
  return id;
}

void nats_connection::unsubscribe(std::uint64_t id) {
  auto it = state_->subs.find(id);
  if (it == state_->subs.end() || id == 0) return;
  natsSubscription_Unsubscribe(it->second.s);
  natsSubscription_Destroy(it->second.s);  // its completion callback frees the closure
  state_->subs.erase(it);
}

result<void> nats_connection::publish(const std::string& subject, std::string_view data,
                                      const std::string& reply) {
  natsStatus s = reply.empty()
                     ? natsConnection_Publish(state_->nc, subject.c_str(), data.data(),
                                              static_cast<int>(data.size()))
                     : natsConnection_PublishRequest(state_->nc, subject.c_str(), reply.c_str(),
                                                     data.data(), static_cast<int>(data.size()));
  if (s != NATS_OK) return tl::unexpected(nats_error(errc::io_error, "publish " + subject, s));
  return {};
}

void nats_connection::request(const std::string& subject, std::string_view data,
                              std::chrono::milliseconds timeout,
                              std::function<void(result<nats_message>)> done) {
  auto shared_done = std::make_shared<std::function<void(result<nats_message>)>>(std::move(done));
  auto st = state_;
  auto id = st->next_request++;
  state::pending p;
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
  if (auto r = publish(subject, data, st->inbox + "." + std::to_string(id)); !r) {
    st->requests.erase(id);
    // Never inside the call: the caller may still be setting up.
    asio::post(st->io, [shared_done, e = r.error()] { (*shared_done)(tl::unexpected(e)); });
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
    if (m.no_responders) return true;
    if (each(std::move(m.msg))) return true;
    (*shared_done)();
    return false;
  };
  p.expired = [shared_done] { (*shared_done)(); };
  state::track(st, id, std::move(p), timeout);
  if (auto r = publish(subject, data, st->inbox + "." + std::to_string(id)); !r) {
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
  natsStatus s = natsConnection_FlushTimeout(state_->nc, state_->options.jetstream_timeout.count());
  if (s != NATS_OK) return tl::unexpected(nats_error(errc::io_error, "NATS flush", s));
  return {};
}

bool nats_connection::connected() const {
  return state_->nc != nullptr && natsConnection_Status(state_->nc) == NATS_CONN_STATUS_CONNECTED;
}

asio::io_context& nats_connection::io() const noexcept { return state_->io; }

}  // namespace improto::cluster

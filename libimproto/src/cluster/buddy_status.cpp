#include "improto/cluster/buddy_status.hpp"

#include "improto/wire/text.hpp"

namespace improto::cluster {
namespace {

using std::chrono::milliseconds;

// Value: "ONLINE|OFFLINE <ip> <port> <unix-ms of the SET>".
std::string encode(const server::buddy_status_update& u) {
  auto ms = std::chrono::duration_cast<milliseconds>(u.at.time_since_epoch()).count();
  return std::string(u.online ? "ONLINE " : "OFFLINE ") + u.ip + " " + std::to_string(u.port) +
         " " + std::to_string(ms);
}

std::optional<server::buddy_status_update> decode(const std::string& key, std::string_view v) {
  std::string_view words[4];
  for (int i = 0; i < 4; ++i) {
    auto sp = v.find(' ');
    if ((sp == std::string_view::npos) != (i == 3)) return std::nullopt;
    words[i] = v.substr(0, sp);
    v = sp == std::string_view::npos ? std::string_view{} : v.substr(sp + 1);
  }
  auto port = wire::parse_decimal(words[2], 65535);
  auto ms = wire::parse_decimal(words[3], std::uint64_t{1} << 62);
  if (!port || !ms || (words[0] != "ONLINE" && words[0] != "OFFLINE")) return std::nullopt;
  server::buddy_status_update u;
  u.user = key;
  u.online = words[0] == "ONLINE";
  u.ip = std::string(words[1]);
  u.port = static_cast<std::uint16_t>(*port);
  u.at = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          milliseconds(static_cast<std::int64_t>(*ms))));
  return u;
}

class nats_buddy_status final : public server::buddy_status_store {
 public:
  nats_buddy_status(buddy_status_options o, std::unique_ptr<nats_connection> c,
                    std::shared_ptr<kv_bucket> kv)
      : opt_(std::move(o)), conn_(std::move(c)), kv_(std::move(kv)) {}
  ~nats_buddy_status() override {
    watch_.reset();
    kv_.reset();
    conn_.reset();
  }

  void start(server::buddy_status_sink& sink) override {
    sink_ = &sink;
    auto w = kv_->watch([this](kv_entry&& e) {
      if (!sink_) return;
      if (auto u = decode(e.key, e.value)) sink_->apply(*u);
    });
    if (!w) {
      log("status bucket: " + w.error().message() + "; statuses stay on this node");
      return;
    }
    watch_ = std::move(*w);
  }

  void stop() override {
    sink_ = nullptr;
    watch_.reset();
  }

  void put(const server::buddy_status_update& u) override {
    auto failure = std::make_shared<std::string>();
    conn_->run_blocking(
        [kv = kv_, key = u.user, value = encode(u), failure] {
          if (auto r = kv->put(key, value); !r) *failure = r.error().message();
        },
        [this, failure] {
          if (!failure->empty()) log("status not shared: " + *failure);
        });
  }

 private:
  void log(const std::string& line) const {
    if (opt_.log) opt_.log(line);
  }
  buddy_status_options opt_;
  std::unique_ptr<nats_connection> conn_;
  std::shared_ptr<kv_bucket> kv_;
  std::shared_ptr<void> watch_;
  server::buddy_status_sink* sink_ = nullptr;
};

}  // namespace

result<std::unique_ptr<server::buddy_status_store>> open_buddy_status(
    asio::io_context& io, buddy_status_options options) {
  if (options.replicas < 1 || options.replicas > 5) {
    return tl::unexpected(error(errc::invalid_config, "KV replicas: expected 1 to 5"));
  }
  if (options.nats.name.empty()) options.nats.name = "imbuddyd";
  if (!options.nats.log) options.nats.log = options.log;
  auto conn = nats_connection::connect(io, options.nats);
  if (!conn) return tl::unexpected(conn.error());
  // Values outlive the TTL by nothing: a node starting later sees only
  // statuses that may still be fresh.
  auto kv = (*conn)->key_value(options.bucket, options.replicas,
                               options.ttl.count() > 0 ? options.ttl : milliseconds{});
  if (!kv) return tl::unexpected(kv.error());
  return std::unique_ptr<server::buddy_status_store>(
      new nats_buddy_status(std::move(options), std::move(*conn), std::move(*kv)));
}

}  // namespace improto::cluster

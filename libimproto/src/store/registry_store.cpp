#include "improto/store/registry_store.hpp"

#include <optional>
#include <type_traits>

#include "improto/wire/text.hpp"
#include "backends.hpp"
#include "sqlite.hpp"

namespace improto::store {
namespace {

constexpr std::int32_t registry_application_id = 0x494d5247;  // "IMRG"

// migrations[v] upgrades user_version v to v + 1; never edit a shipped one.
constexpr const char* migrations[] = {
    // v1. seq orders entries by registration: a new row gets max(seq) + 1.
    "PRAGMA application_id = 1229804103;"
    "CREATE TABLE registry ("
    "  seq INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  host TEXT NOT NULL,"
    "  port INTEGER NOT NULL CHECK (port BETWEEN 0 AND 65535)"
    ");"
    "PRAGMA user_version = 1;",
    // v2. origin: the IP address whose connection registered the entry, so
    // that only it may log the entry out; '' for entries older than this.
    "ALTER TABLE registry ADD COLUMN origin TEXT NOT NULL DEFAULT '';"
    "PRAGMA user_version = 2;",
    // v3. One b-tree keyed on the name (WITHOUT ROWID): a change writes one
    // page, not one in the table and one in its name index (a WAL frame
    // less per commit). seq keeps the registration order; the store hands
    // it out (sqlite_registry::next_seq).
    "CREATE TABLE registry_v3 ("
    "  name TEXT PRIMARY KEY,"
    "  seq INTEGER NOT NULL,"
    "  host TEXT NOT NULL,"
    "  port INTEGER NOT NULL CHECK (port BETWEEN 0 AND 65535),"
    "  origin TEXT NOT NULL DEFAULT ''"
    ") WITHOUT ROWID;"
    "INSERT INTO registry_v3 (name, seq, host, port, origin)"
    "  SELECT name, seq, host, port, origin FROM registry;"
    "DROP TABLE registry;"
    "ALTER TABLE registry_v3 RENAME TO registry;"
    "PRAGMA user_version = 3;",
};

using detail::address;
using detail::answer;
using detail::closed;
using detail::outcome;

// White space, control characters and the list's own separators.
bool forbidden_anywhere(unsigned char c) noexcept {
  return c <= 0x20 || c == 0x7f || c == '@' || c == ',';
}

struct sqlite_registry final : detail::sqlite_store<registry_store::impl> {
  using sqlite_store::sqlite_store;

  detail::statement insert;
  detail::statement erase;
  detail::statement select_all;
  detail::statement select_one;
  detail::statement select_origin;
  detail::statement max_seq;
  detail::statement data_version;

  // The next registration's seq: max(seq) + 1, read once and then counted
  // here (max(seq) has no index: a scan), read again after another
  // connection wrote the file (PRAGMA data_version moved). Called inside
  // the write transaction, so nobody else writes meanwhile. A rolled-back
  // insert leaves a gap, which orders the same.
  result<std::int64_t> next_seq() {
    // A file locked for this connection alone (options::exclusive) has no
    // other writer: its seq is counted here once read.
    if (seq_ && exclusive) return *seq_ + 1;
    std::int64_t version = 0;
    {
      detail::query q(db, data_version, "cannot read data_version");
      auto row = q.step();
      if (!row) return tl::unexpected(row.error());
      version = q.integer(0);
    }
    if (!seq_ || version != seen_version_) {
      detail::query q(db, max_seq, "cannot read registry order");
      auto row = q.step();
      if (!row) return tl::unexpected(row.error());
      seq_ = q.integer(0);
      seen_version_ = version;
    }
    return *seq_ + 1;
  }
  std::optional<std::int64_t> seq_;  // the largest seq in the file
  std::int64_t seen_version_ = 0;
  bool exclusive = false;

  outcome add_one(std::string_view name, std::string_view host, std::uint16_t port,
                  std::string_view origin) {
    if (!registry_store::valid_name(name)) {
      return answer(errc::invalid_argument,
                    "registry name must be non-empty, without ':', '@', ',', white space or "
                    "control characters");
    }
    if (!registry_store::valid_host(host)) {
      return answer(
          errc::invalid_argument,
          "registry host must be non-empty, without ',', '@', white space or control characters");
    }
    auto seq = next_seq();
    if (!seq) return tl::unexpected(seq.error());
    detail::query q(db, insert, "cannot add registry entry");
    q.bind(name).bind(host).bind(std::int64_t{port}).bind(origin).bind(*seq);
    if (auto r = q.run(); !r) return tl::unexpected(r.error());
    if (db.changes() == 0) {
      return answer(errc::name_taken, wire::quote(name) + " is already registered");
    }
    seq_ = *seq;
    return result<void>{};
  }

  outcome remove_one(std::string_view name, std::string_view host, std::uint16_t port,
                     std::optional<std::string_view> from) {
    {
      detail::query q(db, erase, "cannot remove registry entry");
      q.bind(name).bind(host).bind(std::int64_t{port});
      q.bind(std::int64_t{from ? 0 : 1}).bind(from.value_or(std::string_view{}));
      if (auto r = q.run(); !r) return tl::unexpected(r.error());
    }
    if (db.changes() > 0) return result<void>{};
    // Nothing removed: no such entry, or it belongs to another origin.
    detail::query q(db, select_origin, "cannot look up registry entry");
    q.bind(name).bind(host).bind(std::int64_t{port});
    auto row = q.step();
    if (!row) return tl::unexpected(row.error());
    if (*row) {
      return answer(errc::rejected, wire::quote(address(name, host, port)) +
                                        " was registered from " + q.text(0) +
                                        "; only that address may log it out");
    }
    return answer(errc::not_found, "no registry entry " + wire::quote(address(name, host, port)));
  }

  result<void> add(std::string_view name, std::string_view host, std::uint16_t port,
                   std::string_view origin) override {
    return db.write_one([&] { return add_one(name, host, port, origin); });
  }

  result<void> remove(std::string_view name, std::string_view host, std::uint16_t port,
                      std::optional<std::string_view> from) override {
    return db.write_one([&] { return remove_one(name, host, port, from); });
  }

  result<std::vector<registry_record>> list() override {
    std::vector<registry_record> out;
    detail::query q(db, select_all, "cannot list registry");
    while (true) {
      auto row = q.step();
      if (!row) return tl::unexpected(row.error());
      if (!*row) break;
      std::int64_t port = q.integer(2);
      // The CHECK constraint guarantees this unless the file was edited behind our back.
      if (port < 0 || port > 65535) {
        return fail(errc::storage_error,
                    db.path().string() + ": registry entry with port " + std::to_string(port));
      }
      out.push_back({q.text(0), q.text(1), static_cast<std::uint16_t>(port), q.text(3)});
    }
    return out;
  }

  result<bool> contains(std::string_view name) override {
    detail::query q(db, select_one, "cannot look up registry entry");
    q.bind(name);
    return q.step();
  }

  result<std::vector<result<void>>> apply(std::span<const registry_store::operation> ops) override {
    return db.write_batch(ops, [&](const registry_store::operation& op) -> outcome {
      return std::visit(
          [&](const auto& v) -> outcome {
            if constexpr (std::is_same_v<std::decay_t<decltype(v)>, registry_store::add_op>) {
              return add_one(v.name, v.host, v.port, v.origin);
            } else {
              std::optional<std::string_view> from;
              if (v.from) from = *v.from;
              return remove_one(v.name, v.host, v.port, from);
            }
          },
          op);
    });
  }

};

}  // namespace

registry_store::registry_store(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
registry_store::registry_store(registry_store&&) noexcept = default;
registry_store& registry_store::operator=(registry_store&&) noexcept = default;
registry_store::~registry_store() = default;

result<registry_store> registry_store::open(const std::filesystem::path& file, options opts) {
  // 1 KiB pages: an entry is some 50 bytes, and every change writes (and
  // checksums) one whole page to the WAL: 4 KiB pages cost SQLite about
  // 3,500 more instructions per change (callgrind), and the kernel 3 KiB
  // more to copy.
  const detail::schema s{"registry", registry_application_id, migrations, 1024};
  auto db = detail::database::open(file, opts, s);
  if (!db) return tl::unexpected(db.error());
  auto p = std::make_unique<sqlite_registry>(std::move(*db));
  p->exclusive = opts.exclusive;

  auto prepared = p->db.prepare_all({
      {&p->insert,
       "INSERT INTO registry (name, host, port, origin, seq) VALUES (?1, ?2, ?3, ?4, ?5) "
       "ON CONFLICT (name) DO NOTHING"},
      {&p->erase,
       "DELETE FROM registry WHERE name = ?1 AND host = ?2 AND port = ?3 "
       "AND (?4 = 1 OR origin = '' OR origin = ?5)"},
      {&p->select_all, "SELECT name, host, port, origin FROM registry ORDER BY seq"},
      {&p->select_one, "SELECT 1 FROM registry WHERE name = ?1"},
      {&p->select_origin, "SELECT origin FROM registry WHERE name = ?1 AND host = ?2 AND port = ?3"},
      {&p->max_seq, "SELECT coalesce(max(seq), 0) FROM registry"},
      {&p->data_version, "PRAGMA data_version"},
  });
  if (!prepared) return tl::unexpected(prepared.error());
  return registry_store(std::move(p));
}

result<registry_store> registry_store::connect(std::string_view location, options opts) {
  if (!is_postgresql_url(location)) return open(std::filesystem::path(location), opts);
  auto p = detail::open_postgresql_registry(location, opts);
  if (!p) return tl::unexpected(p.error());
  return registry_store(std::move(*p));
}

result<void> registry_store::add(std::string_view name, std::string_view host, std::uint16_t port,
                                 std::string_view origin) {
  if (!impl_) return closed();
  return impl_->add(name, host, port, origin);
}

result<void> registry_store::remove(std::string_view name, std::string_view host,
                                    std::uint16_t port, std::optional<std::string_view> from) {
  if (!impl_) return closed();
  return impl_->remove(name, host, port, from);
}

result<std::vector<registry_record>> registry_store::list() {
  if (!impl_) return closed();
  return impl_->list();
}

result<bool> registry_store::contains(std::string_view name) {
  if (!impl_) return closed();
  return impl_->contains(name);
}

result<std::vector<result<void>>> registry_store::apply(std::span<const operation> ops) {
  if (!impl_) return closed();
  return impl_->apply(ops);
}

result<store_status> registry_store::status() {
  if (!impl_) return closed();
  return impl_->status();
}

const std::filesystem::path& registry_store::path() const noexcept {
  static const std::filesystem::path none;
  return impl_ ? impl_->path() : none;
}

std::string registry_store::location() const { return impl_ ? impl_->location() : std::string(); }
bool registry_store::shared() const noexcept { return impl_ && impl_->shared(); }

bool registry_store::valid_name(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (char ch : name) {
    auto c = static_cast<unsigned char>(ch);
    if (forbidden_anywhere(c) || c == ':') return false;
  }
  return true;
}

bool registry_store::valid_host(std::string_view host) noexcept {
  if (host.empty()) return false;
  for (char ch : host) {
    auto c = static_cast<unsigned char>(ch);
    if (forbidden_anywhere(c)) return false;
  }
  return true;
}

}  // namespace improto::store

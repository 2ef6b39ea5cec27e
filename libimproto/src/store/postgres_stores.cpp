// The PostgreSQL back ends of registry_store and buddy_store (and, in a build
// without libpq, the clear refusal to open one).

#include <string>
#include <string_view>

#include "backends.hpp"
#include "improto/buddy/messages.hpp"
#include "improto/wire/text.hpp"

#ifdef IMPROTO_HAVE_POSTGRESQL
#include <type_traits>
#include <variant>

#include "postgres.hpp"
#endif

namespace improto::store {

bool is_postgresql_url(std::string_view location) noexcept {
  return location.starts_with("postgresql://") || location.starts_with("postgres://");
}

bool have_postgresql() noexcept {
#ifdef IMPROTO_HAVE_POSTGRESQL
  return true;
#else
  return false;
#endif
}

std::string redact(std::string_view location) {
  std::string out(location);
  if (!is_postgresql_url(location)) return out;
  const std::size_t start = out.find("://") + 3;
  std::size_t end = out.find_first_of("/?", start);
  if (end == std::string::npos) end = out.size();
  // scheme://user:password@host: the last '@' before the path ends the user part.
  std::size_t at = out.rfind('@', end);
  if (at != std::string::npos && at >= start) {
    std::size_t colon = out.find(':', start);
    if (colon < at) out.replace(colon + 1, at - colon - 1, "***");
  }
  // ...?password=secret&...
  for (std::size_t p = out.find("password=", start); p != std::string::npos;
       p = out.find("password=", p + 1)) {
    if (p == 0 || (out[p - 1] != '?' && out[p - 1] != '&')) continue;
    std::size_t v = p + 9;
    std::size_t e = out.find('&', v);
    out.replace(v, (e == std::string::npos ? out.size() : e) - v, "***");
  }
  return out;
}

namespace detail {

#ifndef IMPROTO_HAVE_POSTGRESQL

namespace {
tl::unexpected<error> no_postgresql(std::string_view url) {
  return fail(errc::invalid_config,
              redact(url) + ": this build of improto has no PostgreSQL support (libpq was not "
                            "found when it was built; install libpq-dev and rebuild)");
}
}  // namespace

result<std::unique_ptr<registry_store::impl>> open_postgresql_registry(std::string_view url,
                                                                       const options&) {
  return no_postgresql(url);
}
result<std::unique_ptr<buddy_store::impl>> open_postgresql_buddy(std::string_view url,
                                                                 const options&) {
  return no_postgresql(url);
}

#else

namespace {

// The answer to one operation, or (outer error) a storage failure that
// aborts the whole transaction.
using outcome = result<result<void>>;

result<void> answer(errc code, std::string detail) { return fail(code, std::move(detail)); }

std::string address(std::string_view name, std::string_view host, std::uint16_t port) {
  return std::string(name) + '@' + std::string(host) + ':' + std::to_string(port);
}

// The same checks and messages as SQLite; on top of them, text PostgreSQL can
// keep (valid UTF-8). The protocols' own rules already require it.
result<void> check_not_text(std::string_view field, std::string_view value) {
  if (pg_text_ok(value)) return {};
  return fail(errc::invalid_argument, std::string(field) + " is not valid UTF-8");
}

// migrations[v] upgrades version v to v + 1; never edit a shipped one.
constexpr const char* registry_migrations[] = {
    // v1. seq orders entries by registration; origin as in SQLite's v2.
    "CREATE TABLE improto_registry ("
    "  seq bigserial PRIMARY KEY,"
    "  name text NOT NULL UNIQUE,"
    "  host text NOT NULL,"
    "  port integer NOT NULL CHECK (port BETWEEN 0 AND 65535),"
    "  origin text NOT NULL DEFAULT ''"
    ")",
};

class pg_registry final : public registry_store::impl {
 public:
  explicit pg_registry(std::unique_ptr<pg_connection> c) : db_(std::move(c)) {}

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
    if (auto t = check_not_text("registry name", name); !t) return t;
    if (auto t = check_not_text("registry host", host); !t) return t;
    if (auto t = check_not_text("registry origin", origin); !t) return t;
    auto r = db_->exec("cannot add registry entry",
                       "INSERT INTO improto_registry (name, host, port, origin)"
                       " VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                       {name, host, std::to_string(port), origin});
    if (!r) return tl::unexpected(r.error());
    if (pg_changed(r->get()) == 0) {
      return answer(errc::name_taken, wire::quote(name) + " is already registered");
    }
    return result<void>{};
  }

  outcome remove_one(std::string_view name, std::string_view host, std::uint16_t port,
                     std::optional<std::string_view> from) {
    const std::string not_found = "no registry entry " + wire::quote(address(name, host, port));
    // Text PostgreSQL cannot hold was never stored.
    if (!pg_text_ok(name) || !pg_text_ok(host)) return answer(errc::not_found, not_found);
    std::string_view origin = from.value_or(std::string_view{});
    if (!pg_text_ok(origin)) origin = {};
    const std::string p = std::to_string(port);
    auto r = db_->exec("cannot remove registry entry",
                       "DELETE FROM improto_registry WHERE name = $1 AND host = $2 AND port = $3"
                       " AND ($4::boolean OR origin = '' OR origin = $5)",
                       {name, host, p, from ? "false" : "true", origin});
    if (!r) return tl::unexpected(r.error());
    if (pg_changed(r->get()) > 0) return result<void>{};
    // Nothing removed: no such entry, or it belongs to another origin.
    auto o = db_->exec("cannot look up registry entry",
                       "SELECT origin FROM improto_registry"
                       " WHERE name = $1 AND host = $2 AND port = $3",
                       {name, host, p});
    if (!o) return tl::unexpected(o.error());
    if (PQntuples(o->get()) > 0) {
      return answer(errc::rejected, wire::quote(address(name, host, port)) +
                                        " was registered from " + pg_text(o->get(), 0, 0) +
                                        "; only that address may log it out");
    }
    return answer(errc::not_found, not_found);
  }

  template <class Op>
  result<void> write_one(Op&& op) {
    result<void> reply;
    auto done = db_->write([&]() -> result<void> {
      outcome o = op();
      if (!o) return tl::unexpected(o.error());
      reply = std::move(*o);
      return {};
    });
    if (!done) return done;
    return reply;
  }

  result<void> add(std::string_view name, std::string_view host, std::uint16_t port,
                   std::string_view origin) override {
    return write_one([&] { return add_one(name, host, port, origin); });
  }

  result<void> remove(std::string_view name, std::string_view host, std::uint16_t port,
                      std::optional<std::string_view> from) override {
    return write_one([&] { return remove_one(name, host, port, from); });
  }

  result<std::vector<registry_record>> list() override {
    auto r = db_->read("cannot list registry",
                       "SELECT name, host, port, origin FROM improto_registry ORDER BY seq");
    if (!r) return tl::unexpected(r.error());
    std::vector<registry_record> out;
    const int rows = PQntuples(r->get());
    out.reserve(static_cast<std::size_t>(rows));
    for (int i = 0; i < rows; ++i) {
      long port = std::strtol(PQgetvalue(r->get(), i, 2), nullptr, 10);
      if (port < 0 || port > 65535) {
        return fail(errc::storage_error,
                    db_->where() + ": registry entry with port " + std::to_string(port));
      }
      out.push_back({pg_text(r->get(), i, 0), pg_text(r->get(), i, 1),
                     static_cast<std::uint16_t>(port), pg_text(r->get(), i, 3)});
    }
    return out;
  }

  result<bool> contains(std::string_view name) override {
    if (!pg_text_ok(name)) return false;
    auto r = db_->read("cannot look up registry entry",
                       "SELECT 1 FROM improto_registry WHERE name = $1", {name});
    if (!r) return tl::unexpected(r.error());
    return PQntuples(r->get()) > 0;
  }

  result<std::vector<result<void>>> apply(std::span<const registry_store::operation> ops) override {
    std::vector<result<void>> replies;
    if (ops.empty()) return replies;
    replies.reserve(ops.size());
    auto done = db_->write([&]() -> result<void> {
      for (const auto& op : ops) {
        outcome o = std::visit(
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
        if (!o) return tl::unexpected(o.error());
        replies.push_back(std::move(*o));
      }
      return {};
    });
    if (!done) return tl::unexpected(done.error());
    return replies;
  }

  result<store_status> status() override { return db_->status(); }
  const std::filesystem::path& path() const noexcept override { return none_; }
  std::string location() const override { return db_->where(); }
  bool shared() const noexcept override { return true; }

 private:
  std::unique_ptr<pg_connection> db_;
  std::filesystem::path none_;
};

constexpr const char* buddy_migrations[] = {
    // v1. users.id orders users by registration, lists.seq orders each list
    // by first addition; the CHECK is the protocol's userid rule.
    "CREATE TABLE improto_buddy_users ("
    "  id bigserial PRIMARY KEY,"
    "  userid text NOT NULL UNIQUE CHECK (userid ~ '^[A-Za-z0-9_.-]{1,32}$')"
    ");"
    "CREATE TABLE improto_buddy_lists ("
    "  seq bigserial PRIMARY KEY,"
    "  user_id bigint NOT NULL REFERENCES improto_buddy_users (id),"
    "  buddy_id bigint NOT NULL REFERENCES improto_buddy_users (id),"
    "  UNIQUE (user_id, buddy_id)"
    ")",
};

class pg_buddy final : public buddy_store::impl {
 public:
  explicit pg_buddy(std::unique_ptr<pg_connection> c) : db_(std::move(c)) {}

  // Both ids, or the answer not_found naming the first unknown one.
  result<result<std::pair<std::string, std::string>>> find_pair(std::string_view user,
                                                                std::string_view buddy) {
    using pair = std::pair<std::string, std::string>;
    // Only valid userids are ever stored (and only they are sent).
    if (!buddy::valid_user(user)) {
      return result<pair>(fail(errc::not_found, "no such user " + wire::quote(user)));
    }
    if (!buddy::valid_user(buddy)) {
      return result<pair>(fail(errc::not_found, "no such user " + wire::quote(buddy)));
    }
    auto r = db_->exec("cannot look up user",
                       "SELECT (SELECT id FROM improto_buddy_users WHERE userid = $1),"
                       " (SELECT id FROM improto_buddy_users WHERE userid = $2)",
                       {user, buddy});
    if (!r) return tl::unexpected(r.error());
    if (PQgetisnull(r->get(), 0, 0)) {
      return result<pair>(fail(errc::not_found, "no such user " + wire::quote(user)));
    }
    if (PQgetisnull(r->get(), 0, 1)) {
      return result<pair>(fail(errc::not_found, "no such user " + wire::quote(buddy)));
    }
    return result<pair>(pair{pg_text(r->get(), 0, 0), pg_text(r->get(), 0, 1)});
  }

  // Delivered to every listener when the transaction commits.
  result<void> announce(char kind, std::string_view userid) {
    std::string payload = std::string(1, kind) + ' ' + std::string(userid);
    auto r = db_->exec("cannot announce the change",
                       "SELECT pg_notify('improto_buddy', $1)", {payload});
    if (!r) return tl::unexpected(r.error());
    return {};
  }

  outcome add_user_one(std::string_view userid) {
    if (auto ok = buddy::check_user(userid, "userid"); !ok) {
      return answer(errc::invalid_argument, ok.error().detail());
    }
    auto r = db_->exec("cannot add user",
                       "INSERT INTO improto_buddy_users (userid) VALUES ($1)"
                       " ON CONFLICT (userid) DO NOTHING",
                       {userid});
    if (!r) return tl::unexpected(r.error());
    if (pg_changed(r->get()) == 0) {
      return answer(errc::name_taken, "user " + wire::quote(userid) + " exists");
    }
    if (auto a = announce('u', userid); !a) return tl::unexpected(a.error());
    return result<void>{};
  }

  outcome change_buddy(std::string_view user, std::string_view buddy, bool add) {
    auto ids = find_pair(user, buddy);
    if (!ids) return tl::unexpected(ids.error());
    if (!*ids) return result<void>(tl::unexpected(ids->error()));
    const auto& [u, b] = **ids;
    auto r = add ? db_->exec("cannot add buddy",
                             "INSERT INTO improto_buddy_lists (user_id, buddy_id)"
                             " VALUES ($1, $2) ON CONFLICT (user_id, buddy_id) DO NOTHING",
                             {u, b})
                 : db_->exec("cannot remove buddy",
                             "DELETE FROM improto_buddy_lists WHERE user_id = $1 AND buddy_id = $2",
                             {u, b});
    if (!r) return tl::unexpected(r.error());
    if (pg_changed(r->get()) > 0) {
      if (auto a = announce('b', user); !a) return tl::unexpected(a.error());
    }
    return result<void>{};
  }

  template <class Op>
  result<void> write_one(Op&& op) {
    result<void> reply;
    auto done = db_->write([&]() -> result<void> {
      outcome o = op();
      if (!o) return tl::unexpected(o.error());
      reply = std::move(*o);
      return {};
    });
    if (!done) return done;
    return reply;
  }

  result<void> add_user(std::string_view userid) override {
    return write_one([&] { return add_user_one(userid); });
  }

  result<bool> has_user(std::string_view userid) override {
    if (!buddy::valid_user(userid)) return false;
    auto r = db_->read("cannot look up user",
                       "SELECT 1 FROM improto_buddy_users WHERE userid = $1", {userid});
    if (!r) return tl::unexpected(r.error());
    return PQntuples(r->get()) > 0;
  }

  result<void> add_buddy(std::string_view user, std::string_view buddy) override {
    return write_one([&] { return change_buddy(user, buddy, true); });
  }

  result<void> remove_buddy(std::string_view user, std::string_view buddy) override {
    return write_one([&] { return change_buddy(user, buddy, false); });
  }

  result<std::vector<std::string>> buddies(std::string_view user) override {
    if (!buddy::valid_user(user)) return fail(errc::not_found, "no such user " + wire::quote(user));
    // One statement, one snapshot: no row means no such user, one NULL row
    // an empty list.
    auto r = db_->read("cannot read buddy list",
                       "SELECT b.userid FROM improto_buddy_users AS u"
                       " LEFT JOIN improto_buddy_lists AS x ON x.user_id = u.id"
                       " LEFT JOIN improto_buddy_users AS b ON b.id = x.buddy_id"
                       " WHERE u.userid = $1 ORDER BY x.seq",
                       {user});
    if (!r) return tl::unexpected(r.error());
    const int rows = PQntuples(r->get());
    if (rows == 0) return fail(errc::not_found, "no such user " + wire::quote(user));
    std::vector<std::string> out;
    for (int i = 0; i < rows; ++i) {
      if (!PQgetisnull(r->get(), i, 0)) out.push_back(pg_text(r->get(), i, 0));
    }
    return out;
  }

  result<std::vector<std::string>> users() override {
    auto r = db_->read("cannot list users", "SELECT userid FROM improto_buddy_users ORDER BY id");
    if (!r) return tl::unexpected(r.error());
    std::vector<std::string> out;
    const int rows = PQntuples(r->get());
    out.reserve(static_cast<std::size_t>(rows));
    for (int i = 0; i < rows; ++i) out.push_back(pg_text(r->get(), i, 0));
    return out;
  }

  result<std::vector<result<void>>> apply(std::span<const buddy_store::operation> ops) override {
    std::vector<result<void>> replies;
    if (ops.empty()) return replies;
    replies.reserve(ops.size());
    auto done = db_->write([&]() -> result<void> {
      for (const auto& op : ops) {
        outcome o = std::visit(
            [&](const auto& v) -> outcome {
              using T = std::decay_t<decltype(v)>;
              if constexpr (std::is_same_v<T, buddy_store::add_user_op>) {
                return add_user_one(v.userid);
              } else if constexpr (std::is_same_v<T, buddy_store::add_buddy_op>) {
                return change_buddy(v.user, v.buddy, true);
              } else {
                return change_buddy(v.user, v.buddy, false);
              }
            },
            op);
        if (!o) return tl::unexpected(o.error());
        replies.push_back(std::move(*o));
      }
      return {};
    });
    if (!done) return tl::unexpected(done.error());
    return replies;
  }

  result<store_status> status() override { return db_->status(); }
  const std::filesystem::path& path() const noexcept override { return none_; }
  std::string location() const override { return db_->where(); }
  bool shared() const noexcept override { return true; }

 private:
  std::unique_ptr<pg_connection> db_;
  std::filesystem::path none_;
};

result<std::unique_ptr<pg_connection>> open_connection(std::string_view url, const options& opts,
                                                       const pg_schema& s) {
  if (opts.busy_timeout.count() < 0) {
    return fail(errc::invalid_config, "busy_timeout must not be negative");
  }
  if (opts.connect_timeout.count() < 0) {
    return fail(errc::invalid_config, "connect_timeout must not be negative");
  }
  auto c = std::make_unique<pg_connection>(std::string(url), opts);
  if (auto r = c->ensure(); !r) return tl::unexpected(r.error());
  if (auto r = c->migrate(s); !r) return tl::unexpected(r.error());
  return c;
}

}  // namespace

result<std::unique_ptr<registry_store::impl>> open_postgresql_registry(std::string_view url,
                                                                       const options& opts) {
  auto c = open_connection(url, opts, {"registry", registry_migrations});
  if (!c) return tl::unexpected(c.error());
  return std::unique_ptr<registry_store::impl>(std::make_unique<pg_registry>(std::move(*c)));
}

result<std::unique_ptr<buddy_store::impl>> open_postgresql_buddy(std::string_view url,
                                                                 const options& opts) {
  auto c = open_connection(url, opts, {"buddy", buddy_migrations});
  if (!c) return tl::unexpected(c.error());
  return std::unique_ptr<buddy_store::impl>(std::make_unique<pg_buddy>(std::move(*c)));
}

#endif  // IMPROTO_HAVE_POSTGRESQL

}  // namespace detail
}  // namespace improto::store

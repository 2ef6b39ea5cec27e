// The PostgreSQL back ends of registry_store and buddy_store (and, in a build
// without libpq, the clear refusal to open one).

#include <string>
#include <string_view>

#include "backends.hpp"
#include "improto/buddy/messages.hpp"
#include "improto/wire/text.hpp"

#ifdef IMPROTO_HAVE_POSTGRESQL
#include <functional>
#include <optional>
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
// outcome, answer() and address(): backends.hpp.

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

// One operation, planned: either an answer known without the database, or a
// statement for the batch's pipelined transaction and how to read its result.
struct planned {
  std::optional<result<void>> answer;
  pg_connection::statement statement{nullptr, {}};
  std::function<result<void>(const PGresult*)> read;
};

// The batch in one transaction (one round trip); one answer per operation.
result<std::vector<result<void>>> run_batch(pg_connection& db, std::string_view what,
                                            std::vector<planned> plans) {
  std::vector<pg_connection::statement> statements;
  for (const auto& p : plans) {
    if (!p.answer) statements.push_back(p.statement);
  }
  std::vector<pg_result> results;
  if (!statements.empty()) {
    auto r = db.transaction(what, statements);
    if (!r) return tl::unexpected(r.error());
    results = std::move(*r);
  }
  std::vector<result<void>> out;
  out.reserve(plans.size());
  std::size_t next = 0;
  for (auto& p : plans) out.push_back(p.answer ? std::move(*p.answer) : p.read(results[next++].get()));
  return out;
}

template <class Store, class Op>
result<void> run_one(Store& store, Op op) {
  const std::vector<typename Store::op_type> ops{std::move(op)};
  auto r = store.apply_ops(ops);
  if (!r) return tl::unexpected(r.error());
  return std::move(r->front());
}

// What both PostgreSQL stores are besides their statements: a connection
// whose state is the store's status, no file of their own, shared by nodes.
template <class Interface, class Op>
class pg_store : public Interface {
 public:
  using op_type = Op;
  explicit pg_store(std::unique_ptr<pg_connection> c) : db_(std::move(c)) {}

  result<store_status> status() override { return db_->status(); }
  const std::filesystem::path& path() const noexcept override { return none_; }
  std::string location() const override { return db_->where(); }
  bool shared() const noexcept override { return true; }

 protected:
  std::unique_ptr<pg_connection> db_;

 private:
  std::filesystem::path none_;
};

class pg_registry final : public pg_store<registry_store::impl, registry_store::operation> {
 public:
  using pg_store::pg_store;

  static planned plan_add(const registry_store::add_op& op) {
    planned p;
    if (!registry_store::valid_name(op.name)) {
      p.answer = answer(errc::invalid_argument,
                        "registry name must be non-empty, without ':', '@', ',', white space or "
                        "control characters");
    } else if (!registry_store::valid_host(op.host)) {
      p.answer = answer(
          errc::invalid_argument,
          "registry host must be non-empty, without ',', '@', white space or control characters");
    } else if (auto n = check_not_text("registry name", op.name); !n) {
      p.answer = n;
    } else if (auto h = check_not_text("registry host", op.host); !h) {
      p.answer = h;
    } else if (auto o = check_not_text("registry origin", op.origin); !o) {
      p.answer = o;
    }
    if (p.answer) return p;
    p.statement = {"INSERT INTO improto_registry (name, host, port, origin)"
                   " VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING RETURNING 1",
                   {op.name, op.host, std::to_string(op.port), op.origin}};
    p.read = [name = op.name](const PGresult* r) -> result<void> {
      if (PQntuples(r) == 0) return answer(errc::name_taken, wire::quote(name) + " is already registered");
      return {};
    };
    return p;
  }

  static planned plan_remove(const registry_store::remove_op& op) {
    planned p;
    std::string entry = address(op.name, op.host, op.port);
    // Text PostgreSQL cannot hold was never stored.
    if (!pg_text_ok(op.name) || !pg_text_ok(op.host)) {
      p.answer = answer(errc::not_found, "no registry entry " + wire::quote(entry));
      return p;
    }
    std::string origin = op.from && pg_text_ok(*op.from) ? *op.from : std::string();
    // The outer SELECT sees the row as it was before the DELETE (one
    // snapshot): removed, or there but from another origin, or not there.
    p.statement = {"WITH d AS (DELETE FROM improto_registry"
                   "  WHERE name = $1 AND host = $2 AND port = $3"
                   "  AND ($4::boolean OR origin = '' OR origin = $5) RETURNING 1)"
                   " SELECT (SELECT count(*) FROM d),"
                   "  (SELECT origin FROM improto_registry"
                   "   WHERE name = $1 AND host = $2 AND port = $3)",
                   {op.name, op.host, std::to_string(op.port), op.from ? "false" : "true", origin}};
    p.read = [entry](const PGresult* r) -> result<void> {
      if (std::string_view(PQgetvalue(r, 0, 0)) != "0") return {};
      if (!PQgetisnull(r, 0, 1)) {
        return answer(errc::rejected, wire::quote(entry) + " was registered from " +
                                          pg_text(r, 0, 1) + "; only that address may log it out");
      }
      return answer(errc::not_found, "no registry entry " + wire::quote(entry));
    };
    return p;
  }

  result<std::vector<result<void>>> apply_ops(std::span<const registry_store::operation> ops) {
    std::vector<planned> plans;
    plans.reserve(ops.size());
    for (const auto& op : ops) {
      plans.push_back(std::visit(
          [](const auto& v) {
            if constexpr (std::is_same_v<std::decay_t<decltype(v)>, registry_store::add_op>) {
              return plan_add(v);
            } else {
              return plan_remove(v);
            }
          },
          op));
    }
    return run_batch(*db_, "cannot write the registry", std::move(plans));
  }

  result<void> add(std::string_view name, std::string_view host, std::uint16_t port,
                   std::string_view origin) override {
    return run_one(*this, registry_store::add_op{std::string(name), std::string(host), port,
                                                 std::string(origin)});
  }

  result<void> remove(std::string_view name, std::string_view host, std::uint16_t port,
                      std::optional<std::string_view> from) override {
    std::optional<std::string> f;
    if (from) f = std::string(*from);
    return run_one(*this,
                   registry_store::remove_op{std::string(name), std::string(host), port, f});
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
    if (ops.empty()) return std::vector<result<void>>{};
    return apply_ops(ops);
  }
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


// ADD and DEL: whether both users exist, and (announcing it) whether the
// list changed. `change` is a data-modifying CTE named c over u and b.
std::string buddy_change_sql(const char* change) {
  return std::string(
             "WITH u AS (SELECT id FROM improto_buddy_users WHERE userid = $1),"
             " b AS (SELECT id FROM improto_buddy_users WHERE userid = $2), ") +
         change +
         " SELECT EXISTS (SELECT 1 FROM u), EXISTS (SELECT 1 FROM b),"
         " (SELECT count(*) FROM (SELECT pg_notify('improto_buddy', 'b ' || $1::text) FROM c)"
         " AS n)";
}

class pg_buddy final : public pg_store<buddy_store::impl, buddy_store::operation> {
 public:
  using pg_store::pg_store;

  static planned plan_add_user(const std::string& userid) {
    planned p;
    if (auto ok = buddy::check_user(userid, "userid"); !ok) {
      p.answer = answer(errc::invalid_argument, ok.error().detail());
      return p;
    }
    // Announced only when inserted: delivered to every listener at COMMIT.
    p.statement = {"WITH i AS (INSERT INTO improto_buddy_users (userid) VALUES ($1)"
                   "  ON CONFLICT (userid) DO NOTHING RETURNING userid)"
                   " SELECT pg_notify('improto_buddy', 'u ' || userid) FROM i",
                   {userid}};
    p.read = [userid](const PGresult* r) -> result<void> {
      if (PQntuples(r) == 0) return answer(errc::name_taken, "user " + wire::quote(userid) + " exists");
      return {};
    };
    return p;
  }

  static planned plan_change(const std::string& user, const std::string& buddy, bool add) {
    static const std::string add_sql = buddy_change_sql(
        "c AS (INSERT INTO improto_buddy_lists (user_id, buddy_id) SELECT u.id, b.id FROM u, b"
        " ON CONFLICT (user_id, buddy_id) DO NOTHING RETURNING user_id)");
    static const std::string remove_sql = buddy_change_sql(
        "c AS (DELETE FROM improto_buddy_lists WHERE user_id = (SELECT id FROM u)"
        " AND buddy_id = (SELECT id FROM b) RETURNING user_id)");
    planned p;
    // Only valid userids are ever stored; an invalid one matches nothing
    // (and might not even be text PostgreSQL accepts).
    if (!buddy::valid_user(user)) {
      p.answer = answer(errc::not_found, "no such user " + wire::quote(user));
      return p;
    }
    p.statement = {add ? add_sql.c_str() : remove_sql.c_str(),
                   {user, buddy::valid_user(buddy) ? buddy : std::string()}};
    p.read = [user, buddy](const PGresult* r) -> result<void> {
      if (std::string_view(PQgetvalue(r, 0, 0)) != "t") {
        return answer(errc::not_found, "no such user " + wire::quote(user));
      }
      if (std::string_view(PQgetvalue(r, 0, 1)) != "t") {
        return answer(errc::not_found, "no such user " + wire::quote(buddy));
      }
      return {};
    };
    return p;
  }

  result<std::vector<result<void>>> apply_ops(std::span<const buddy_store::operation> ops) {
    std::vector<planned> plans;
    plans.reserve(ops.size());
    for (const auto& op : ops) {
      plans.push_back(std::visit(
          [](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, buddy_store::add_user_op>) {
              return plan_add_user(v.userid);
            } else if constexpr (std::is_same_v<T, buddy_store::add_buddy_op>) {
              return plan_change(v.user, v.buddy, true);
            } else {
              return plan_change(v.user, v.buddy, false);
            }
          },
          op));
    }
    return run_batch(*db_, "cannot write the buddy lists", std::move(plans));
  }

  result<void> add_user(std::string_view userid) override {
    return run_one(*this, buddy_store::add_user_op{std::string(userid)});
  }

  result<bool> has_user(std::string_view userid) override {
    if (!buddy::valid_user(userid)) return false;
    auto r = db_->read("cannot look up user",
                       "SELECT 1 FROM improto_buddy_users WHERE userid = $1", {userid});
    if (!r) return tl::unexpected(r.error());
    return PQntuples(r->get()) > 0;
  }

  result<void> add_buddy(std::string_view user, std::string_view buddy) override {
    return run_one(*this, buddy_store::add_buddy_op{std::string(user), std::string(buddy)});
  }

  result<void> remove_buddy(std::string_view user, std::string_view buddy) override {
    return run_one(*this, buddy_store::remove_buddy_op{std::string(user), std::string(buddy)});
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
    if (ops.empty()) return std::vector<result<void>>{};
    return apply_ops(ops);
  }
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

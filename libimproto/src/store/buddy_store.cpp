#include "improto/store/buddy_store.hpp"

#include <optional>
#include <type_traits>

#include "improto/buddy/messages.hpp"
#include "improto/wire/text.hpp"
#include "backends.hpp"
#include "sqlite.hpp"

namespace improto::store {
namespace {

constexpr std::int32_t buddy_application_id = 0x494d4244;  // "IMBD"

// migrations[v] upgrades user_version v to v + 1; never edit a shipped one.
constexpr const char* migrations[] = {
    // v1. users.id orders users by registration, buddies.seq orders each
    // list by first addition (a new row gets max + 1).
    "PRAGMA application_id = 1229800004;"
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY,"
    "  userid TEXT NOT NULL UNIQUE"
    ");"
    "CREATE TABLE buddies ("
    "  seq INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users (id),"
    "  buddy_id INTEGER NOT NULL REFERENCES users (id),"
    "  UNIQUE (user_id, buddy_id)"
    ");"
    "PRAGMA user_version = 1;",
};

using detail::answer;
using detail::closed;
using detail::outcome;

struct sqlite_buddy final : detail::sqlite_store<buddy_store::impl> {
  using sqlite_store::sqlite_store;

  detail::statement insert_user;
  detail::statement find_user;
  detail::statement insert_buddy;
  detail::statement delete_buddy;
  detail::statement select_buddies;
  detail::statement select_users;

  // The row id of `userid`, nullopt if it is not registered.
  result<std::optional<std::int64_t>> find(std::string_view userid) {
    detail::query q(db, find_user, "cannot look up user");
    q.bind(userid);
    auto row = q.step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(q.integer(0));
  }

  // Both ids, or the answer not_found naming the first unknown one.
  result<result<std::pair<std::int64_t, std::int64_t>>> find_pair(std::string_view user,
                                                                  std::string_view buddy) {
    using pair = std::pair<std::int64_t, std::int64_t>;
    auto u = find(user);
    if (!u) return tl::unexpected(u.error());
    if (!*u) return result<pair>(fail(errc::not_found, "no such user " + wire::quote(user)));
    auto b = find(buddy);
    if (!b) return tl::unexpected(b.error());
    if (!*b) return result<pair>(fail(errc::not_found, "no such user " + wire::quote(buddy)));
    return result<pair>(pair{**u, **b});
  }

  outcome add_user_one(std::string_view userid) {
    // The protocol's rule; here a bad userid is a bad argument.
    if (auto ok = buddy::check_user(userid, "userid"); !ok) {
      return answer(errc::invalid_argument, ok.error().detail());
    }
    detail::query q(db, insert_user, "cannot add user");
    q.bind(userid);
    if (auto r = q.run(); !r) return tl::unexpected(r.error());
    if (db.changes() == 0) {
      return answer(errc::name_taken, "user " + wire::quote(userid) + " exists");
    }
    return result<void>{};
  }

  outcome add_buddy_one(std::string_view user, std::string_view buddy) {
    auto ids = find_pair(user, buddy);
    if (!ids) return tl::unexpected(ids.error());
    if (!*ids) return result<void>(tl::unexpected(ids->error()));
    detail::query q(db, insert_buddy, "cannot add buddy");
    q.bind((*ids)->first).bind((*ids)->second);
    if (auto r = q.run(); !r) return tl::unexpected(r.error());
    return result<void>{};
  }

  outcome remove_buddy_one(std::string_view user, std::string_view buddy) {
    auto ids = find_pair(user, buddy);
    if (!ids) return tl::unexpected(ids.error());
    if (!*ids) return result<void>(tl::unexpected(ids->error()));
    detail::query q(db, delete_buddy, "cannot remove buddy");
    q.bind((*ids)->first).bind((*ids)->second);
    if (auto r = q.run(); !r) return tl::unexpected(r.error());
    return result<void>{};
  }

  result<void> add_user(std::string_view userid) override {
    return db.write_one([&] { return add_user_one(userid); });
  }

  result<bool> has_user(std::string_view userid) override {
    auto id = find(userid);
    if (!id) return tl::unexpected(id.error());
    return id->has_value();
  }

  result<void> add_buddy(std::string_view user, std::string_view buddy) override {
    return db.write_one([&] { return add_buddy_one(user, buddy); });
  }

  result<void> remove_buddy(std::string_view user, std::string_view buddy) override {
    return db.write_one([&] { return remove_buddy_one(user, buddy); });
  }

  result<std::vector<std::string>> buddies(std::string_view user) override {
    std::vector<std::string> out;
    bool known = false;
    detail::query q(db, select_buddies, "cannot read buddy list");
    q.bind(user);
    while (true) {
      auto row = q.step();
      if (!row) return tl::unexpected(row.error());
      if (!*row) break;
      known = true;
      if (!q.is_null(0)) out.push_back(q.text(0));
    }
    if (!known) return fail(errc::not_found, "no such user " + wire::quote(user));
    return out;
  }

  result<std::vector<std::string>> users() override {
    std::vector<std::string> out;
    detail::query q(db, select_users, "cannot list users");
    while (true) {
      auto row = q.step();
      if (!row) return tl::unexpected(row.error());
      if (!*row) break;
      out.push_back(q.text(0));
    }
    return out;
  }

  result<std::vector<result<void>>> apply(std::span<const buddy_store::operation> ops) override {
    return db.write_batch(ops, [&](const buddy_store::operation& op) -> outcome {
      return std::visit(
          [&](const auto& v) -> outcome {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, buddy_store::add_user_op>) {
              return add_user_one(v.userid);
            } else if constexpr (std::is_same_v<T, buddy_store::add_buddy_op>) {
              return add_buddy_one(v.user, v.buddy);
            } else {
              return remove_buddy_one(v.user, v.buddy);
            }
          },
          op);
    });
  }

};

}  // namespace

buddy_store::buddy_store(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
buddy_store::buddy_store(buddy_store&&) noexcept = default;
buddy_store& buddy_store::operator=(buddy_store&&) noexcept = default;
buddy_store::~buddy_store() = default;

result<buddy_store> buddy_store::open(const std::filesystem::path& file, options opts) {
  const detail::schema s{"buddy", buddy_application_id, migrations};
  auto db = detail::database::open(file, opts, s);
  if (!db) return tl::unexpected(db.error());
  auto p = std::make_unique<sqlite_buddy>(std::move(*db));

  auto prepared = p->db.prepare_all({
      {&p->insert_user, "INSERT INTO users (userid) VALUES (?1) ON CONFLICT (userid) DO NOTHING"},
      {&p->find_user, "SELECT id FROM users WHERE userid = ?1"},
      {&p->insert_buddy,
       "INSERT INTO buddies (user_id, buddy_id) VALUES (?1, ?2)"
       " ON CONFLICT (user_id, buddy_id) DO NOTHING"},
      {&p->delete_buddy, "DELETE FROM buddies WHERE user_id = ?1 AND buddy_id = ?2"},
      // One statement, so the answer comes from one snapshot: no row means
      // no such user, one NULL row means an empty list.
      {&p->select_buddies,
       "SELECT b.userid FROM users AS u"
       " LEFT JOIN buddies AS x ON x.user_id = u.id"
       " LEFT JOIN users AS b ON b.id = x.buddy_id"
       " WHERE u.userid = ?1 ORDER BY x.seq"},
      {&p->select_users, "SELECT userid FROM users ORDER BY id"},
  });
  if (!prepared) return tl::unexpected(prepared.error());
  return buddy_store(std::move(p));
}

result<buddy_store> buddy_store::connect(std::string_view location, options opts) {
  if (!is_postgresql_url(location)) return open(std::filesystem::path(location), opts);
  auto p = detail::open_postgresql_buddy(location, opts);
  if (!p) return tl::unexpected(p.error());
  return buddy_store(std::move(*p));
}

result<void> buddy_store::add_user(std::string_view userid) {
  if (!impl_) return closed();
  return impl_->add_user(userid);
}

result<bool> buddy_store::has_user(std::string_view userid) {
  if (!impl_) return closed();
  return impl_->has_user(userid);
}

result<void> buddy_store::add_buddy(std::string_view user, std::string_view buddy) {
  if (!impl_) return closed();
  return impl_->add_buddy(user, buddy);
}

result<void> buddy_store::remove_buddy(std::string_view user, std::string_view buddy) {
  if (!impl_) return closed();
  return impl_->remove_buddy(user, buddy);
}

result<std::vector<std::string>> buddy_store::buddies(std::string_view user) {
  if (!impl_) return closed();
  return impl_->buddies(user);
}

result<std::vector<std::string>> buddy_store::users() {
  if (!impl_) return closed();
  return impl_->users();
}

result<std::vector<result<void>>> buddy_store::apply(std::span<const operation> ops) {
  if (!impl_) return closed();
  return impl_->apply(ops);
}

result<store_status> buddy_store::status() {
  if (!impl_) return closed();
  return impl_->status();
}

const std::filesystem::path& buddy_store::path() const noexcept {
  static const std::filesystem::path none;
  return impl_ ? impl_->path() : none;
}

std::string buddy_store::location() const { return impl_ ? impl_->location() : std::string(); }
bool buddy_store::shared() const noexcept { return impl_ && impl_->shared(); }

bool buddy_store::valid_userid(std::string_view userid) noexcept {
  return buddy::valid_user(userid);
}

}  // namespace improto::store

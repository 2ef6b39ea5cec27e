#pragma once

// The buddy server's durable state (Protocol 2): registered users and each
// user's buddy list, in the order buddies were added. Statuses are soft state
// and are not stored here.
//
// Same model as registry_store (see registry_store.hpp): one SQLite file in
// WAL mode or a PostgreSQL database, durable commits (a success means the
// change is committed: send `200 OK` only after it), errors as values, one
// thread at a time, apply() for group commit, move-only.
//
// A PostgreSQL store announces every committed change on the channel
// `improto_buddy` (NOTIFY, delivered at commit), so that nodes sharing the
// database keep their copies current: see buddy_feed.hpp.
//
// Answers, mapped to the protocol:
//   add_user      ok | invalid_argument (201) | name_taken (203)
//   add_buddy     ok, also when already a buddy | not_found (202) if either
//                 id is not a registered user
//   remove_buddy  ok, also when the buddy (a registered user) is not on the
//                 list: 202 means "no such user" and both users exist; so DEL
//                 is idempotent like ADD | not_found (202) if either id is not
//                 a registered user
//   buddies       the list | not_found (202) for an unknown user
// A user may be their own buddy; the protocol does not forbid it.

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "improto/error.hpp"
#include "improto/store/options.hpp"

namespace improto::store {

class buddy_store {
 public:
  struct add_user_op {
    std::string userid;
  };
  struct add_buddy_op {
    std::string user;
    std::string buddy;
  };
  struct remove_buddy_op {
    std::string user;
    std::string buddy;
  };
  using operation = std::variant<add_user_op, add_buddy_op, remove_buddy_op>;

  // Opens or creates the store file, e.g. `<data dir>/buddy.sqlite3`; errors
  // as registry_store::open.
  static result<buddy_store> open(const std::filesystem::path& file, options opts = {});
  // A PostgreSQL URL or a file; errors as registry_store::connect.
  static result<buddy_store> connect(std::string_view location, options opts = {});

  buddy_store(buddy_store&&) noexcept;
  buddy_store& operator=(buddy_store&&) noexcept;
  ~buddy_store();

  result<void> add_user(std::string_view userid);
  result<bool> has_user(std::string_view userid);
  result<void> add_buddy(std::string_view user, std::string_view buddy);
  result<void> remove_buddy(std::string_view user, std::string_view buddy);
  // `user`'s buddies, first added first (adding again keeps the place).
  result<std::vector<std::string>> buddies(std::string_view user);
  // Every registered user, first registered first.
  result<std::vector<std::string>> users();

  // One transaction for the whole batch; see registry_store.hpp.
  result<std::vector<result<void>>> apply(std::span<const operation> ops);

  result<store_status> status();
  // As registry_store: the file (empty on PostgreSQL), the location for
  // logs, whether other processes write too.
  const std::filesystem::path& path() const noexcept;
  std::string location() const;
  bool shared() const noexcept;
  bool is_open() const noexcept { return impl_ != nullptr; }

  // The rule add_user() enforces (SPEC, Protocol 2): 1 to 32 characters of
  // improto::buddy::valid_user: [A-Za-z0-9_.-], case-sensitive.
  static bool valid_userid(std::string_view userid) noexcept;

  // The back end's interface (libimproto/src/store/backends.hpp).
  struct impl;

 private:
  explicit buddy_store(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> impl_;
};

}  // namespace improto::store

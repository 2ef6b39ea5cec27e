#pragma once

// Private SQLite plumbing shared by the stores: an owned connection opened
// with the durability settings, prepared statements, one-shot queries and
// write transactions. Nothing here leaves libimproto/src/store, so SQLite
// stays a private dependency of the library.

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>
#include <string_view>
#include <utility>

#include "improto/error.hpp"
#include "improto/store/options.hpp"

namespace improto::store::detail {

class database;

// An owned prepared statement, prepared once and reused for every call.
class statement {
 public:
  statement() = default;
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;
  statement(statement&& other) noexcept : stmt_(std::exchange(other.stmt_, nullptr)) {}
  statement& operator=(statement&& other) noexcept {
    if (this != &other) {
      sqlite3_finalize(stmt_);
      stmt_ = std::exchange(other.stmt_, nullptr);
    }
    return *this;
  }
  ~statement() { sqlite3_finalize(stmt_); }

 private:
  friend class database;
  friend class query;
  explicit statement(sqlite3_stmt* stmt) noexcept : stmt_(stmt) {}
  sqlite3_stmt* stmt_ = nullptr;
};

// One use of a cached statement: bind parameters in order, step, read
// columns. The destructor resets the statement and drops its bindings, so a
// finished or abandoned read never keeps a snapshot open (an open snapshot
// stops WAL checkpoints and lets the -wal file grow without bound).
class query {
 public:
  query(database& db, statement& stmt, std::string_view what) noexcept;
  query(const query&) = delete;
  query& operator=(const query&) = delete;
  ~query();

  // Text is bound without a copy: the bytes must outlive this query.
  query& bind(std::string_view text) noexcept;
  query& bind(std::int64_t value) noexcept;

  // true: a row is ready to read; false: the statement is done.
  result<bool> step();
  // Steps a statement that returns no rows.
  result<void> run();

  std::string text(int column) const;
  std::int64_t integer(int column) const noexcept;
  bool is_null(int column) const noexcept;

 private:
  database& db_;
  sqlite3_stmt* stmt_;
  std::string_view what_;
  int next_param_ = 1;
  int bind_rc_ = SQLITE_OK;
};

// A statement to prepare at open, and where it goes.
struct statement_sql {
  statement* target;
  const char* sql;
};

struct schema {
  std::string_view kind;        // "registry": used in error messages
  std::int32_t application_id;  // PRAGMA application_id marking the file as ours
  // migrations[v] takes the file from user_version v to v + 1 and must end by
  // setting that user_version (and, for v = 0, the application_id).
  std::span<const char* const> migrations;
  // The page size of a file created here (0: SQLite's default, 4096); a
  // file that exists keeps its own. A change writes one page to the WAL,
  // so small records want small pages.
  int page_size = 0;
};

class database {
 public:
  // Opens or creates `file`, switches it to WAL, applies `opts`, and brings
  // the schema up to date. Errors: invalid_argument (empty path),
  // invalid_config (bad options), storage_error (everything else, with the
  // path and SQLite's message).
  static result<database> open(const std::filesystem::path& file, const options& opts,
                               const schema& s);

  database(const database&) = delete;
  database& operator=(const database&) = delete;
  database(database&& other) noexcept;
  database& operator=(database&& other) noexcept;
  ~database();

  result<statement> prepare(std::string_view sql);
  // Prepares each into its target; the first failure is the result.
  result<void> prepare_all(std::initializer_list<statement_sql> statements);

  // Runs `body` (returning result<void>) inside BEGIN IMMEDIATE ... COMMIT.
  // An error from the body or from COMMIT rolls everything back.
  // IMMEDIATE takes the write lock up front, so a second process on the same
  // file waits (busy_timeout) at BEGIN instead of failing half-way through.
  template <class Body>
  result<void> write(Body&& body) {
    if (auto begun = step_control(begin_, "begin transaction"); !begun) return begun;
    result<void> done = std::forward<Body>(body)();
    if (done) done = step_control(commit_, "commit");
    if (done) {
      ++commits_;
    } else {
      rollback();
    }
    return done;
  }

  // Runs one store operation in its own transaction. `op` returns
  // result<result<void>>: an outer error is a storage failure (rolled back),
  // an inner one the request's own refusal (name_taken, not_found ...).
  template <class Op>
  result<void> write_one(Op&& op) {
    result<void> reply;
    auto done = write([&]() -> result<void> {
      result<result<void>> o = op();
      if (!o) return tl::unexpected(o.error());
      reply = std::move(*o);
      return {};
    });
    if (!done) return done;
    return reply;
  }

  // Runs a batch in one transaction: `run(op)` for each operation, in order,
  // each returning result<result<void>> as for write_one. One reply per
  // operation; a storage failure rolls the whole batch back.
  template <class Op, class Run>
  result<std::vector<result<void>>> write_batch(std::span<const Op> ops, Run&& run) {
    std::vector<result<void>> replies;
    if (ops.empty()) return replies;
    replies.reserve(ops.size());
    auto done = write([&]() -> result<void> {
      for (const Op& op : ops) {
        result<result<void>> o = run(op);
        if (!o) return tl::unexpected(o.error());
        replies.push_back(std::move(*o));
      }
      return {};
    });
    if (!done) return tl::unexpected(done.error());
    return replies;
  }

  // Rows changed by the last INSERT/UPDATE/DELETE that completed.
  std::int64_t changes() const noexcept { return sqlite3_changes64(db_); }

  result<store_status> status();

  // A storage_error: "<path>: <what>: <SQLite's message for rc>".
  error failure(std::string_view what, int rc) const;

  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  database() = default;
  result<void> configure(const options& opts, int page_size);
  result<void> migrate(const schema& s);
  result<void> step_control(statement& stmt, std::string_view what);
  result<void> exec(const char* sql, std::string_view what);
  result<std::int64_t> pragma_integer(const char* sql, std::string_view what);
  void rollback() noexcept;
  void close() noexcept;

  sqlite3* db_ = nullptr;
  std::filesystem::path path_;
  statement begin_;
  statement commit_;
  statement rollback_;
  std::uint64_t commits_ = 0;
};

// What the SQLite stores do alike. Interface: registry_store::impl or
// buddy_store::impl. A store's statements are members of the derived class,
// so they are finalized before `db` closes.
template <class Interface>
struct sqlite_store : Interface {
  explicit sqlite_store(database d) : db(std::move(d)) {}

  database db;

  result<store_status> status() override { return db.status(); }
  const std::filesystem::path& path() const noexcept override { return db.path(); }
  std::string location() const override { return db.path().string(); }
  bool shared() const noexcept override { return false; }
};

}  // namespace improto::store::detail

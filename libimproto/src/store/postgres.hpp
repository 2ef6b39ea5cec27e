#pragma once

// Private libpq plumbing shared by the PostgreSQL stores and the buddy feed:
// one blocking connection that (re)connects on demand, statements with text
// parameters, write transactions, and the versioned schema. Compiled only
// with IMPROTO_HAVE_POSTGRESQL; libpq stays a private dependency.
//
// Why blocking calls on a worker thread rather than libpq's asynchronous API
// on the io thread: every write already runs on the group_committer's
// worker, which folds concurrent requests into one transaction; a blocking
// connection there gives the same group commit, the same "answer after
// COMMIT" rule and the same code path as SQLite, and the io thread never
// waits on the database (reads are served from the servers' copies in
// memory). See docs/cluster.md, "Durable state on PostgreSQL".

#include <libpq-fe.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "improto/error.hpp"
#include "improto/store/options.hpp"

namespace improto::store::detail {

struct pg_result_deleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using pg_result = std::unique_ptr<PGresult, pg_result_deleter>;

struct pg_schema {
  std::string_view kind;  // "registry": the row of improto_schema, and error messages
  // migrations[v] takes the schema from version v to v + 1; never edit a shipped one.
  std::span<const char* const> migrations;
};

// Text as PostgreSQL keeps it: valid UTF-8 without NUL.
bool pg_text_ok(std::string_view s) noexcept;

class pg_connection {
 public:
  pg_connection(std::string url, const options& opts);
  ~pg_connection();
  pg_connection(const pg_connection&) = delete;
  pg_connection& operator=(const pg_connection&) = delete;

  // Connects unless connected; storage_error naming the server if it
  // cannot. Also run again after the connection broke.
  result<void> ensure();
  bool connected() const noexcept;
  // Drops the connection (the next ensure() reconnects).
  void drop() noexcept;

  // One statement (several, without parameters), text parameters in order.
  // storage_error "<url>: <what>: <server's message>".
  result<pg_result> exec(std::string_view what, const char* sql,
                         std::initializer_list<std::string_view> params = {});
  // exec() for a read outside a transaction: connects first, and tries
  // once more on a fresh connection if the old one had broken.
  result<pg_result> read(std::string_view what, const char* sql,
                         std::initializer_list<std::string_view> params = {});

  // BEGIN, body() (returning result<void>), COMMIT; any error rolls back.
  // A connection found broken at BEGIN (the server restarted since the last
  // call) is replaced and BEGIN tried once more: nothing had been sent. A
  // break after that is reported, never replayed.
  template <class Body>
  result<void> write(Body&& body) {
    if (auto begun = begin(); !begun) return begun;
    result<void> done = std::forward<Body>(body)();
    if (done) done = commit();
    if (done) {
      ++commits_;
    } else {
      rollback();
    }
    return done;
  }

  // One statement of a pipelined transaction, its parameters as text.
  struct statement {
    const char* sql;
    std::vector<std::string> params;
  };
  // BEGIN, every statement, COMMIT in one round trip (libpq's pipeline
  // mode): the group commit's batch costs one exchange with the server, not
  // one per operation. One result per statement, in order; any error rolls
  // the whole transaction back and is returned. A connection found closed
  // before sending (the server restarted) is replaced first.
  result<std::vector<pg_result>> transaction(std::string_view what,
                                             const std::vector<statement>& statements);

  // Creates or migrates `s` under an advisory lock (nodes starting together
  // take turns), and remembers its version. storage_error for a newer one.
  result<void> migrate(const pg_schema& s);

  result<store_status> status();
  const std::string& where() const noexcept { return where_; }
  PGconn* raw() const noexcept { return conn_; }

 private:
  result<void> begin();
  // Reads what the server sent while we were idle: a restarted server's
  // goodbye marks the connection broken, so ensure() replaces it.
  void notice_closed() noexcept;
  result<void> commit();
  void rollback() noexcept;
  error failure(std::string_view what) const;

  std::string url_;
  std::string where_;  // url_ redacted
  options opts_;
  PGconn* conn_ = nullptr;
  int schema_version_ = 0;
  std::uint64_t commits_ = 0;
};

// Rows changed by an INSERT/UPDATE/DELETE result.
std::int64_t pg_changed(const PGresult* r) noexcept;
// Row `row`, column `col` as text; empty for NULL.
std::string pg_text(const PGresult* r, int row, int col);

}  // namespace improto::store::detail

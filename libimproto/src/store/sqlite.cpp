#include "sqlite.hpp"
#include "wal_vfs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

namespace improto::store::detail {
namespace fs = std::filesystem;

namespace {

tl::unexpected<error> storage(std::string detail) {
  return tl::unexpected<error>(error(errc::storage_error, std::move(detail)));
}

std::string hex(std::int64_t value) {
  char buf[32];
  // application_id is a signed 32-bit field; show its bits.
  std::snprintf(buf, sizeof buf, "0x%08x",
                static_cast<unsigned>(static_cast<std::uint32_t>(value)));
  return buf;
}

// Why SQLite could not open `file`, in file-system terms, when we can tell:
// SQLite itself only says "unable to open database file".
std::string open_hint(const fs::path& file) {
  fs::path dir = file.parent_path();
  if (dir.empty()) dir = ".";
  auto reason = [](int err) -> std::string {
    return err == EACCES ? "permission denied" : std::strerror(err);
  };
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) return " (directory " + dir.string() + " does not exist)";
    if (err == ENOTDIR) return " (" + dir.string() + ": a parent is not a directory)";
    return " (directory " + dir.string() + ": " + reason(err) + ")";
  }
  if (!S_ISDIR(st.st_mode)) return " (" + dir.string() + " is not a directory)";
  if (::stat(file.c_str(), &st) == 0) {
    if (::faccessat(AT_FDCWD, file.c_str(), R_OK | W_OK, AT_EACCESS) != 0) {
      return " (" + reason(errno) + ")";
    }
  } else if (errno == EACCES) {
    return " (cannot look inside " + dir.string() + ": permission denied)";
  } else if (errno != ENOENT) {
    return " (" + reason(errno) + ")";
  }
  // A new database, and the journals beside any database, are created here.
  if (::faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0) {
    return " (cannot create files in " + dir.string() + ": " + reason(errno) + ")";
  }
  return {};
}

// A new file's directory entry is durable only once its directory is
// fsynced; SQLite syncs the directory for its journals but not for the
// database file it creates.
result<void> sync_directory(const fs::path& file) {
  fs::path dir = file.parent_path();
  if (dir.empty()) dir = ".";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return storage(file.string() +
                   ": cannot open its directory to sync it: " + std::strerror(errno));
  }
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  // Some file systems cannot fsync directories (EINVAL); nothing to do there.
  if (rc != 0 && saved != EINVAL) {
    return storage(file.string() + ": cannot sync its directory: " + std::strerror(saved));
  }
  return {};
}

const char* synchronous_pragma(sync_level level) noexcept {
  switch (level) {
    case sync_level::off:
      return "PRAGMA synchronous=OFF";
    case sync_level::normal:
      return "PRAGMA synchronous=NORMAL";
    case sync_level::full:
      return "PRAGMA synchronous=FULL";
    case sync_level::extra:
      return "PRAGMA synchronous=EXTRA";
  }
  return nullptr;
}

}  // namespace

// ---------------------------------------------------------------- query

query::query(database& db, statement& stmt, std::string_view what) noexcept
    : db_(db), stmt_(stmt.stmt_), what_(what) {}

query::~query() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

query& query::bind(std::string_view text) noexcept {
  // A null data pointer would bind SQL NULL, not an empty string.
  const char* data = text.data() != nullptr ? text.data() : "";
  // nullptr as the destructor is SQLITE_STATIC: no copy, the caller's bytes
  // outlive this query, and ~query() clears the binding.
  int rc = sqlite3_bind_text64(stmt_, next_param_++, data, text.size(), nullptr, SQLITE_UTF8);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

query& query::bind(std::int64_t value) noexcept {
  int rc = sqlite3_bind_int64(stmt_, next_param_++, value);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

result<bool> query::step() {
  if (bind_rc_ != SQLITE_OK) return tl::unexpected(db_.failure(what_, bind_rc_));
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return tl::unexpected(db_.failure(what_, rc));
}

result<void> query::run() {
  while (true) {
    auto row = step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) return {};
  }
}

std::string query::text(int column) const {
  const unsigned char* p = sqlite3_column_text(stmt_, column);
  int n = sqlite3_column_bytes(stmt_, column);
  if (p == nullptr || n <= 0) return {};
  return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
}

std::int64_t query::integer(int column) const noexcept {
  return sqlite3_column_int64(stmt_, column);
}

bool query::is_null(int column) const noexcept {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

// ---------------------------------------------------------------- database

database::database(database&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      path_(std::move(other.path_)),
      begin_(std::move(other.begin_)),
      commit_(std::move(other.commit_)),
      rollback_(std::move(other.rollback_)),
      commits_(other.commits_) {}

database& database::operator=(database&& other) noexcept {
  if (this != &other) {
    close();
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
    begin_ = std::move(other.begin_);
    commit_ = std::move(other.commit_);
    rollback_ = std::move(other.rollback_);
    commits_ = other.commits_;
  }
  return *this;
}

database::~database() { close(); }

void database::close() noexcept {
  begin_ = statement();
  commit_ = statement();
  rollback_ = statement();
  // _v2: if an owner still holds a prepared statement, the connection closes
  // when that statement is finalized instead of failing with SQLITE_BUSY.
  sqlite3_close_v2(db_);
  db_ = nullptr;
}

error database::failure(std::string_view what, int rc) const {
  // sqlite3_errmsg is more precise ("UNIQUE constraint failed: ...") but only
  // describes the connection's latest error, which may not be `rc`.
  const char* msg = (db_ != nullptr && (sqlite3_errcode(db_) & 0xff) == (rc & 0xff))
                        ? sqlite3_errmsg(db_)
                        : sqlite3_errstr(rc);
  std::string detail = path_.string();
  detail += ": ";
  detail += what;
  detail += ": ";
  detail += msg;
  // Also what a second server on the same data directory meets (a server
  // may keep its file locked for itself: options::exclusive).
  if ((rc & 0xff) == SQLITE_BUSY) detail += " (another process is using the file)";
  return error(errc::storage_error, std::move(detail));
}

result<database> database::open(const fs::path& file, const options& opts, const schema& s) {
  if (file.empty()) return fail(errc::invalid_argument, "empty database path");
  auto timeout = opts.busy_timeout.count();
  if (timeout < 0 || timeout > INT_MAX) {
    return fail(errc::invalid_config,
                "busy_timeout must be between 0 and " + std::to_string(INT_MAX) + " ms");
  }
  if (synchronous_pragma(opts.synchronous) == nullptr) {
    return fail(errc::invalid_config, "unknown synchronous level");
  }

  std::error_code ec;
  // SQLite strips a trailing slash and would create "dir" as a file, and on a
  // directory it only says "unable to open database file".
  if (!file.has_filename() || fs::is_directory(file, ec)) {
    return storage(file.string() + ": cannot open: it is a directory, not a database file");
  }
  const bool existed = fs::exists(file, ec);

  std::string name = file.string();
  // Without URI handling this is SQLite's only magic name; keep it a file.
  if (name == ":memory:") name = "./:memory:";

  database d;
  d.path_ = file;
  int rc =
      sqlite3_open_v2(name.c_str(), &d.db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      wal_vfs_name());
  if (rc != SQLITE_OK) {
    error e = d.failure("cannot open", rc);
    return storage(e.detail() + open_hint(file));
  }
  sqlite3_extended_result_codes(d.db_, 1);
  // SQLite quietly falls back to read-only when the file is not writable;
  // every later write would fail, so say so now.
  if (sqlite3_db_readonly(d.db_, "main") == 1) {
    return storage(file.string() + ": cannot open for writing: the file is read-only");
  }
  sqlite3_busy_timeout(d.db_, static_cast<int>(timeout));

  if (auto r = d.configure(opts, s.page_size); !r) {
    // A file we may write in a directory we may not: the WAL files cannot be
    // created, and SQLite only says "unable to open database file" or
    // "attempt to write a readonly database".
    const std::string& detail = r.error().detail();
    if (detail.find("unable to open") != std::string::npos ||
        detail.find("readonly database") != std::string::npos) {
      return storage(r.error().detail() + open_hint(file));
    }
    return tl::unexpected(r.error());
  }
  if (auto r = d.migrate(s); !r) return tl::unexpected(r.error());

  auto begin = d.prepare("BEGIN IMMEDIATE");
  if (!begin) return tl::unexpected(begin.error());
  auto commit = d.prepare("COMMIT");
  if (!commit) return tl::unexpected(commit.error());
  auto rollback = d.prepare("ROLLBACK");
  if (!rollback) return tl::unexpected(rollback.error());
  d.begin_ = std::move(*begin);
  d.commit_ = std::move(*commit);
  d.rollback_ = std::move(*rollback);

  if (!existed && opts.synchronous >= sync_level::full) {
    if (auto r = sync_directory(file); !r) return tl::unexpected(r.error());
  }
  return result<database>(std::move(d));
}

result<void> database::prepare_all(std::initializer_list<statement_sql> statements) {
  for (const auto& [target, sql] : statements) {
    auto stmt = prepare(sql);
    if (!stmt) return tl::unexpected(stmt.error());
    *target = std::move(*stmt);
  }
  return {};
}

result<void> database::configure(const options& opts, int page_size) {
  // Before anything reads the file: the locks are then taken once and kept.
  if (opts.exclusive) {
    if (auto r = exec("PRAGMA locking_mode=EXCLUSIVE", "cannot take the file for this connection alone");
        !r) {
      return r;
    }
  }
  // Only a file without pages takes it (and only before it turns to WAL);
  // it reads nothing.
  if (page_size != 0) {
    const std::string sql = "PRAGMA page_size=" + std::to_string(page_size);
    if (auto r = exec(sql.c_str(), "cannot set the page size"); !r) return r;
  }
  // The first statement to read the file: a non-SQLite file fails here with
  // "file is not a database", before anything is written to it.
  auto wal = prepare("PRAGMA journal_mode=WAL");
  if (!wal) return tl::unexpected(wal.error());
  std::string mode;
  {
    query q(*this, *wal, "cannot enable WAL journal mode");
    auto row = q.step();
    if (!row) return tl::unexpected(row.error());
    if (*row) mode = q.text(0);
  }
  if (mode != "wal") {
    return storage(path_.string() + ": cannot enable WAL journal mode: SQLite stays in \"" + mode +
                   "\" mode");
  }
  if (auto r = exec(synchronous_pragma(opts.synchronous), "cannot set synchronous level"); !r) {
    return r;
  }
  if (auto r = exec("PRAGMA foreign_keys=ON", "cannot enable foreign keys"); !r) return r;
  // The pragma is silently ignored by builds without foreign key support.
  auto fk = pragma_integer("PRAGMA foreign_keys", "cannot read foreign_keys");
  if (!fk) return tl::unexpected(fk.error());
  if (*fk != 1) return storage(path_.string() + ": this SQLite build cannot enforce foreign keys");
  return {};
}

result<void> database::migrate(const schema& s) {
  // IMMEDIATE: two processes creating the same new file must not both run
  // the migrations.
  if (auto r = exec("BEGIN IMMEDIATE", "cannot begin schema check"); !r) return r;
  auto done = [&]() -> result<void> {
    auto app = pragma_integer("PRAGMA application_id", "cannot read application_id");
    if (!app) return tl::unexpected(app.error());
    auto version = pragma_integer("PRAGMA user_version", "cannot read schema version");
    if (!version) return tl::unexpected(version.error());
    const std::string kind(s.kind);

    if (*app != s.application_id) {
      if (*app != 0) {
        return storage(path_.string() + ": not a " + kind + " store (application_id " + hex(*app) +
                       ", expected " + hex(s.application_id) + ")");
      }
      auto tables = pragma_integer("SELECT count(*) FROM sqlite_master", "cannot read schema");
      if (!tables) return tl::unexpected(tables.error());
      if (*version != 0 || *tables != 0) {
        return storage(path_.string() + ": not a " + kind +
                       " store: the file holds another SQLite database");
      }
    }
    const auto known = static_cast<std::int64_t>(s.migrations.size());
    if (*version > known || *version < 0) {
      return storage(path_.string() + ": " + kind + " schema version " + std::to_string(*version) +
                     " is newer than this libimproto supports (" + std::to_string(known) + ")");
    }
    for (auto v = static_cast<std::size_t>(*version); v < s.migrations.size(); ++v) {
      if (auto r = exec(s.migrations[v], "cannot migrate schema"); !r) return r;
    }
    auto now = pragma_integer("PRAGMA user_version", "cannot read schema version");
    if (!now) return tl::unexpected(now.error());
    auto id = pragma_integer("PRAGMA application_id", "cannot read application_id");
    if (!id) return tl::unexpected(id.error());
    if (*now != known || *id != s.application_id) {
      return storage(path_.string() + ": schema migration left version " + std::to_string(*now) +
                     ", application_id " + hex(*id));
    }
    return exec("COMMIT", "cannot commit schema");
  }();
  if (!done) rollback();
  return done;
}

result<statement> database::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  // PERSISTENT: these statements live as long as the connection.
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return tl::unexpected(failure("cannot prepare statement", rc));
  }
  return statement(stmt);
}

result<void> database::exec(const char* sql, std::string_view what) {
  char* msg = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &msg);
  if (rc == SQLITE_OK) return {};
  std::string detail = path_.string() + ": " + std::string(what) + ": " +
                       (msg != nullptr ? msg : sqlite3_errstr(rc));
  sqlite3_free(msg);
  return storage(std::move(detail));
}

result<std::int64_t> database::pragma_integer(const char* sql, std::string_view what) {
  auto stmt = prepare(sql);
  if (!stmt) return tl::unexpected(stmt.error());
  query q(*this, *stmt, what);
  auto row = q.step();
  if (!row) return tl::unexpected(row.error());
  if (!*row) return storage(path_.string() + ": " + std::string(what) + ": no value");
  return q.integer(0);
}

result<void> database::step_control(statement& stmt, std::string_view what) {
  query q(*this, stmt, what);
  return q.run();
}

void database::rollback() noexcept {
  // Some errors (I/O, full disk) already rolled the transaction back.
  if (db_ == nullptr || sqlite3_get_autocommit(db_) != 0) return;
  if (rollback_.stmt_ != nullptr) {
    sqlite3_step(rollback_.stmt_);
    sqlite3_reset(rollback_.stmt_);
  } else {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

result<store_status> database::status() {
  store_status st;
  st.backend = "sqlite";
  {
    auto stmt = prepare("PRAGMA journal_mode");
    if (!stmt) return tl::unexpected(stmt.error());
    query q(*this, *stmt, "cannot read journal_mode");
    auto row = q.step();
    if (!row) return tl::unexpected(row.error());
    if (*row) st.journal_mode = q.text(0);
  }
  auto sync = pragma_integer("PRAGMA synchronous", "cannot read synchronous");
  if (!sync) return tl::unexpected(sync.error());
  if (*sync < 0 || *sync > 3) {
    return storage(path_.string() + ": unexpected synchronous level " + std::to_string(*sync));
  }
  st.synchronous = static_cast<sync_level>(*sync);
  auto fk = pragma_integer("PRAGMA foreign_keys", "cannot read foreign_keys");
  if (!fk) return tl::unexpected(fk.error());
  st.foreign_keys = *fk == 1;
  auto busy = pragma_integer("PRAGMA busy_timeout", "cannot read busy_timeout");
  if (!busy) return tl::unexpected(busy.error());
  st.busy_timeout = std::chrono::milliseconds(*busy);
  auto version = pragma_integer("PRAGMA user_version", "cannot read schema version");
  if (!version) return tl::unexpected(version.error());
  st.schema_version = static_cast<int>(*version);
  st.commits = commits_;
  return st;
}

}  // namespace improto::store::detail

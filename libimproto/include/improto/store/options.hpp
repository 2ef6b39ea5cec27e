#pragma once

// Settings and diagnostics shared by the durable stores (registry_store,
// buddy_store). A store is one SQLite file in WAL mode, or a PostgreSQL
// database; see registry_store.hpp for the thread and transaction model.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace improto::store {

// SQLite's `PRAGMA synchronous`, in WAL mode (PostgreSQL: full and extra are
// synchronous_commit=on, normal and off are synchronous_commit=off, which
// may lose the last commits if the database server crashes):
//  * full  - every commit is fsynced before it returns: an acknowledged
//            change survives kill -9 and power loss (the default);
//  * extra - full, plus extra directory syncs; for paranoid file systems;
//  * normal - commits survive kill -9 but the last ones may be lost on
//            power loss (the WAL is fsynced only at checkpoints);
//  * off   - no fsync at all; for tests and throw-away data only.
enum class sync_level { off, normal, full, extra };

struct options {
  sync_level synchronous = sync_level::full;
  // How long a write waits for another connection (another process on the
  // same file) to release its lock before failing with storage_error.
  // PostgreSQL: lock_timeout, for a row another node is writing.
  std::chrono::milliseconds busy_timeout{5000};
  // SQLite only: this connection is the only one to its file for as long as
  // it is open (PRAGMA locking_mode=EXCLUSIVE: no file lock taken and
  // released around every transaction, the WAL index in memory). Another
  // connection or process cannot even read the file meanwhile.
  bool exclusive = false;
  // PostgreSQL only: how long connecting (and reconnecting after the
  // server went away) may take before a write fails with storage_error.
  std::chrono::milliseconds connect_timeout{5000};
};

// What the connection is really running with, read back from SQLite; for
// startup logs, health checks and tests.
struct store_status {
  std::string backend;       // "sqlite" or "postgresql"
  std::string journal_mode;  // "wal"; empty on PostgreSQL
  sync_level synchronous = sync_level::full;
  bool foreign_keys = false;
  std::chrono::milliseconds busy_timeout{0};
  int schema_version = 0;     // PRAGMA user_version; improto_schema.version on PostgreSQL
  std::uint64_t commits = 0;  // write transactions this store object committed
};

// A store location naming a PostgreSQL database: a URL starting with
// "postgresql://" or "postgres://" (libpq's syntax, e.g.
// postgresql://user@host:5432/db?sslmode=disable). Anything else is a file.
bool is_postgresql_url(std::string_view location) noexcept;

// Whether this build has the PostgreSQL stores (libpq was found).
bool have_postgresql() noexcept;

// `location` with the password of a URL replaced by "***": for logs and
// error messages.
std::string redact(std::string_view location);

}  // namespace improto::store

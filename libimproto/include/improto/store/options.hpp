#pragma once

// Settings and diagnostics shared by the durable stores (registry_store,
// buddy_store). Each store is one SQLite file in WAL mode; see
// docs in registry_store.hpp for the thread and transaction model.

#include <chrono>
#include <cstdint>
#include <string>

namespace improto::store {

// SQLite's `PRAGMA synchronous`, in WAL mode:
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
  std::chrono::milliseconds busy_timeout{5000};
};

// What the connection is really running with, read back from SQLite; for
// startup logs, health checks and tests.
struct store_status {
  std::string journal_mode;  // "wal"
  sync_level synchronous = sync_level::full;
  bool foreign_keys = false;
  std::chrono::milliseconds busy_timeout{0};
  int schema_version = 0;     // PRAGMA user_version
  std::uint64_t commits = 0;  // write transactions this store object committed
};

}  // namespace improto::store

#pragma once

#include <sqlite3.h>

namespace improto::store::detail {

// The name of the default VFS with one change: a WAL frame's header and page
// go to the kernel in one write instead of two (wal_vfs.cpp says why this is
// exactly as durable). Registered on the first call; nullptr (SQLite's
// default VFS) if it could not be.
const char* wal_vfs_name() noexcept;

}  // namespace improto::store::detail

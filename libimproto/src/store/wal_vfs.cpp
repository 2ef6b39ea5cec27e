#include "wal_vfs.hpp"

#include <cstdlib>
#include <cstring>

// SQLite writes a WAL frame as two writes: its 24-byte header, then the page
// right after it (wal.c, walWriteOneFrame), i.e. two pwrite64 calls per
// frame and so per single-change commit. This VFS is the default one (unix)
// except for WAL files, whose 24-byte writes are held back and written
// together with the write that continues them: one system call per frame.
//
// Durability is exactly the default VFS's: a held header is written before
// any other operation on its file (a non-adjacent write, read, sync,
// truncate, size, lock, file control, close), so every sync covers what it
// covered before, and a commit's last write is always a page (which carries
// its header with it), so a commit returns with all its bytes handed to the
// kernel as before. A failed deferred write is reported by the operation
// that triggered it (for a frame: the page's write, which fails the commit
// as the header's own write would have).

namespace improto::store::detail {
namespace {

constexpr int frame_header_size = 24;  // WAL_FRAME_HDRSIZE

sqlite3_vfs* base_vfs = nullptr;  // the default VFS, set once at registration

// A WAL file: this header first (SQLite sees a sqlite3_file whose methods
// are ours), then the base VFS's own file object.
struct wal_file {
  sqlite3_file file;
  sqlite3_file* base;
  bool held;
  sqlite3_int64 held_offset;
  unsigned char header[frame_header_size];
  unsigned char* joined;  // header + the following write, reused per frame
  int joined_capacity;
};

constexpr int base_offset = static_cast<int>((sizeof(wal_file) + 15) / 16 * 16);

wal_file* wal(sqlite3_file* f) { return reinterpret_cast<wal_file*>(f); }

int flush(wal_file* w) {
  if (!w->held) return SQLITE_OK;
  w->held = false;
  return w->base->pMethods->xWrite(w->base, w->header, frame_header_size, w->held_offset);
}

int wal_write(sqlite3_file* f, const void* data, int amount, sqlite3_int64 offset) {
  wal_file* w = wal(f);
  if (w->held && offset == w->held_offset + frame_header_size && amount > 0) {
    int total = frame_header_size + amount;
    if (total > w->joined_capacity) {
      auto* grown =
          static_cast<unsigned char*>(std::realloc(w->joined, static_cast<std::size_t>(total)));
      if (grown == nullptr) {
        int rc = flush(w);
        return rc != SQLITE_OK ? rc : w->base->pMethods->xWrite(w->base, data, amount, offset);
      }
      w->joined = grown;
      w->joined_capacity = total;
    }
    std::memcpy(w->joined, w->header, frame_header_size);
    std::memcpy(w->joined + frame_header_size, data, static_cast<std::size_t>(amount));
    w->held = false;
    return w->base->pMethods->xWrite(w->base, w->joined, total, w->held_offset);
  }
  if (int rc = flush(w); rc != SQLITE_OK) return rc;
  if (amount == frame_header_size) {
    std::memcpy(w->header, data, frame_header_size);
    w->held_offset = offset;
    w->held = true;
    return SQLITE_OK;
  }
  return w->base->pMethods->xWrite(w->base, data, amount, offset);
}

int wal_close(sqlite3_file* f) {
  wal_file* w = wal(f);
  int rc = flush(w);
  int closed = w->base->pMethods->xClose(w->base);
  std::free(w->joined);
  w->joined = nullptr;
  return rc != SQLITE_OK ? rc : closed;
}

// Every other method that reaches the file: the held header first, then
// the base file's own method.
template <auto method, class... Args>
int flushed(sqlite3_file* f, Args... args) {
  wal_file* w = wal(f);
  if (int rc = flush(w); rc != SQLITE_OK) return rc;
  return (w->base->pMethods->*method)(w->base, args...);
}

// Queries that touch no data.
int wal_sector_size(sqlite3_file* f) { return wal(f)->base->pMethods->xSectorSize(wal(f)->base); }
int wal_device_characteristics(sqlite3_file* f) {
  return wal(f)->base->pMethods->xDeviceCharacteristics(wal(f)->base);
}

// Version 1: SQLite maps and shares memory only through the database file,
// never through its WAL.
const sqlite3_io_methods wal_methods = {
    1,
    wal_close,
    flushed<&sqlite3_io_methods::xRead, void*, int, sqlite3_int64>,
    wal_write,
    flushed<&sqlite3_io_methods::xTruncate, sqlite3_int64>,
    flushed<&sqlite3_io_methods::xSync, int>,
    flushed<&sqlite3_io_methods::xFileSize, sqlite3_int64*>,
    flushed<&sqlite3_io_methods::xLock, int>,
    flushed<&sqlite3_io_methods::xUnlock, int>,
    flushed<&sqlite3_io_methods::xCheckReservedLock, int*>,
    flushed<&sqlite3_io_methods::xFileControl, int, void*>,
    wal_sector_size,
    wal_device_characteristics,
    nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};

int open_file(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  if ((flags & SQLITE_OPEN_WAL) == 0) {
    // Anything but a WAL: the base VFS's own file, unchanged.
    return base_vfs->xOpen(base_vfs, name, f, flags, out_flags);
  }
  wal_file* w = wal(f);
  w->file.pMethods = nullptr;  // SQLite calls no method of a file that did not open
  w->base = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + base_offset);
  w->held = false;
  w->held_offset = 0;
  w->joined = nullptr;
  w->joined_capacity = 0;
  w->base->pMethods = nullptr;
  int rc = base_vfs->xOpen(base_vfs, name, w->base, flags, out_flags);
  // A base that failed may still have methods to close it with.
  if (rc == SQLITE_OK || w->base->pMethods != nullptr) w->file.pMethods = &wal_methods;
  return rc;
}

sqlite3_vfs make_vfs() {
  sqlite3_vfs v = *base_vfs;
  v.pNext = nullptr;
  v.zName = "improto-wal";
  v.szOsFile = base_offset + base_vfs->szOsFile;
  v.xOpen = open_file;
  return v;
}

}  // namespace

const char* wal_vfs_name() noexcept {
  static const char* const name = [] () -> const char* {
    base_vfs = sqlite3_vfs_find(nullptr);
    if (base_vfs == nullptr) return nullptr;
    static sqlite3_vfs vfs = make_vfs();
    return sqlite3_vfs_register(&vfs, 0) == SQLITE_OK ? vfs.zName : nullptr;
  }();
  return name;
}

}  // namespace improto::store::detail

// The file-level guarantees both stores share: pragmas, bad paths and files,
// locking between connections, and durability across kill -9.

#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "improto/store/buddy_store.hpp"
#include "improto/store/registry_store.hpp"
#include "store_support.hpp"

using namespace improto;
using improto::store::buddy_store;
using improto::store::registry_store;
using improto::store::sync_level;
using improto::test::check_error;
using improto::test::check_ok;
using improto::test::temp_dir;
namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const fs::path& file, const std::string& bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Makes a file unwritable even for root (the immutable attribute; plain
// permissions when not root) and restores it afterwards so it can be deleted.
class unwritable_file {
 public:
  explicit unwritable_file(fs::path file) : file_(std::move(file)) {
    if (::geteuid() != 0) {
      fs::permissions(file_,
                      fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
    } else {
      set_immutable(true);
    }
    int fd = ::open(file_.c_str(), O_RDWR | O_CLOEXEC);
    active_ = fd < 0;
    if (fd >= 0) ::close(fd);
  }
  ~unwritable_file() {
    if (::geteuid() == 0) set_immutable(false);
    std::error_code ec;
    fs::permissions(file_, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add,
                    ec);
  }
  unwritable_file(const unwritable_file&) = delete;
  unwritable_file& operator=(const unwritable_file&) = delete;
  bool active() const noexcept { return active_; }

 private:
  void set_immutable(bool on) {
    int fd = ::open(file_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    int flags = 0;
    if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
      flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
      ::ioctl(fd, FS_IOC_SETFLAGS, &flags);
    }
    ::close(fd);
  }
  fs::path file_;
  bool active_ = false;
};

// ---------------------------------------------------------------- kill -9

bool write_all(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// Forks `child(fd)`, which writes the 32-bit id of every change it has had
// acknowledged to `fd`; SIGKILLs it as soon as `kill_after` ids arrived and
// returns every id it acknowledged before dying. The child must not use
// doctest and must open its own store (a connection must not cross fork()).
template <class Child>
std::vector<std::uint32_t> run_until_killed(Child child, std::size_t kill_after) {
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    ::_exit(child(fds[1]));
  }
  ::close(fds[1]);
  struct reaper {
    pid_t pid;
    bool reaped = false;
    ~reaper() {
      if (!reaped) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
  } guard{pid};

  std::vector<std::uint32_t> acked;
  std::string pending;
  bool killed = false;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child is gone, every ack it wrote was read
    pending.append(buf, static_cast<std::size_t>(n));
    std::size_t whole = pending.size() / 4 * 4;
    for (std::size_t i = 0; i < whole; i += 4) {
      std::uint32_t id;
      std::memcpy(&id, pending.data() + i, 4);
      acked.push_back(id);
    }
    pending.erase(0, whole);
    if (!killed && acked.size() >= kill_after) {
      REQUIRE(::kill(pid, SIGKILL) == 0);
      killed = true;
    }
  }
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  guard.reaped = true;
  CHECK(pending.empty());
  INFO("child exit status ", (WIFEXITED(status) ? WEXITSTATUS(status) : -1), " after ",
       acked.size(), " acknowledgements");
  REQUIRE(killed);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  return acked;
}

}  // namespace

// ---------------------------------------------------------------- settings

TEST_CASE("store: files are WAL, synchronous FULL, with foreign keys and a busy timeout") {
  temp_dir dir;
  const auto reg_file = dir / "registry.sqlite3";
  const auto buddy_file = dir / "buddy.sqlite3";
  {
    auto reg = registry_store::open(reg_file);
    REQUIRE(reg.has_value());
    auto buddy = buddy_store::open(buddy_file);
    REQUIRE(buddy.has_value());
    // Schema versions: registry 2 (entries remember their origin), buddy 1.
    const int versions[] = {3, 1};
    int which = 0;
    for (auto st : {reg->status(), buddy->status()}) {
      REQUIRE(st.has_value());
      CHECK(st->journal_mode == "wal");
      CHECK(st->synchronous == sync_level::full);
      CHECK(st->foreign_keys);
      CHECK(st->busy_timeout == std::chrono::milliseconds(5000));
      CHECK(st->schema_version == versions[which++]);
      CHECK(st->commits == 0);
    }
    CHECK(fs::exists(reg_file.string() + "-wal"));

    // Seen from outside the stores.
    test::raw_db raw(reg_file);
    CHECK(raw.text("PRAGMA journal_mode") == "wal");
    CHECK(raw.integer("PRAGMA user_version") == 3);
    CHECK(raw.integer("PRAGMA application_id") == 0x494d5247);
    test::raw_db raw_buddy(buddy_file);
    CHECK(raw_buddy.integer("PRAGMA application_id") == 0x494d4244);
  }
  // WAL mode is recorded in the file header: format versions 2 and 2.
  for (const auto& file : {reg_file, buddy_file}) {
    const std::string header = read_file(file);
    REQUIRE(header.size() >= 100);
    CHECK(header.compare(0, 16, std::string("SQLite format 3\0", 16)) == 0);
    CHECK(header[18] == 2);
    CHECK(header[19] == 2);
  }
}

TEST_CASE("store: the synchronous level and busy timeout follow the options") {
  temp_dir dir;
  for (auto level : {sync_level::off, sync_level::normal, sync_level::full, sync_level::extra}) {
    CAPTURE(static_cast<int>(level));
    store::options opts;
    opts.synchronous = level;
    opts.busy_timeout = std::chrono::milliseconds(1234);
    auto s = registry_store::open(dir / "registry.sqlite3", opts);
    REQUIRE(s.has_value());
    auto st = s->status();
    REQUIRE(st.has_value());
    CHECK(st->synchronous == level);
    CHECK(st->busy_timeout == std::chrono::milliseconds(1234));
    auto b = buddy_store::open(dir / "buddy.sqlite3", opts);
    REQUIRE(b.has_value());
    auto bst = b->status();
    REQUIRE(bst.has_value());
    CHECK(bst->synchronous == level);
  }
}

TEST_CASE("store: bad options and an empty path are refused") {
  temp_dir dir;
  store::options opts;
  opts.busy_timeout = std::chrono::milliseconds(-1);
  check_error(registry_store::open(dir / "r.sqlite3", opts), errc::invalid_config,
              {"busy_timeout"});
  opts.busy_timeout = std::chrono::milliseconds(1LL << 40);
  check_error(buddy_store::open(dir / "b.sqlite3", opts), errc::invalid_config, {"busy_timeout"});
  opts = {};
  opts.synchronous = static_cast<sync_level>(7);
  check_error(registry_store::open(dir / "r.sqlite3", opts), errc::invalid_config, {"synchronous"});
  check_error(registry_store::open(""), errc::invalid_argument, {"empty"});
  CHECK(fs::is_empty(dir.path()));
}

// ---------------------------------------------------------------- bad paths

TEST_CASE("store: a missing directory is a storage error naming the path") {
  temp_dir dir;
  const auto file = dir / "missing" / "registry.sqlite3";
  check_error(registry_store::open(file), errc::storage_error,
              {file.string(), "unable to open database file", "does not exist"});
  check_error(buddy_store::open(dir / "missing" / "buddy.sqlite3"), errc::storage_error,
              {"does not exist"});
  // A regular file where the directory should be.
  write_file(dir / "plain", "x");
  check_error(registry_store::open(dir / "plain" / "registry.sqlite3"), errc::storage_error,
              {"is not a directory"});
  CHECK_FALSE(fs::exists(dir / "missing"));
}

TEST_CASE("store: a parent that is a file is named as such") {
  temp_dir dir;
  write_file(dir / "plain", "x");
  const auto file = dir / "plain" / "sub" / "registry.sqlite3";
  check_error(registry_store::open(file), errc::storage_error,
              {file.string(), "unable to open database file", "a parent is not a directory"});
}

namespace {
// Runs open() on each path as an unprivileged user (root bypasses file
// permissions), in a child process, and returns the error messages.
std::vector<std::string> open_errors_unprivileged(const std::vector<fs::path>& files) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(2);
    std::string out;
    for (const auto& f : files) {
      auto r = registry_store::open(f);
      out += r ? std::string("opened") : r.error().message();
      out += '\0';
    }
    const char* p = out.data();
    std::size_t left = out.size();
    while (left > 0) {
      auto n = ::write(fds[1], p, left);
      if (n <= 0) ::_exit(3);
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string all;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) all.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), "child status ", status);
  std::vector<std::string> messages;
  for (std::size_t start = 0, end; (end = all.find('\0', start)) != std::string::npos;
       start = end + 1) {
    messages.push_back(all.substr(start, end - start));
  }
  return messages;
}
}  // namespace

TEST_CASE("store: a directory we may not write says permission denied") {
  temp_dir dir;
  // Reachable by the unprivileged child; the subdirectories are not writable.
  fs::permissions(dir.path(), fs::perms::all & ~fs::perms::others_write & ~fs::perms::group_write);
  fs::create_directory(dir / "readonly");
  fs::permissions(dir / "readonly", fs::perms::owner_all | fs::perms::group_read |
                                        fs::perms::group_exec | fs::perms::others_read |
                                        fs::perms::others_exec);
  fs::create_directory(dir / "closed");
  fs::permissions(dir / "closed", fs::perms::owner_all);
  // A database anyone may write, in a directory where its WAL files cannot
  // be created.
  fs::create_directory(dir / "walless");
  {
    auto made = registry_store::open(dir / "walless" / "registry.sqlite3");
    REQUIRE(made.has_value());
  }
  for (const char* side : {"registry.sqlite3-wal", "registry.sqlite3-shm"}) {
    fs::remove(dir / "walless" / side);
  }
  fs::permissions(dir / "walless" / "registry.sqlite3", fs::perms::all & ~fs::perms::owner_exec &
                                                            ~fs::perms::group_exec &
                                                            ~fs::perms::others_exec);
  fs::permissions(dir / "walless", fs::perms::owner_all | fs::perms::group_read |
                                       fs::perms::group_exec | fs::perms::others_read |
                                       fs::perms::others_exec);
  auto messages = open_errors_unprivileged({dir / "readonly" / "registry.sqlite3",
                                            dir / "closed" / "registry.sqlite3",
                                            dir / "walless" / "registry.sqlite3"});
  REQUIRE(messages.size() == 3);
  for (const auto& m : messages) {
    INFO(m);
    CHECK(m.find("permission denied") != std::string::npos);
    CHECK(m.find("registry.sqlite3") != std::string::npos);
  }
  CHECK(messages[0].find("cannot create files in " + (dir / "readonly").string()) !=
        std::string::npos);
  CHECK(messages[1].find("cannot look inside " + (dir / "closed").string()) != std::string::npos);
  CHECK(messages[2].find("cannot create files in " + (dir / "walless").string()) !=
        std::string::npos);
  CHECK(fs::is_empty(dir / "readonly"));
}

TEST_CASE("store: a directory is not a database file") {
  temp_dir dir;
  check_error(registry_store::open(dir.path()), errc::storage_error,
              {dir.path().string(), "is a directory"});
  check_error(buddy_store::open(dir.path()), errc::storage_error, {"is a directory"});
  // SQLite would strip the slash and create "new" as a file.
  check_error(registry_store::open(dir.path() / "new" / ""), errc::storage_error,
              {"is a directory"});
  CHECK(fs::is_empty(dir.path()));
}

TEST_CASE("store: a file that is not SQLite is refused and left untouched") {
  temp_dir dir;
  const auto file = dir / "registry.sqlite3";
  std::string text;
  for (int i = 0; i < 200; ++i) text += "alice@10.0.0.1:4000,bob@10.0.0.2:4001,\n";
  write_file(file, text);
  check_error(registry_store::open(file), errc::storage_error,
              {file.string(), "file is not a database"});
  check_error(buddy_store::open(file), errc::storage_error, {"file is not a database"});
  CHECK(read_file(file) == text);
  CHECK_FALSE(fs::exists(file.string() + "-wal"));
}

TEST_CASE("store: an empty file becomes a new store") {
  temp_dir dir;
  const auto file = dir / "registry.sqlite3";
  write_file(file, "");
  auto s = registry_store::open(file);
  REQUIRE(s.has_value());
  check_ok(s->add("bob", "h", 1));
}

TEST_CASE("store: one kind of store does not open another's file") {
  temp_dir dir;
  REQUIRE(registry_store::open(dir / "registry.sqlite3").has_value());
  REQUIRE(buddy_store::open(dir / "buddy.sqlite3").has_value());
  check_error(buddy_store::open(dir / "registry.sqlite3"), errc::storage_error,
              {"registry.sqlite3", "not a buddy store", "0x494d5247"});
  check_error(registry_store::open(dir / "buddy.sqlite3"), errc::storage_error,
              {"not a registry store"});
}

TEST_CASE("store: another application's SQLite database is refused and left untouched") {
  temp_dir dir;
  const auto file = dir / "app.sqlite3";
  {
    test::raw_db raw(file);
    raw.exec("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me')");
  }
  check_error(registry_store::open(file), errc::storage_error, {"another SQLite database"});
  check_error(buddy_store::open(file), errc::storage_error, {"another SQLite database"});
  test::raw_db raw(file);
  CHECK(raw.integer("SELECT count(*) FROM sqlite_master") == 1);
  CHECK(raw.text("SELECT body FROM notes") == "keep me");
}

TEST_CASE("store: a file from a newer schema version is refused") {
  temp_dir dir;
  const auto file = dir / "registry.sqlite3";
  {
    auto s = registry_store::open(file);
    REQUIRE(s.has_value());
    check_ok(s->add("bob", "h", 1));
  }
  {
    test::raw_db raw(file);
    raw.exec("PRAGMA user_version = 99");
  }
  check_error(registry_store::open(file), errc::storage_error, {"schema version 99", "newer"});
}

TEST_CASE("store: a corrupt file gives a storage error, not a crash") {
  temp_dir dir;
  const auto file = dir / "registry.sqlite3";
  {
    auto s = registry_store::open(file);
    REQUIRE(s.has_value());
    for (int i = 0; i < 50; ++i) check_ok(s->add("user" + std::to_string(i), "10.0.0.1", 4000));
  }
  std::string bytes = read_file(file);
  // The page size: two big-endian bytes at offset 16 of the header.
  REQUIRE(bytes.size() > 18);
  const std::size_t page = static_cast<std::size_t>(static_cast<unsigned char>(bytes[16])) << 8 |
                           static_cast<unsigned char>(bytes[17]);
  REQUIRE(bytes.size() > page);
  // Keep page 1 (the header and schema), wreck every table and index page.
  for (std::size_t i = page; i < bytes.size(); ++i) bytes[i] = static_cast<char>(0xa5);
  write_file(file, bytes);

  auto s = registry_store::open(file);
  if (!s) {
    check_error(s, errc::storage_error, {"malformed"});
  } else {
    check_error(s->list(), errc::storage_error, {file.string(), "malformed"});
    check_error(s->add("late", "h", 1), errc::storage_error, {"malformed"});
  }
}

TEST_CASE("store: a read-only file is refused") {
  temp_dir dir;
  const auto file = dir / "registry.sqlite3";
  {
    auto s = registry_store::open(file);
    REQUIRE(s.has_value());
    check_ok(s->add("bob", "h", 1));
  }
  unwritable_file guard(file);
  if (!guard.active()) {
    MESSAGE("cannot make a file read-only here (no immutable attribute); skipped");
    return;
  }
  check_error(registry_store::open(file), errc::storage_error, {file.string(), "read-only"});
}

TEST_CASE("store: the path :memory: is a file, not an in-memory database") {
  temp_dir dir;
  const fs::path cwd = fs::current_path();
  struct restore {
    fs::path cwd;
    ~restore() { fs::current_path(cwd); }
  } back{cwd};
  fs::current_path(dir.path());
  {
    auto s = registry_store::open(":memory:");
    REQUIRE(s.has_value());
    check_ok(s->add("bob", "h", 1));
  }
  CHECK(fs::exists(dir / ":memory:"));
  auto s = registry_store::open(":memory:");
  REQUIRE(s.has_value());
  auto l = s->contains("bob");
  REQUIRE(l.has_value());
  CHECK(*l);
}

// ---------------------------------------------------------------- sharing

TEST_CASE("store: two connections share a file; a writer waits for the lock, readers do not") {
  temp_dir dir;
  const auto file = dir / "registry.sqlite3";
  store::options opts;
  opts.busy_timeout = std::chrono::milliseconds(150);
  auto a = registry_store::open(file, opts);
  REQUIRE(a.has_value());
  auto b = registry_store::open(file, opts);
  REQUIRE(b.has_value());
  check_ok(a->add("amy", "h", 1));
  auto seen = b->contains("amy");
  REQUIRE(seen.has_value());
  CHECK(*seen);

  test::raw_db raw(file);
  raw.exec("BEGIN IMMEDIATE; INSERT INTO registry (name, seq, host, port) VALUES ('raw', 100, 'h', 2)");
  const auto start = std::chrono::steady_clock::now();
  check_error(a->add("bob", "h", 3), errc::storage_error, {file.string(), "locked"});
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(100));
  const std::vector<registry_store::operation> ops = {registry_store::add_op{"carl", "h", 4}};
  check_error(b->apply(ops), errc::storage_error, {"locked"});
  auto during = a->list();  // WAL: reading goes on beside a writer
  REQUIRE(during.has_value());
  CHECK(during->size() == 1);

  raw.exec("COMMIT");
  check_ok(a->add("bob", "h", 3));
  auto l = b->list();
  REQUIRE(l.has_value());
  CHECK(l->size() == 3);
  CHECK_FALSE(b->contains("carl").value());
}

TEST_CASE("store: an exclusive connection keeps the file to itself until it closes") {
  temp_dir dir;
  const auto file = dir / "registry.sqlite3";
  store::options mine;
  mine.exclusive = true;
  store::options other;
  other.busy_timeout = std::chrono::milliseconds(100);
  {
    auto a = registry_store::open(file, mine);
    REQUIRE(a.has_value());
    check_ok(a->add("amy", "h", 1));
    check_ok(a->add("bob", "h", 2));
    check_ok(a->remove("bob", "h", 2));
    const std::vector<registry_store::operation> ops = {registry_store::add_op{"carl", "h", 3},
                                                        registry_store::add_op{"amy", "h", 4}};
    auto r = a->apply(ops);
    REQUIRE(r.has_value());
    CHECK((*r)[0].has_value());
    CHECK_FALSE((*r)[1].has_value());
    // No other connection gets in, not even to read.
    auto b = registry_store::open(file, other);
    if (b.has_value()) {
      check_error(b->list(), errc::storage_error, {"locked", "another process is using the file"});
    } else {
      check_error(b, errc::storage_error, {"locked", "another process is using the file"});
    }
  }
  // Closed: the file is everyone's again, with everything committed.
  auto b = registry_store::open(file, other);
  REQUIRE(b.has_value());
  auto l = b->list();
  REQUIRE(l.has_value());
  REQUIRE(l->size() == 2);
  CHECK((*l)[0].name == "amy");
  CHECK((*l)[1].name == "carl");
}

// ---------------------------------------------------------------- kill -9

TEST_CASE("store: every acknowledged add survives kill -9") {
  temp_dir dir;
  const auto file = dir / "registry.sqlite3";
  std::size_t committed = 0;
  // The same file is crashed repeatedly, so each round also recovers the
  // previous round's WAL.
  for (std::size_t kill_after : {200u, 37u, 1u}) {
    CAPTURE(kill_after);
    const auto first = static_cast<std::uint32_t>(committed);
    auto acked = run_until_killed(
        [&](int fd) -> int {
          auto s = registry_store::open(file);
          if (!s) return 2;
          for (std::uint32_t i = first; i < first + 1'000'000; ++i) {
            if (!s->add("u" + std::to_string(i), "127.0.0.1",
                        static_cast<std::uint16_t>(i % 65536))) {
              return 3;
            }
            if (!write_all(fd, &i, sizeof i)) return 4;
          }
          return 0;
        },
        kill_after);
    REQUIRE(acked.size() >= kill_after);
    for (std::size_t j = 0; j < acked.size(); ++j) REQUIRE(acked[j] == first + j);

    auto s = registry_store::open(file);
    REQUIRE_MESSAGE(s.has_value(), (s ? std::string() : s.error().message()));
    auto l = s->list();
    REQUIRE(l.has_value());
    // Every acknowledged add is there; at most the one in flight besides.
    const std::size_t expected_min = first + acked.size();
    CHECK(l->size() >= expected_min);
    CHECK(l->size() <= expected_min + 1);
    for (std::size_t i = 0; i < l->size(); ++i) {
      REQUIRE((*l)[i].name == "u" + std::to_string(i));
      REQUIRE(static_cast<std::size_t>((*l)[i].port) == i % 65536);
    }
    committed = l->size();
  }
}

TEST_CASE("store: every acknowledged group commit survives kill -9, batches whole") {
  temp_dir dir;
  const auto file = dir / "buddy.sqlite3";
  constexpr std::uint32_t batch = 10;
  std::size_t committed = 0;
  for (std::size_t kill_after : {200u, 30u, 1u}) {
    CAPTURE(kill_after);
    const auto first = static_cast<std::uint32_t>(committed);
    auto acked = run_until_killed(
        [&](int fd) -> int {
          auto s = buddy_store::open(file);
          if (!s) return 2;
          for (std::uint32_t start = first; start < first + 1'000'000; start += batch) {
            std::vector<buddy_store::operation> ops;
            for (std::uint32_t i = start; i < start + batch; ++i) {
              ops.push_back(buddy_store::add_user_op{"u" + std::to_string(i)});
              // Each user lists u0 (added first of all), so batches write both tables.
              ops.push_back(buddy_store::add_buddy_op{"u" + std::to_string(i), "u0"});
            }
            auto replies = s->apply(ops);
            if (!replies) return 3;
            for (const auto& r : *replies) {
              if (!r) return 5;
            }
            std::uint32_t ids[batch];
            for (std::uint32_t i = 0; i < batch; ++i) ids[i] = start + i;
            // One write: a batch is acknowledged whole or not at all.
            if (!write_all(fd, ids, sizeof ids)) return 4;
          }
          return 0;
        },
        kill_after);
    REQUIRE(acked.size() >= kill_after);
    CHECK(acked.size() % batch == 0);
    for (std::size_t j = 0; j < acked.size(); ++j) REQUIRE(acked[j] == first + j);

    auto s = buddy_store::open(file);
    REQUIRE_MESSAGE(s.has_value(), (s ? std::string() : s.error().message()));
    auto users = s->users();
    REQUIRE(users.has_value());
    const std::size_t expected_min = first + acked.size();
    CHECK(users->size() >= expected_min);
    CHECK(users->size() <= expected_min + batch);
    CHECK(users->size() % batch == 0);
    for (std::size_t i = 0; i < users->size(); ++i) {
      REQUIRE((*users)[i] == "u" + std::to_string(i));
      auto list = s->buddies((*users)[i]);
      REQUIRE(list.has_value());
      REQUIRE(*list == std::vector<std::string>{"u0"});
    }
    committed = users->size();
  }
}

#pragma once

// Helpers for the store tests: self-cleaning temporary directories, error
// checks, and a raw SQLite connection for looking at the files from outside
// the stores (pragmas, planted triggers, corruption).

#include <doctest/doctest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "improto/error.hpp"

#ifdef IMPROTO_TEST_WITH_POSTGRESQL
#include <libpq-fe.h>

#include <atomic>
#include <cstdlib>
#endif

namespace improto::test {

class temp_dir {
 public:
  temp_dir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "improto-store-XXXXXX").string();
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = buf.data();
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// `r` failed with `code` and its message contains every one of `parts`.
template <class T>
void check_error(const result<T>& r, errc code,
                 std::initializer_list<std::string_view> parts = {}) {
  REQUIRE_FALSE(r.has_value());
  const std::string msg = r.error().message();
  CHECK_MESSAGE(r.error().code() == code, "expected ", name(code), ", got ", name(r.error().code()),
                ": ", msg);
  for (std::string_view part : parts) {
    CHECK_MESSAGE(msg.find(part) != std::string::npos, "\"", part, "\" not in: ", msg);
  }
}

inline void check_ok(const result<void>& r) {
  CHECK_MESSAGE(r.has_value(), (r ? std::string() : r.error().message()));
}

// A plain SQLite connection, independent of the stores.
class raw_db {
 public:
  explicit raw_db(const std::filesystem::path& file) {
    if (sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      std::string msg = sqlite3_errmsg(db_);
      sqlite3_close(db_);
      throw std::runtime_error("raw open: " + msg);
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~raw_db() { sqlite3_close(db_); }
  raw_db(const raw_db&) = delete;
  raw_db& operator=(const raw_db&) = delete;

  // The SQLite result code; the message is kept in last_error().
  int try_exec(const char* sql) {
    char* msg = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &msg);
    last_error_ = msg != nullptr ? msg : "";
    sqlite3_free(msg);
    return rc;
  }
  void exec(const char* sql) {
    if (try_exec(sql) != SQLITE_OK) throw std::runtime_error(std::string(sql) + ": " + last_error_);
  }
  // The first column of the first row, as text.
  std::string text(const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string(sql) + ": " + sqlite3_errmsg(db_));
    }
    std::string out;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
      const unsigned char* p = sqlite3_column_text(stmt, 0);
      if (p != nullptr) out = reinterpret_cast<const char*>(p);
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_ROW) throw std::runtime_error(std::string(sql) + ": no row");
    return out;
  }
  std::int64_t integer(const char* sql) { return std::stoll(text(sql)); }
  const std::string& last_error() const noexcept { return last_error_; }

 private:
  sqlite3* db_ = nullptr;
  std::string last_error_;
};

// ------------------------------------------------------------ back ends
// The store test-suite runs each back-end-agnostic case against every back
// end: TEST_CASE_TEMPLATE(name, B, IMPROTO_STORE_BACKENDS) { B where; ...
// open(where.registry()) }. Each fixture is a fresh, empty location.

struct sqlite_backend {
  static constexpr bool is_postgresql = false;
  temp_dir dir;
  std::string registry() const { return (dir / "registry.sqlite3").string(); }
  std::string buddy() const { return (dir / "buddy.sqlite3").string(); }
};

#ifdef IMPROTO_TEST_WITH_POSTGRESQL

// A plain libpq connection, independent of the stores: creates databases,
// plants failures, ends other sessions.
class raw_pg {
 public:
  explicit raw_pg(const std::string& url) : conn_(PQconnectdb(url.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string msg = PQerrorMessage(conn_);
      PQfinish(conn_);
      throw std::runtime_error("raw connect to " + url + ": " + msg);
    }
    PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
  }
  ~raw_pg() { PQfinish(conn_); }
  raw_pg(const raw_pg&) = delete;
  raw_pg& operator=(const raw_pg&) = delete;

  // The first column of the first row ("" for none); throws on an error.
  std::string exec(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    auto st = PQresultStatus(r);
    std::string out;
    if (st == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
    std::string msg = PQresultErrorMessage(r);
    PQclear(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      throw std::runtime_error(sql + ": " + msg);
    }
    return out;
  }

 private:
  PGconn* conn_;
};

// The throwaway server's URL; tests/support/postgres.py sets it (ctest runs
// this binary under it).
inline std::string postgres_server_url() {
  const char* url = std::getenv("IMPROTO_TEST_POSTGRESQL");
  if (url == nullptr || *url == '\0') {
    FAIL("IMPROTO_TEST_POSTGRESQL is not set: run this binary under "
         "tests/support/postgres.py (python3 tests/support/postgres.py -- <binary>), as ctest does");
  }
  return url;
}

// The URL of `database` on the test server.
inline std::string postgres_url_of(const std::string& database) {
  std::string url = postgres_server_url();
  auto slash = url.find('/', url.find("://") + 3);
  return url.substr(0, slash) + "/" + database;
}

struct postgres_backend {
  static constexpr bool is_postgresql = true;
  postgres_backend() {
    static std::atomic<int> counter{0};
    name = "improto_t" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
    raw_pg(postgres_server_url()).exec("CREATE DATABASE " + name);
    url = postgres_url_of(name);
  }
  ~postgres_backend() {
    try {
      raw_pg(postgres_server_url()).exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
    } catch (...) {
      // The server is thrown away after the run anyway.
    }
  }
  postgres_backend(const postgres_backend&) = delete;
  postgres_backend& operator=(const postgres_backend&) = delete;

  std::string name;
  std::string url;
  std::string registry() const { return url; }
  std::string buddy() const { return url; }
};

#define IMPROTO_STORE_BACKENDS improto::test::sqlite_backend, improto::test::postgres_backend
#else
#define IMPROTO_STORE_BACKENDS improto::test::sqlite_backend
#endif

}  // namespace improto::test

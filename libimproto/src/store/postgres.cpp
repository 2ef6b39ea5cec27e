#ifdef IMPROTO_HAVE_POSTGRESQL

#include "postgres.hpp"

#include <cstdlib>
#include <string>
#include <vector>

namespace improto::store::detail {
namespace {

std::string trimmed(const char* msg) {
  std::string s = msg != nullptr ? msg : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Serializes nodes creating or migrating a schema at the same time.
constexpr const char* schema_lock = "SELECT pg_advisory_xact_lock(1229800012)";

}  // namespace

bool pg_text_ok(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n;
    std::uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      n = 2;
      cp = c & 0x1fu;
    } else if ((c & 0xf0) == 0xe0) {
      n = 3;
      cp = c & 0x0fu;
    } else if ((c & 0xf8) == 0xf0) {
      n = 4;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3fu);
    }
    // Overlong forms, surrogates and code points past U+10FFFF.
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
      return false;
    }
    i += n;
  }
  return true;
}

std::int64_t pg_changed(const PGresult* r) noexcept {
  const char* n = PQcmdTuples(const_cast<PGresult*>(r));
  return n != nullptr && *n != '\0' ? std::strtoll(n, nullptr, 10) : 0;
}

std::string pg_text(const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col)) return {};
  return std::string(PQgetvalue(r, row, col), static_cast<std::size_t>(PQgetlength(r, row, col)));
}

pg_connection::pg_connection(std::string url, const options& opts)
    : url_(std::move(url)), where_(redact(url_)), opts_(opts) {}

pg_connection::~pg_connection() { drop(); }

bool pg_connection::connected() const noexcept {
  return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK;
}

void pg_connection::drop() noexcept {
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
}

result<void> pg_connection::ensure() {
  if (connected()) return {};
  drop();
  auto seconds = (opts_.connect_timeout.count() + 999) / 1000;
  std::string timeout = std::to_string(seconds < 2 ? 2 : seconds);  // libpq's minimum
  // Ours first: values in the URL override them. Keepalives notice a server
  // that vanished without closing the connection.
  const char* keys[] = {"connect_timeout", "application_name", "keepalives",
                        "keepalives_idle", "keepalives_interval", "keepalives_count",
                        "dbname", nullptr};
  const char* values[] = {timeout.c_str(), "improto", "1", "10", "5", "3", url_.c_str(), nullptr};
  conn_ = PQconnectdbParams(keys, values, 1);
  if (conn_ == nullptr) {
    return fail(errc::storage_error, where_ + ": cannot connect to PostgreSQL: out of memory");
  }
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string msg = trimmed(PQerrorMessage(conn_));
    drop();
    return fail(errc::storage_error, where_ + ": cannot connect to PostgreSQL: " + msg);
  }
  // NOTICEs ("relation already exists, skipping") are not errors.
  PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
  bool durable = opts_.synchronous == sync_level::full || opts_.synchronous == sync_level::extra;
  std::string setup = std::string("SET client_encoding TO 'UTF8'; SET synchronous_commit TO ") +
                      (durable ? "on" : "off") + "; SET lock_timeout TO " +
                      std::to_string(opts_.busy_timeout.count()) + ";";
  if (auto r = exec("cannot configure the session", setup.c_str()); !r) {
    drop();
    return tl::unexpected(r.error());
  }
  return {};
}

error pg_connection::failure(std::string_view what) const {
  std::string msg = conn_ != nullptr ? trimmed(PQerrorMessage(conn_)) : "not connected";
  if (conn_ != nullptr && PQstatus(conn_) != CONNECTION_OK) msg = "connection lost: " + msg;
  return error(errc::storage_error, where_ + ": " + std::string(what) + ": " + msg);
}

result<pg_result> pg_connection::exec(std::string_view what, const char* sql,
                                      std::initializer_list<std::string_view> params) {
  if (conn_ == nullptr) return tl::unexpected(failure(what));
  pg_result r;
  if (params.size() == 0) {
    r.reset(PQexec(conn_, sql));
  } else {
    // libpq wants NUL-terminated values.
    std::vector<std::string> copies(params.begin(), params.end());
    std::vector<const char*> values;
    values.reserve(copies.size());
    for (const auto& c : copies) values.push_back(c.c_str());
    r.reset(PQexecParams(conn_, sql, static_cast<int>(values.size()), nullptr, values.data(),
                         nullptr, nullptr, 0));
  }
  if (!r) return tl::unexpected(failure(what));
  auto st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    std::string msg = trimmed(PQresultErrorMessage(r.get()));
    if (PQstatus(conn_) != CONNECTION_OK) msg = "connection lost: " + msg;
    return fail(errc::storage_error, where_ + ": " + std::string(what) + ": " + msg);
  }
  return r;
}

result<pg_result> pg_connection::read(std::string_view what, const char* sql,
                                      std::initializer_list<std::string_view> params) {
  if (auto c = ensure(); !c) return tl::unexpected(c.error());
  auto r = exec(what, sql, params);
  if (r || connected()) return r;
  if (auto c = ensure(); !c) return tl::unexpected(c.error());
  return exec(what, sql, params);
}

void pg_connection::notice_closed() noexcept {
  if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK &&
      PQtransactionStatus(conn_) == PQTRANS_IDLE) {
    PQconsumeInput(conn_);
  }
}

result<std::vector<pg_result>> pg_connection::transaction(
    std::string_view what, const std::vector<statement>& statements) {
  // BEGIN on its own round trip proves the connection alive before anything
  // that changes data is sent (and replaces one the server closed while we
  // were idle); from here on a break is reported, never replayed.
  if (auto b = begin(); !b) return tl::unexpected(b.error());
  auto lost = [&](std::string_view doing) {
    error e = failure(std::string(what) + ": " + std::string(doing));
    drop();  // mid-pipeline: its state is unknown, start afresh next time
    return tl::unexpected(e);
  };
  if (PQenterPipelineMode(conn_) == 0) {
    rollback();
    return lost("cannot enter pipeline mode");
  }
  auto send = [&](const char* sql, const std::vector<std::string>& params) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p.c_str());
    return PQsendQueryParams(conn_, sql, static_cast<int>(values.size()), nullptr,
                             values.data(), nullptr, nullptr, 0) == 1;
  };
  bool sent = true;
  for (const auto& st : statements) sent = sent && send(st.sql, st.params);
  sent = sent && send("COMMIT", {}) && PQpipelineSync(conn_) == 1;
  if (!sent) return lost("cannot send");

  // Every command's result (then a NULL), then the sync.
  const std::size_t total = statements.size() + 1;
  std::vector<pg_result> results;
  results.reserve(total);
  std::string first_error;
  for (std::size_t i = 0; i < total; ++i) {
    pg_result r(PQgetResult(conn_));
    if (!r) return lost("no answer");
    auto st = PQresultStatus(r.get());
    if (st == PGRES_FATAL_ERROR) {
      if (first_error.empty()) first_error = trimmed(PQresultErrorMessage(r.get()));
      if (PQstatus(conn_) != CONNECTION_OK) return lost("connection lost");
    } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_PIPELINE_ABORTED) {
      return lost("unexpected answer");
    }
    pg_result end(PQgetResult(conn_));
    if (end) return lost("unexpected answer");
    results.push_back(std::move(r));
  }
  pg_result sync(PQgetResult(conn_));
  if (!sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) return lost("no sync");
  if (PQexitPipelineMode(conn_) == 0) return lost("cannot leave pipeline mode");
  bool committed = first_error.empty() &&
                   std::string_view(PQcmdStatus(results.back().get())) == "COMMIT";
  if (!committed) {
    rollback();
    return fail(errc::storage_error,
                where_ + ": " + std::string(what) + ": " +
                    (first_error.empty() ? "the transaction was rolled back" : first_error));
  }
  ++commits_;
  results.pop_back();
  return results;
}

result<void> pg_connection::begin() {
  notice_closed();
  if (auto c = ensure(); !c) return c;
  auto r = exec("cannot begin a transaction", "BEGIN");
  if (!r && !connected()) {
    if (auto c = ensure(); !c) return c;
    r = exec("cannot begin a transaction", "BEGIN");
  }
  if (!r) return tl::unexpected(r.error());
  return {};
}

result<void> pg_connection::commit() {
  auto r = exec("cannot commit", "COMMIT");
  if (!r) return tl::unexpected(r.error());
  // COMMIT of a failed transaction "succeeds" as ROLLBACK.
  if (std::string_view(PQcmdStatus(r->get())) != "COMMIT") {
    return fail(errc::storage_error, where_ + ": the transaction was rolled back");
  }
  return {};
}

void pg_connection::rollback() noexcept {
  if (connected() && PQtransactionStatus(conn_) != PQTRANS_IDLE) {
    pg_result r(PQexec(conn_, "ROLLBACK"));
  }
}

result<void> pg_connection::migrate(const pg_schema& s) {
  const int latest = static_cast<int>(s.migrations.size());
  const std::string kind(s.kind);
  int found = 0;
  auto done = write([&]() -> result<void> {
    if (auto r = exec("cannot lock the schema", schema_lock); !r) return tl::unexpected(r.error());
    if (auto r = exec("cannot create improto_schema",
                      "CREATE TABLE IF NOT EXISTS improto_schema ("
                      "  store text PRIMARY KEY,"
                      "  version integer NOT NULL)");
        !r) {
      return tl::unexpected(r.error());
    }
    auto v = exec("cannot read the schema version",
                  "SELECT version FROM improto_schema WHERE store = $1", {kind});
    if (!v) return tl::unexpected(v.error());
    if (PQntuples(v->get()) > 0) found = std::atoi(PQgetvalue(v->get(), 0, 0));
    if (found > latest) {
      return fail(errc::storage_error,
                  where_ + ": the " + kind + " schema is version " + std::to_string(found) +
                      ", newer than this program knows (" + std::to_string(latest) +
                      "); use a newer improto");
    }
    for (int i = found; i < latest; ++i) {
      auto m = exec("cannot migrate the " + kind + " schema to version " + std::to_string(i + 1),
                    s.migrations[static_cast<std::size_t>(i)]);
      if (!m) return tl::unexpected(m.error());
    }
    if (found == latest) return {};
    auto u = exec("cannot record the schema version",
                  "INSERT INTO improto_schema (store, version) VALUES ($1, $2)"
                  " ON CONFLICT (store) DO UPDATE SET version = EXCLUDED.version",
                  {kind, std::to_string(latest)});
    if (!u) return tl::unexpected(u.error());
    return {};
  });
  if (!done) return done;
  commits_ = 0;  // the migration is not a store write
  schema_version_ = latest;
  return {};
}

result<store_status> pg_connection::status() {
  auto r = read("cannot read synchronous_commit", "SHOW synchronous_commit");
  if (!r) return tl::unexpected(r.error());
  store_status st;
  st.backend = "postgresql";
  std::string sync = pg_text(r->get(), 0, 0);
  st.synchronous = sync == "off" ? sync_level::off : sync == "local" ? sync_level::normal
                                                                     : sync_level::full;
  st.foreign_keys = true;  // always enforced
  st.busy_timeout = opts_.busy_timeout;
  st.schema_version = schema_version_;
  st.commits = commits_;
  return st;
}

}  // namespace improto::store::detail

#endif  // IMPROTO_HAVE_POSTGRESQL

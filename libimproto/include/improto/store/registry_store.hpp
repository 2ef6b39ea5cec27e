#pragma once

// The registry server's durable list (Protocol 1): who is registered at which
// address, in registration order.
//
// Both stores (this one and buddy_store) follow one model, whatever the
// back end:
//  * Back ends: one SQLite file (open(path), the default) or a PostgreSQL
//    database (connect("postgresql://...")). Same operations, same answers,
//    same guarantees; the same test-suite runs against both.
//  * Durable: SQLite in WAL mode with synchronous=FULL by default;
//    PostgreSQL with synchronous_commit=on. When a write returns success the
//    change is committed and survives kill -9 and power loss. Answer the
//    client only after that.
//  * Errors are values: invalid_argument / name_taken / not_found describe the
//    request; storage_error (with the path or URL and the database's message)
//    means the data could not be read or written, and the operation did not
//    happen -- or, when a PostgreSQL connection broke during COMMIT, its
//    outcome is unknown; it was not acknowledged either way. Nothing throws.
//  * Threads: a store object is used by one thread at a time (it may move
//    between threads). Reads are non-const because they reuse the object's
//    prepared statements. Several processes may open the same file or
//    database; writers take turns, waiting up to options::busy_timeout.
//  * PostgreSQL connection loss: the failing call answers storage_error;
//    the next call reconnects (bounded by options::connect_timeout) and, if
//    the server is back, succeeds. A transaction is never replayed after the
//    connection broke during it (no acknowledged write is lost, none is
//    applied twice behind the caller's back).
//  * Group commit: apply() runs a batch of operations in one transaction with
//    one fsync. A server that drains a burst of requests passes them all,
//    then answers each request from its own result once apply() returns.
//    Each operation sees the effects of the ones before it; one that fails
//    (name_taken, ...) changes nothing and does not affect the others. If
//    apply() itself fails (storage_error), the whole batch is rolled back and
//    every request in it must be answered with an error.
//  * Move-only; a moved-from store answers storage_error ("store is closed").

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "improto/error.hpp"
#include "improto/store/options.hpp"

namespace improto::store {

struct registry_record {
  // Constructors rather than an aggregate: `{name, host, port}` stays valid
  // (and warning-free) now that origin follows.
  registry_record() = default;
  registry_record(std::string n, std::string h, std::uint16_t p, std::string o = {})
      : name(std::move(n)), host(std::move(h)), port(p), origin(std::move(o)) {}

  std::string name;
  std::string host;
  std::uint16_t port = 0;
  // The IP address of the connection that registered the entry ("127.0.0.2"),
  // not the address in its body; empty when unknown (entries stored before
  // schema version 2, or added without one).
  std::string origin;
  bool operator==(const registry_record&) const = default;
};

class registry_store {
 public:
  struct add_op {
    add_op() = default;
    add_op(std::string n, std::string h, std::uint16_t p, std::string o = {})
        : name(std::move(n)), host(std::move(h)), port(p), origin(std::move(o)) {}
    std::string name;
    std::string host;
    std::uint16_t port = 0;
    std::string origin;  // see registry_record::origin
  };
  struct remove_op {
    remove_op() = default;
    remove_op(std::string n, std::string h, std::uint16_t p,
              std::optional<std::string> f = std::nullopt)
        : name(std::move(n)), host(std::move(h)), port(p), from(std::move(f)) {}
    std::string name;
    std::string host;
    std::uint16_t port = 0;
    // Set: only an entry registered from this origin (or of unknown origin)
    // is removed. Unset: from anywhere.
    std::optional<std::string> from;
  };
  using operation = std::variant<add_op, remove_op>;

  // Opens or creates the store file, e.g. `<data dir>/registry.sqlite3`.
  // storage_error if the directory is missing, the path is a directory, the
  // file is read-only, not SQLite, corrupt, another kind of store, or from a
  // newer schema; invalid_argument for an empty path; invalid_config for
  // bad options.
  static result<registry_store> open(const std::filesystem::path& file, options opts = {});
  // Opens the store at `location`: a PostgreSQL URL (is_postgresql_url:
  // connects, creates or migrates the schema) or else a file as open().
  // invalid_config for a PostgreSQL URL in a build without libpq;
  // storage_error if the server cannot be reached, refuses us, or holds a
  // newer schema.
  static result<registry_store> connect(std::string_view location, options opts = {});

  registry_store(registry_store&&) noexcept;
  registry_store& operator=(registry_store&&) noexcept;
  ~registry_store();

  // Registers `name` at host:port, remembering `origin` (see
  // registry_record::origin). invalid_argument if !valid_name(name) or
  // !valid_host(host); name_taken if `name` is registered (at any address).
  result<void> add(std::string_view name, std::string_view host, std::uint16_t port,
                   std::string_view origin = {});
  // Removes the exact entry name@host:port; not_found if there is none (also
  // when `name` is registered at another address: that entry stays). With
  // `from`, rejected (nothing removed) if the entry was registered from
  // another origin; an entry of unknown origin may be removed from anywhere.
  result<void> remove(std::string_view name, std::string_view host, std::uint16_t port,
                      std::optional<std::string_view> from = std::nullopt);
  // Every entry, oldest registration first.
  result<std::vector<registry_record>> list();
  result<bool> contains(std::string_view name);

  // One transaction for the whole batch; see the file comment. The result
  // vector has one entry per operation, in order.
  result<std::vector<result<void>>> apply(std::span<const operation> ops);

  result<store_status> status();
  // The file; empty for a PostgreSQL store.
  const std::filesystem::path& path() const noexcept;
  // The file or the URL (password redacted), for logs.
  std::string location() const;
  // true when other processes may change the data too (a PostgreSQL store
  // shared by several nodes): a copy kept in memory can go stale.
  bool shared() const noexcept;
  bool is_open() const noexcept { return impl_ != nullptr; }

  // The rules add() enforces: only what keeps a stored "name@host:port,"
  // list parseable. A name is non-empty without ':', '@', ',', white space or
  // control characters (ASCII); a host is non-empty without ',', '@', white
  // space or control characters. Names compare byte for byte. The protocol's
  // own rules (improto::registry::check_user / check_host: lengths,
  // address syntax) are stricter and are the server's to apply first.
  static bool valid_name(std::string_view name) noexcept;
  static bool valid_host(std::string_view host) noexcept;

  // The back end's interface (libimproto/src/store/backends.hpp).
  struct impl;

 private:
  explicit registry_store(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> impl_;
};

}  // namespace improto::store

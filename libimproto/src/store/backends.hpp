#pragma once

// The one store interface, per store kind: registry_store and buddy_store are
// handles on one of these, implemented by SQLite (registry_store.cpp,
// buddy_store.cpp) and PostgreSQL (postgres_stores.cpp). The handles check
// for a closed store; the back ends validate and answer as documented in
// registry_store.hpp / buddy_store.hpp.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "improto/error.hpp"
#include "improto/store/buddy_store.hpp"
#include "improto/store/registry_store.hpp"

namespace improto::store {

struct registry_store::impl {
  virtual ~impl() = default;
  virtual result<void> add(std::string_view name, std::string_view host, std::uint16_t port,
                           std::string_view origin) = 0;
  virtual result<void> remove(std::string_view name, std::string_view host, std::uint16_t port,
                              std::optional<std::string_view> from) = 0;
  virtual result<std::vector<registry_record>> list() = 0;
  virtual result<bool> contains(std::string_view name) = 0;
  virtual result<std::vector<result<void>>> apply(std::span<const operation> ops) = 0;
  virtual result<store_status> status() = 0;
  virtual const std::filesystem::path& path() const noexcept = 0;
  virtual std::string location() const = 0;
  virtual bool shared() const noexcept = 0;
};

struct buddy_store::impl {
  virtual ~impl() = default;
  virtual result<void> add_user(std::string_view userid) = 0;
  virtual result<bool> has_user(std::string_view userid) = 0;
  virtual result<void> add_buddy(std::string_view user, std::string_view buddy) = 0;
  virtual result<void> remove_buddy(std::string_view user, std::string_view buddy) = 0;
  virtual result<std::vector<std::string>> buddies(std::string_view user) = 0;
  virtual result<std::vector<std::string>> users() = 0;
  virtual result<std::vector<result<void>>> apply(std::span<const operation> ops) = 0;
  virtual result<store_status> status() = 0;
  virtual const std::filesystem::path& path() const noexcept = 0;
  virtual std::string location() const = 0;
  virtual bool shared() const noexcept = 0;
};

namespace detail {

// The answer to one operation, or (outer error) a storage failure that
// aborts the whole transaction.
using outcome = result<result<void>>;

// An operation's own refusal (name_taken, not_found ...), not a failure.
inline result<void> answer(errc code, std::string detail) { return fail(code, std::move(detail)); }

// "name@host:port", for messages.
inline std::string address(std::string_view name, std::string_view host, std::uint16_t port) {
  return std::string(name) + '@' + std::string(host) + ':' + std::to_string(port);
}

// A store handle moved from or never opened.
inline tl::unexpected<error> closed() { return fail(errc::storage_error, "store is closed"); }

// postgres_stores.cpp; invalid_config in a build without libpq.
result<std::unique_ptr<registry_store::impl>> open_postgresql_registry(std::string_view url,
                                                                       const options& opts);
result<std::unique_ptr<buddy_store::impl>> open_postgresql_buddy(std::string_view url,
                                                                 const options& opts);

}  // namespace detail
}  // namespace improto::store

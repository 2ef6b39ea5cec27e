#pragma once

// Keeps a buddy server's copy of a shared (PostgreSQL) buddy store current
// while other nodes write to it. A thread with its own connection LISTENs on
// `improto_buddy` (buddy_store announces each committed change there), reads
// the changed user's list back and hands it over; after connecting (and
// after every reconnect, since notifications sent while disconnected are
// lost) it hands over a snapshot of everything. Each event is read from the
// database after the change it reports, and events are handed over in the
// order they were read, so the last one for a user is that user's state.
//
// Bound: a change committed on one node reaches the others' copies within
// one notification and one query (milliseconds on a LAN); while PostgreSQL
// is unreachable the copies keep their last state and the feed retries
// every `retry` until it reconnects.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "improto/error.hpp"
#include "improto/store/options.hpp"

namespace improto::store {

class buddy_feed {
 public:
  // `userid` is registered and this is its list, first added first.
  // `refreshes_seen`: how many refresh() calls had been taken up when this
  // was read. A state read before refresh() number n may predate the commit
  // that asked for n: a node that applied its own commit to its copy skips
  // states with refreshes_seen < n for that user until n's arrives.
  struct user_state {
    std::string userid;
    std::vector<std::string> buddies;
    std::uint64_t refreshes_seen = 0;
  };
  // Every user and list, after (re)connecting: users first registered first.
  struct snapshot {
    std::vector<user_state> users;
  };
  using event = std::variant<user_state, snapshot>;

  struct callbacks {
    // Called on the feed's thread: copy what you need and post it to yours.
    std::function<void(event)> on_event;
    // One line per connection change ("lost ...", "reconnected"); may be empty.
    std::function<void(std::string)> log;
  };

  // Connects and starts the thread; the first event is a snapshot.
  // invalid_config for a location that is not a PostgreSQL URL or in a
  // build without libpq; storage_error if the first connection fails.
  static result<std::unique_ptr<buddy_feed>> start(std::string_view url, callbacks cb,
                                                   options opts = {},
                                                   std::chrono::milliseconds retry =
                                                       std::chrono::milliseconds(500));
  // Stops and joins the thread; no callback runs after it returns.
  ~buddy_feed();
  buddy_feed(const buddy_feed&) = delete;
  buddy_feed& operator=(const buddy_feed&) = delete;

  // Reads `userid` again and hands it over as a user_state: a node asks this
  // after applying its own commit to its copy, so that the database, read
  // after that, has the last word. Returns this call's number (1, 2, ...),
  // see user_state::refreshes_seen.
  std::uint64_t refresh(std::string userid);

  struct impl;

 private:
  explicit buddy_feed(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace improto::store

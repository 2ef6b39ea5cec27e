#pragma once

// The relay server's routing seam. A relay_server without a cluster routes
// among its own sessions only (single-node mode); given one, names are
// claimed cluster-wide and messages for users it does not hold go through
// the cluster. cluster::relay_node (improto/cluster/relay_node.hpp, built
// with libnats) implements it on NATS; the server layer depends on this
// header only.
//
// Threading: every call in both directions happens on the io_context's
// thread, and every callback runs exactly once, later, on that thread
// (never inside the call that was given it).

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "improto/net/common.hpp"

namespace improto::server {

// What the cluster asks of the server it routes for.
class relay_local {
 public:
  virtual ~relay_local() = default;
  // FORWARDs `body` from `from` to the local user `to`; `done(true)` once it
  // answered RECEIVED, `done(false)` on an error, a timeout (at `deadline`)
  // or when `to` is not a complete local user.
  virtual void deliver(const std::string& from, const std::string& to, std::string body,
                       net::clock::time_point deadline, std::function<void(bool)> done) = 0;
  // FORWARDs to every complete local user; done(count, failures).
  virtual void deliver_all(const std::string& from, std::string body,
                           net::clock::time_point deadline,
                           std::function<void(std::size_t, std::size_t)> done) = 0;
  // Complete local users after `after` in name order, at most `max_bytes`
  // of names plus one separator each; `more` when some were left out.
  virtual std::vector<std::string> local_users(const std::string& after, std::size_t max_bytes,
                                               bool& more) const = 0;
  // A JOINED (joined) or LEFT notice about a user of another node.
  virtual void presence(const std::string& user, bool joined) = 0;
  // Cut off from the cluster (its names may be given to others): drop every
  // registered session.
  virtual void fence(const std::string& reason) = 0;
};

// What the server asks of the cluster.
class relay_cluster {
 public:
  enum class claim_result {
    claimed,      // this node holds the name cluster-wide
    taken,        // another holds it: ERROR 104
    unavailable,  // the cluster cannot say now (fenced, no quorum): ERROR 109
    released,     // release() came first; nothing to answer
  };
  struct user_page {
    std::vector<std::string> users;
    bool more = false;
  };

  virtual ~relay_cluster() = default;
  virtual void start(relay_local& local) = 0;
  virtual void stop() = 0;

  virtual void claim(const std::string& user, std::function<void(claim_result)> done) = 0;
  // The user is registered on both sockets here: route to it, announce it.
  virtual void joined(const std::string& user) = 0;
  // Gives the name back (claimed or still claiming); `was_joined`: announce LEFT.
  virtual void release(const std::string& user, bool was_joined) = 0;

  // SEND to a user this node does not hold: done(true) for SENT, else ERROR 102.
  virtual void send(const std::string& from, const std::string& to, std::string body,
                    std::function<void(bool)> done) = 0;
  // The other nodes' part of SEND ALL: true when every live node answered
  // in time with no failure.
  virtual void send_all(const std::string& from, std::string body,
                        std::function<void(bool)> done) = 0;
  // LIST USERS over every live node, `local` (this node's page) merged in.
  virtual void list_users(const std::string& after, std::size_t max_bytes, user_page local,
                          std::function<void(user_page)> done) = 0;
};

}  // namespace improto::server

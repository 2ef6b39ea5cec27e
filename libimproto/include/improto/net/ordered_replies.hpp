#pragma once

// Replies to pipelined requests, sent in request order whatever order they
// are completed in. A request answered at once is sent at once (no copy)
// when nothing is owed before it; one answered later (a store commit, a
// relay's receivers) reserves its place and fills it when done. A streamed
// answer (a large body) goes out piece by piece as the peer reads it, within
// the connection's queue bound.
//
// What a full queue means is the server's choice (overflow): `close` - the
// peer does not read its replies, nothing else bounds what we would hold, so
// the connection is closed; `wait` - hold the replies and send them as the
// peer reads.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "improto/net/common.hpp"
#include "improto/net/tcp.hpp"

namespace improto::net {

class ordered_replies {
 public:
  enum class overflow { close, wait };

  // A streamed body: `size` bytes of `*bytes` sent after its head. `bytes`
  // is shared, not copied, and must not change within its first `size` bytes.
  struct stream_body {
    std::shared_ptr<const std::string> bytes;
    std::size_t size = 0;
  };
  // Runs when a streamed answer reaches the front (so it sees what the
  // replies before it did): appends the head to `head`, returns the body.
  using stream_start = std::function<stream_body(std::string& head)>;

  // What every connection of a server shares.
  struct settings {
    asio::any_io_executor executor;
    std::size_t max_queued_bytes = 0;
    overflow policy = overflow::close;
    logger log;
  };

  ordered_replies(const asio::any_io_executor& executor, std::shared_ptr<tcp_connection> conn,
                  std::size_t max_queued_bytes, overflow policy, logger log = {});
  ordered_replies(std::shared_ptr<const settings> shared, std::shared_ptr<tcp_connection> conn);
  ordered_replies(const ordered_replies&) = delete;
  ordered_replies& operator=(const ordered_replies&) = delete;
  ~ordered_replies();

  using slot = std::uint64_t;
  // Reserves the next reply's place.
  slot reserve();
  // Completes a reserved reply; it and the completed ones behind it leave
  // once everything before them has. A slot dropped meanwhile (the
  // connection closed) is ignored.
  void fill(slot s, std::string bytes);
  // A reply complete now: reserve() + fill(), without a copy when it can go
  // out at once.
  void push(std::string_view bytes);
  // A streamed reply, started when it reaches the front.
  void push_stream(stream_start start);

  // Replies reserved or held, not yet all queued on the connection.
  std::size_t owed() const noexcept;
  // The front reply waits for the peer to read (overflow::wait).
  bool blocked() const noexcept;
  // Returns when replies have left (or the connection closed), or on wake().
  asio::awaitable<void> wait();
  // Wakes wait() for a reason of the caller's (e.g. the server stopping).
  void wake();
  // Frees the bookkeeping while nothing is owed and nobody waits (an idle
  // connection holds none); it is made again on the next reply.
  void release_if_idle();

 private:
  struct state;
  state& st();
  std::shared_ptr<const settings> settings_;
  std::shared_ptr<tcp_connection> conn_;
  std::shared_ptr<state> state_;  // shared with the coroutine resuming a blocked stream
};

}  // namespace improto::net

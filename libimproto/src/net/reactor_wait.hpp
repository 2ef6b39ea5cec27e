#pragma once

// Reading a descriptor inside Asio's reactor without re-arming it.
//
// Asio 1.22's async_wait queues its operation with allow_speculative=false,
// and the epoll reactor answers that with an EPOLL_CTL_MOD on every wait.
// Reads (async_receive and friends) are queued speculatively instead: the
// operation is performed at once, and when it would block it is queued with
// no epoll_ctl at all, since the descriptor is registered edge-triggered for
// EPOLLIN from the start. async_perform_read() queues an operation of our own
// the same way, whose perform step is a caller's function (e.g. a whole
// recvmmsg batch), so readiness and reading are one step.
//
// The perform function returns:
//   would_block  nothing to read now: wait for the next readiness edge
//   done         complete; the descriptor may have more (the next call
//                performs at once, and completes through the scheduler's
//                queue, so other handlers run in between)
//   drained      complete, and the descriptor is known to be empty (a short
//                batch): the next call queues without trying, unless a
//                readiness edge came in between (the reactor tracks that)
// It runs on the reactor's thread under the descriptor's lock, possibly
// from inside async_perform_read() itself, and may set `ec`.
//
// Only for the epoll reactor (Linux); the descriptor must be non-blocking.

#include <memory>
#include <system_error>
#include <utility>

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/detail/reactor.hpp>
#include <asio/detail/reactor_op.hpp>
#include <asio/dispatch.hpp>
#include <asio/io_context.hpp>

namespace improto::net::detail {

enum class perform_status { would_block, done, drained };

// The reactor's per-descriptor state of an Asio socket or descriptor object.
// `impl_` is protected in Asio's I/O objects; a pointer to it, named through
// a derived class, is the legal way to reach it from outside.
template <class IoObject>
asio::detail::reactor::per_descriptor_data& reactor_data(IoObject& object) {
  struct access : IoObject {
    static auto member() { return &access::impl_; }
  };
  return (object.*access::member()).get_implementation().reactor_data_;
}

template <class Perform, class Handler>
class perform_read_op : public asio::detail::reactor_op {
 public:
  perform_read_op(Perform& perform, Handler&& handler)
      : reactor_op(std::error_code(), &do_perform, &do_complete),
        perform_(perform),
        handler_(std::move(handler)) {}

 private:
  static status do_perform(reactor_op* base) {
    auto* self = static_cast<perform_read_op*>(base);
    switch (self->perform_(self->ec_)) {
      case perform_status::would_block:
        return not_done;
      case perform_status::done:
        return done;
      case perform_status::drained:
        break;
    }
    return done_and_exhausted;
  }

  // owner == nullptr: the io_context is being destroyed; only free.
  static void do_complete(void* owner, asio::detail::scheduler_operation* base,
                          const std::error_code& /*scheduler's*/, std::size_t) {
    std::unique_ptr<perform_read_op> self(static_cast<perform_read_op*>(base));
    Handler handler(std::move(self->handler_));
    const std::error_code ec = self->ec_;
    self.reset();  // freed before the handler runs, which may start the next
    if (owner == nullptr) return;
    auto executor = asio::get_associated_executor(handler);
    asio::dispatch(executor, [h = std::move(handler), ec]() mutable { std::move(h)(ec); });
  }

  Perform& perform_;
  Handler handler_;
};

// Completes with the error_code the perform function set (or
// operation_aborted when the object is closed). `perform` must live until
// the completion.
template <class IoObject, class Perform, class Token>
auto async_perform_read(IoObject& object, Perform& perform, Token&& token) {
  return asio::async_initiate<Token, void(std::error_code)>(
      [&object, &perform](auto handler) {
        using handler_type = decltype(handler);
        auto& reactor = asio::use_service<asio::detail::reactor>(
            asio::query(object.get_executor(), asio::execution::context));
        auto* op = new perform_read_op<Perform, handler_type>(perform, std::move(handler));
        reactor.start_op(asio::detail::reactor::read_op, object.native_handle(),
                         reactor_data(object), op, /*is_continuation=*/false,
                         /*allow_speculative=*/true);
      },
      token);
}

}  // namespace improto::net::detail

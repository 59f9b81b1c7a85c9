// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// An asynchronous stream connect (TCP or Unix) with a timeout.
///
/// The handler runs exactly once, from the loop (never inside connect() or cancel()): with
/// a connected non-blocking socket and no error, or with an error and an empty socket —
/// ECONNREFUSED, ETIMEDOUT (the timeout passed), ECANCELED (cancel() was called), EAGAIN
/// (a Unix listener's backlog is full), or
/// whatever socket() or connect() said. The socket it was trying is closed by then.
/// Thread rule: the loop's (reactor/core/reactor.hpp), checked by the debug checks on every
/// member. A Connector must not be used after its Reactor is destroyed (dropping the handle
/// then is safe). Cancelling a settled connect is not a misuse: it does nothing.

#include <chrono>
#include <functional>
#include <memory>
#include <system_error>

#include "reactor/core/reactor.hpp"
#include "reactor/export.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/socket.hpp"

namespace reactor {

/// One outgoing connect on a loop, settled exactly once through its Handler. Made by
/// connect() and held by std::shared_ptr; the file comment is its contract.
class REACTOR_API Connector : public std::enable_shared_from_this<Connector> {
 public:
  /// Called once with the outcome: no error and the connected socket, or an error and an
  /// empty socket.
  using Handler = std::function<void(std::error_code, Socket)>;

  /// Starts connecting to `address`, giving up after `timeout` (0: only the kernel's own).
  /// The returned handle may be dropped: the connect goes on and the handler still runs.
  static std::shared_ptr<Connector> connect(Reactor& loop, const Address& address, Handler handler,
                                            std::chrono::nanoseconds timeout = {});
  /// Gives up: the handler runs with ECANCELED, unless it has already run. Idempotent.
  void cancel();
  /// True until the outcome is settled (the handler has run or is about to).
  bool pending() const noexcept {
    REACTOR_CHECK_LOOP_THREAD(loop_, "Connector::pending()");
    return !settled_;
  }

 private:
  struct Key {};

 public:
  /// For std::make_shared inside connect() only: `Key` is private, so use connect().
  Connector(Key, Reactor& loop, Handler handler);

 private:
  void start(const Address& address, std::chrono::nanoseconds timeout);
  void settle(std::error_code ec);
  void finish(std::error_code ec);
  void finish_later(std::error_code ec);
  void report(std::error_code ec);

  Reactor& loop_;
  Handler handler_;
  Socket socket_;
  IoWatcher watcher_;
  Timer timer_;
  bool settled_ = false;
};

}  // namespace reactor

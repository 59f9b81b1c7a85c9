// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// A listening stream socket (TCP or Unix) that accepts in batches on a Reactor.
///
/// - accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC: accepted sockets are ready for a Connection.
/// - Up to Options::accepts_per_event accepts per readiness, so a connection storm cannot
///   starve established connections.
/// - pause() takes the fd out of the kernel set at once, even inside the accept handler (the
///   rest of the batch stays in the backlog); resume() puts it back. A connection limit is
///   built on these: pause at the limit, resume when a connection ends (StreamServer does,
///   with max_connections across all its loops, threads and children).
/// - fd exhaustion (EMFILE, ENFILE) and kernel memory shortage (ENOBUFS, ENOMEM): accepting
///   pauses for a back-off (Options::error_backoff, doubling up to Options::max_error_backoff
///   while it persists) instead of spinning: one timer between two attempts. Pending clients
///   wait in the kernel's backlog and are accepted once fds free up; none is dropped by us.
///   With the defaults the first of them is accepted within 50 ms of the shortage's end.
///   Sooner still when the library closes a socket on the listener's thread (a Connection,
///   a Socket): the listener then retries in the next iteration.
///   Reports (reactor/core/log.hpp): a warning when a shortage begins (the address and the
///   error), debug at each retry, info when accepting again (how long, how many retries).
/// - Transient per-connection errors (ECONNABORTED, EPROTO, EPERM, ...) skip that one client.
/// - The accept handler may destroy the Listener; nothing is accepted or delivered after that.
/// - Thread rule: the loop's (reactor/core/reactor.hpp), checked by the debug checks on every
///   member but address() and fd(), which any thread may call (fixed by the constructor). A
///   Listener must not be used after its Reactor is destroyed (destroying it then is safe).

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <system_error>

#include "reactor/core/reactor.hpp"
#include "reactor/export.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/socket.hpp"

namespace reactor {

namespace detail {
struct ListenerState;
}

/// A listening socket on a loop that hands each accepted client to an AcceptHandler. Owns
/// its fd; not copyable or movable. The file comment is its contract.
class REACTOR_API Listener {
 public:
  /// Socket options and accept pacing, fixed at construction.
  struct Options {
    int backlog = SOMAXCONN;  ///< the kernel caps it at net.core.somaxconn
    /// SO_REUSEADDR before bind: a restarted server can bind a port still in TIME_WAIT.
    bool reuse_address = true;
    /// SO_REUSEPORT before bind: several listeners (one per loop, say) share the port.
    bool reuse_port = false;
    /// Clients accepted per readiness at most, before other fds get their turn.
    unsigned accepts_per_event = 64;
    /// The first pause after fd exhaustion or memory shortage (see the file comment).
    std::chrono::milliseconds error_backoff{10};
    /// The longest pause: each retry doubles the last, up to this (at least 1 ms).
    std::chrono::milliseconds max_error_backoff{50};
  };

  /// Called on the loop thread with each accepted socket (non-blocking, close-on-exec, now
  /// the handler's) and the client's address.
  using AcceptHandler = std::function<void(Socket socket, const Address& peer)>;

  /// Binds, listens and starts accepting. Throws std::system_error (EADDRINUSE, EACCES,
  /// EINVAL for an empty address, ...) and then holds no fd.
  Listener(Reactor& loop, const Address& address, AcceptHandler handler, Options options);
  /// As above, with the default Options.
  Listener(Reactor& loop, const Address& address, AcceptHandler handler)
      : Listener(loop, address, std::move(handler), Options{}) {}
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  /// Stops accepting and closes the listening socket (a Unix path stays on disk; remove it
  /// yourself if you want).
  ~Listener();

  /// The bound address, with the real port when port 0 was asked for.
  const Address& address() const noexcept;
  /// The listening fd, for socket options; accepting from it yourself steals clients.
  int fd() const noexcept;

  /// Stops and restarts accepting. pause() inside the accept handler accepts nothing more.
  ///@{
  void pause();
  void resume();
  ///@}

  /// True while the listening fd is in the loop's set.
  bool accepting() const noexcept;
  /// Times accepting paused for fd exhaustion or memory shortage.
  std::uint64_t backoffs() const noexcept;

 private:
  std::shared_ptr<detail::ListenerState> state_;
};

}  // namespace reactor

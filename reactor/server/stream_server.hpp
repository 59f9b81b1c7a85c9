// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// A stream server (TCP over IPv4/IPv6, or Unix stream): Python's TCPServer and
/// UnixStreamServer with the ThreadingMixIn and ForkingMixIn chosen by a value.
///
///   StreamServer server(Address::parse("127.0.0.1:0"), my_factory, {.model = Model::pool});
///   std::thread t([&] { server.serve_forever(); });
///   ...
///   server.shutdown();       // any thread, or inside a handler
///   server.server_close();   // joins, reaps, closes
///
/// Contract:
/// - The constructor binds and listens (Python's bind_and_activate). It throws
///   std::system_error (EADDRINUSE, EACCES, EINVAL, EMFILE, ...) and then holds no fd, or
///   std::invalid_argument when the service lacks the handler kind the model needs
///   (blocking models need StreamService::blocking, reactor and pool StreamService::events)
///   or the backend name is unknown.
/// - serve_forever() serves until shutdown(); the calling thread is the serving thread (it
///   runs loop 0). shutdown() takes effect at once: it wakes the loops (no polling
///   interval), stops accepting, and cancels the read waits of blocking handlers
///   (errc::operation_canceled), here and in forked children. Then it drains, every model:
///   idle connections close gracefully (queued output flushed, then FIN, never a reset);
///   a request in progress gets up to ServerOptions::shutdown_drain to finish (see there),
///   and what is still open at that deadline is cut. It is final: serve_forever() and
///   handle_request() after it return at once. From another thread it returns when
///   serve_forever has returned (after the drain); from inside a handler, or when nothing
///   serves, at once. Twice is harmless.
/// - Forking: the children ignore ServerOptions::shutdown_signals (a Ctrl-C at a terminal
///   reaches the whole process group): the parent drives their shutdown.
/// - ServerOptions::connection.deadline applies to every model (blocking models: the
///   handler's stream fails its next wait past it with errc::timed_out).
/// - server_close() shuts down, joins every handler thread, waits for every child, closes
///   every connection (event handlers get on_close), closes the listening sockets and
///   removes a Unix socket file it created. The destructor calls it.
/// - Models: sync handles each connection to its end on the serving thread; threading runs
///   each in a thread of its own (at most max_threads; finished threads are joined at once,
///   none is kept); forking runs each in a child process (at most max_children; the parent
///   closes its copy of the socket and reaps children on SIGCHLD; the child closes the
///   listener, restores the signal dispositions and exits after finish()); reactor runs
///   event handlers on loop 0; pool runs them on `threads` loops.
/// - A forked child inherits every fd of the parent but the listener and other waiting
///   clients. A client socket of the same process (a test's) copied into a child keeps its
///   connection from reaching end of stream until that child exits: run clients of a forking
///   server in another process, or use a protocol that does not wait for end of stream.
/// - Limits pause accepting instead of refusing: clients wait in the backlog, nothing spins.
///   Running out of threads or processes (EAGAIN) backs off and retries the same client.
/// - A handler that throws: handle_error once, that connection is closed, serving goes on.
///   An idle timeout or a shutdown cancellation is not an error (counted in stats).
/// - Thread rule: shutdown() and stats() from any thread; the rest from the thread that
///   owns the server, never while another thread is inside serve_forever (except those two).

#include <memory>

#include "reactor/core/reactor.hpp"
#include "reactor/export.hpp"
#include "reactor/net/address.hpp"
#include "reactor/server/handlers.hpp"
#include "reactor/server/options.hpp"

namespace reactor {

namespace detail {
class StreamServerImpl;
}

/// A listening stream server that runs a StreamService's handlers under one concurrency
/// Model. Not copyable or movable; the file comment is its contract.
class REACTOR_API StreamServer {
 public:
  /// Binds and listens on `address` now; serves nothing until serve_forever() or
  /// handle_request(). Throws as the contract above says.
  StreamServer(const Address& address, StreamService service, ServerOptions options = {});
  ~StreamServer();
  StreamServer(const StreamServer&) = delete;
  StreamServer& operator=(const StreamServer&) = delete;

  /// Serves until shutdown(). Throws std::logic_error if already serving or closed, and
  /// std::system_error if the pool's extra listeners cannot be made.
  void serve_forever();
  /// Waits up to options().timeout (zero: forever) for one connection and serves it: sync
  /// and reactor/pool to its end (on loop 0), threading and forking until its thread or
  /// child has started. Returns false after calling handle_timeout when none came, or when
  /// shut down.
  bool handle_request();
  /// See the contract above. Thread rule: any thread, any handler.
  void shutdown() noexcept;
  /// Shuts down, then releases everything: see the contract above. Idempotent; the
  /// destructor calls it.
  void server_close() noexcept;

  /// The bound address (the real port when 0 was asked for). Python's server_address.
  const Address& address() const noexcept;
  /// The listening fd, -1 once closed. Python's fileno().
  int fileno() const noexcept;
  /// Loop 0, the serving thread's: add timers or signal watchers to it before
  /// serve_forever(). Loop thread only.
  Reactor& loop() noexcept;
  /// The options given to the constructor, as the server uses them.
  const ServerOptions& options() const noexcept;
  /// Thread rule: any thread.
  ServerStats stats() const noexcept;

 private:
  std::unique_ptr<detail::StreamServerImpl> impl_;
};

}  // namespace reactor

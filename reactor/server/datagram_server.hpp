// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// A datagram server (UDP over IPv4/IPv6, or Unix datagram): Python's UDPServer and
/// UnixDatagramServer, with every model.
///
/// - One handler call per datagram, with the sender's address; the reply (if any) goes back
///   as one datagram from the server's socket. A datagram longer than max_datagram arrives
///   cut and flagged truncated, never overflowing.
/// - Models: sync and reactor handle on loop 0; threading starts a thread per datagram (at
///   most max_threads; receiving pauses at the bound); forking a child per datagram (at most
///   max_children); pool handles on `threads` loops (UDP: SO_REUSEPORT sockets, the kernel
///   spreads clients; Unix: every loop reads the one socket).
/// - A reply that cannot be sent (EAGAIN: the client's queue is full, EMSGSIZE) is an
///   error: handle_error gets a std::system_error and stats().errors counts it.
/// - serve_forever, handle_request, shutdown, server_close and the thread rule: as
///   StreamServer. A Unix socket file created by the server is removed by server_close.

#include <memory>

#include "reactor/core/reactor.hpp"
#include "reactor/export.hpp"
#include "reactor/net/address.hpp"
#include "reactor/server/handlers.hpp"
#include "reactor/server/options.hpp"

namespace reactor {

namespace detail {
class DatagramServerImpl;
}

/// A bound datagram server that runs a DatagramHandler under one concurrency Model. Not
/// copyable or movable; the file comment is its contract.
class REACTOR_API DatagramServer {
 public:
  /// Binds now. Throws std::system_error (EADDRINUSE, EINVAL, ...) holding no fd after,
  /// or std::invalid_argument for an empty handler or an unknown backend.
  DatagramServer(const Address& address, DatagramHandler handler, ServerOptions options = {});
  ~DatagramServer();
  DatagramServer(const DatagramServer&) = delete;
  DatagramServer& operator=(const DatagramServer&) = delete;

  /// Serves until shutdown(), as StreamServer::serve_forever().
  void serve_forever();
  /// Waits up to options().timeout for one datagram and handles it (threading/forking:
  /// starts its thread or child). False after handle_timeout, or when shut down.
  bool handle_request();
  /// Stops serving at once, as StreamServer::shutdown(). Thread rule: any thread, any handler.
  void shutdown() noexcept;
  /// Shuts down and releases everything, as StreamServer::server_close(), and removes a Unix
  /// socket file the server created. Idempotent; the destructor calls it.
  void server_close() noexcept;

  /// The bound address (the real port when 0 was asked for). Python's server_address.
  const Address& address() const noexcept;
  /// The server's socket fd (loop 0's, for pool), -1 once closed. Python's fileno().
  int fileno() const noexcept;
  /// Loop 0, the serving thread's: add timers or signal watchers to it before
  /// serve_forever(). Loop thread only.
  Reactor& loop() noexcept;
  /// The options given to the constructor, as the server uses them.
  const ServerOptions& options() const noexcept;
  /// Counts so far (datagrams handled, errors, ...). Thread rule: any thread.
  ServerStats stats() const noexcept;

 private:
  std::unique_ptr<detail::DatagramServerImpl> impl_;
};

}  // namespace reactor

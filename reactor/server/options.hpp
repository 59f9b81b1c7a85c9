// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// How a server serves: its model, limits, timeouts and hooks (Python's class attributes and
/// overridable methods, as values). Shared by StreamServer and DatagramServer.

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "reactor/export.hpp"
#include "reactor/net/address.hpp"
#include "reactor/net/connection.hpp"
#include "reactor/server/model.hpp"

namespace reactor {

/// Reactor and pool models: what each connection's Connection::Options holds, but for the
/// idle timeout, which is ServerOptions::idle_timeout (one knob for every model). The
/// defaults are Connection::Options's. The deadline applies to every model: the blocking
/// models' handler stream fails its next wait past it with errc::timed_out (a timeout in
/// ServerStats, not an error).
struct REACTOR_API ServerConnectionOptions {
  /// Input cap, bytes (Connection::Options::max_input).
  std::size_t max_input = Connection::Options{}.max_input;
  /// Output cap, bytes (Connection::Options::max_output).
  std::size_t max_output = Connection::Options{}.max_output;
  /// Queued output at which EventHandler::on_high_watermark runs.
  std::size_t high_watermark = Connection::Options{}.high_watermark;
  /// Queued output at which EventHandler::on_low_watermark runs, after a high-watermark call.
  std::size_t low_watermark = Connection::Options{}.low_watermark;
  /// Bytes asked for per read.
  std::size_t read_size = Connection::Options{}.read_size;
  /// Reads per loop iteration at most, per connection (fairness).
  unsigned reads_per_iteration = Connection::Options{}.reads_per_iteration;
  /// A connection is closed this long after it was accepted, every model; 0: none.
  std::chrono::nanoseconds deadline = Connection::Options{}.deadline;
  /// TCP_NODELAY on TCP connections.
  bool no_delay = Connection::Options{}.no_delay;

  /// The options of one connection, with the server's idle timeout.
  Connection::Options with_idle_timeout(std::chrono::nanoseconds idle_timeout) const noexcept {
    Connection::Options o;
    o.max_input = max_input;
    o.max_output = max_output;
    o.high_watermark = high_watermark;
    o.low_watermark = low_watermark;
    o.read_size = read_size;
    o.reads_per_iteration = reads_per_iteration;
    o.idle_timeout = idle_timeout;
    o.deadline = deadline;
    o.no_delay = no_delay;
    return o;
  }
};

/// Everything a server is configured with, as one aggregate for designated initializers:
/// `{.model = Model::pool, .threads = 4}`. Copied by the server's constructor.
struct REACTOR_API ServerOptions {
  /// How connections (datagrams) are served: see Model.
  Model model = Model::reactor;
  /// Backend of the server's loop(s): "auto", "epoll", "poll", "select", "uv".
  std::string backend = "auto";
  /// pool: number of loops (and threads); 0: one per core.
  unsigned threads = 0;
  /// pool, stream servers: accept on every loop with SO_REUSEPORT (the kernel spreads
  /// connections) instead of on loop 0 handing connections round robin to the others.
  /// Only for TCP without max_connections (with a limit, hand-off keeps clients in arrival
  /// order); Unix stream servers always hand off. (SO_REUSEPORT also lets another process of
  /// the same user bind the port; turn this off if that matters.)
  bool reuse_port = true;
  /// threading: most handler threads alive at once (accepting pauses at the bound).
  std::size_t max_threads = 1024;
  /// forking: most children alive at once (accepting pauses at the bound).
  std::size_t max_children = 40;
  /// Most connections served at once, every model; 0: no limit beyond the model's own.
  /// At the limit the listener leaves the loop (no accept spin) and clients wait in the
  /// kernel's backlog; it comes back as soon as a connection ends.
  std::size_t max_connections = 0;
  /// A connection that sends nothing for this long is closed, every model (blocking models:
  /// any single wait of the handler's stream); zero: never.
  std::chrono::milliseconds idle_timeout{0};
  /// handle_request(): how long to wait for a request before handle_timeout; zero: forever.
  std::chrono::milliseconds timeout{0};
  /// listen() backlog (Python's request_queue_size); the kernel caps it at somaxconn.
  int request_queue_size = SOMAXCONN;
  /// SO_REUSEADDR on stream listeners (restart while old connections linger in TIME_WAIT).
  /// Datagram servers never set it: on UDP it would let two servers share a port.
  bool allow_reuse_address = true;
  /// Blocking handlers' read_line cap.
  std::size_t max_line = 64 * 1024;
  /// Datagram servers: receive size; longer datagrams arrive cut, flagged truncated.
  std::size_t max_datagram = 65536;
  /// Signals that shut the server down (say {SIGINT, SIGTERM}), delivered even while a sync
  /// handler blocks the serving thread: they cancel the handlers' waits at once, like
  /// shutdown(). The previous dispositions come back when the server is destroyed.
  std::vector<int> shutdown_signals{};
  /// How long shutdown() lets connections finish before it cuts them (0: cut at once).
  /// Shutdown stops accepting at once, then, every model:
  /// - reactor and pool: each open connection gets EventHandler::on_shutdown, whose default
  ///   closes it gracefully (queued output flushed, then FIN) unless a request is in
  ///   progress (unconsumed input or queued output); those are closed gracefully once their
  ///   output is flushed. A connection still open at the drain deadline is aborted (RST).
  /// - sync, threading and forking: a handler waiting to read is cancelled at once (its
  ///   client already has every answer) and its connection closed gracefully; a handler
  ///   writing an answer may go on for up to this long and is cancelled only then.
  /// Connections closed gracefully count as handled; those cut at the deadline as
  /// ServerStats::cut. Reactor and pool: serve_forever() returns (and shutdown() from
  /// another thread) once every connection is closed, at most about this long after
  /// shutdown(); blocking models: server_close() waits for the handlers (about as long).
  std::chrono::milliseconds shutdown_drain{3000};
  /// Per-connection buffers and watermarks (reactor and pool models) and deadline (every model).
  ServerConnectionOptions connection{};

  /// Access control, before any handler runs; false closes the connection (drops the
  /// datagram). Empty: everyone. Runs on the accepting loop's thread (pool: any loop's).
  std::function<bool(const Address& client)> verify_request{};
  /// A handler threw. Runs once per failure on the thread (or child) that ran the handler;
  /// must be thread-safe for the threading and pool models. Empty: a LogLevel::error report
  /// (reactor/core/log.hpp; by default one line on stderr).
  std::function<void(const Address& client, std::exception_ptr error)> handle_error{};
  /// handle_request() waited `timeout` and no request came. Runs on the calling thread.
  std::function<void()> handle_timeout{};
};

/// Counters, read at any time from any thread.
struct REACTOR_API ServerStats {
  std::uint64_t accepted = 0;  ///< connections accepted / datagrams received
  std::uint64_t rejected = 0;  ///< refused by verify_request
  /// connections (datagrams) served to their end without a handler error, including those
  /// closed gracefully by shutdown after their answers
  std::uint64_t handled = 0;
  std::uint64_t errors = 0;    ///< handler failures (handle_error calls; failed children)
  std::uint64_t timeouts = 0;  ///< connections closed by the idle timeout or the deadline
  std::uint64_t cut = 0;       ///< connections cut at shutdown (drain deadline passed)
  std::size_t active = 0;      ///< connections (threads, children) being served now
  /// The most `active` has been.
  std::size_t peak_active = 0;
};

}  // namespace reactor
